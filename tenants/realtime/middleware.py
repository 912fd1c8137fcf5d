"""Channels middleware: resolve the tenant from the Host header exactly as HTTP does.

A WebSocket is refused before any consumer runs, and its app instance ends at once, when its
host is not allowed or names no tenant (or the public site, or an inactive tenant), or when it
does not come from a page of that same host.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.db import database_sync_to_async
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name

from tenants.models import Domain, Tenant
from tenants.realtime.refusal import refuse


@database_sync_to_async
def _tenant_for_hostname(hostname: str) -> Tenant | None:
    # Same lookup as TenantMainMiddleware.get_tenant: exact, so case matters as it does there.
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if domain is None or domain.tenant.schema_name == get_public_schema_name():
        return None
    return domain.tenant if domain.tenant.is_active else None


def _request_of(scope: dict) -> ASGIRequest:
    """The handshake as Django sees an HTTP request: same headers, same host rules."""
    return ASGIRequest(dict(scope, method="GET"), io.BytesIO())


def _header(scope: dict, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return value.decode("latin1").strip()
    return None


def _same_origin(scope: dict) -> bool:
    """A socket must come from a page of the host it connects to.

    Sibling tenant hosts share cookies, so "an allowed host" is not enough; a socket without an
    Origin (not from a browser page, or from an opaque one) is refused too.
    """
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    # Host names compare case-insensitively here; which spelling names a tenant is decided by
    # the tenant lookup, exactly as for HTTP.
    return urlsplit(origin).netloc.lower() == host.lower()


class TenantFromHostMiddleware:
    """Puts the host's tenant in `scope["tenant"]`, or refuses the socket."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(
        self, scope: dict, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"TenantFromHostMiddleware serves WebSockets, not {scope['type']}")
        if not _same_origin(scope):
            return await refuse(scope, receive, send)
        try:
            hostname = TenantMainMiddleware.hostname_from_request(_request_of(scope))
        except DisallowedHost:
            return await refuse(scope, receive, send)
        tenant = await _tenant_for_hostname(hostname)
        if tenant is None:
            return await refuse(scope, receive, send)
        return await self.app(dict(scope, tenant=tenant), receive, send)
