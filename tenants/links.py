"""Absolute links between the public site and tenant hosts (they are different origins)."""

from django.conf import settings


def _origin(host: str) -> str:
    default_port = {"http": 80, "https": 443}.get(settings.PORTAL_SCHEME)
    port = "" if default_port == settings.PORTAL_PORT else f":{settings.PORTAL_PORT}"
    return f"{settings.PORTAL_SCHEME}://{host}{port}"


def public_url(path: str = "/") -> str:
    return _origin(settings.PORTAL_BASE_DOMAIN) + path


def tenant_url(tenant, path: str = "/") -> str:
    domain = tenant.get_primary_domain()
    host = domain.domain if domain else f"{tenant.schema_name}.{settings.PORTAL_BASE_DOMAIN}"
    return _origin(host) + path
