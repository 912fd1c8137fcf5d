"""Channels middleware: resolve the tenant from the Host header, as HTTP does.

A WebSocket to an unknown host, or to the public host, is refused before any consumer runs.
"""

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django_tenants.utils import get_public_schema_name, remove_www

from tenants.models import Domain


@database_sync_to_async
def _tenant_for_host(host: str):
    domain = Domain.objects.select_related("tenant").filter(domain=host).first()
    if domain is None or domain.tenant.schema_name == get_public_schema_name():
        return None
    return domain.tenant


def _host_from_scope(scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return remove_www(value.decode("latin1").split(":")[0].lower())
    return ""


class TenantFromHostMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        tenant = await _tenant_for_host(_host_from_scope(scope))
        if tenant is None or not tenant.is_active:
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(dict(scope, tenant=tenant), receive, send)
