"""Channels middleware: resolve the tenant from the Host header, as HTTP does.

A WebSocket to an unknown host, or to the public host, is refused before any consumer runs.
"""

from urllib.parse import urlsplit

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


def _header(scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin1").strip().lower()
    return ""


def _same_origin(scope) -> bool:
    """A browser's socket must come from a page of the same host (sibling tenant hosts share
    cookies, so "an allowed host" is not enough). Sockets without an Origin are refused earlier,
    by channels' AllowedHostsOriginValidator in portal/asgi.py."""
    origin = _header(scope, b"origin")
    return not origin or urlsplit(origin).netloc == _header(scope, b"host")


class TenantFromHostMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        host = remove_www(_header(scope, b"host").split(":")[0])
        tenant = await _tenant_for_host(host) if _same_origin(scope) else None
        if tenant is None or not tenant.is_active:
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(dict(scope, tenant=tenant), receive, send)
