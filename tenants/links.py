"""Absolute links between the public site and tenant hosts (they are different origins).

Every link the portal sends or redirects to across hosts is built here from the configured base
domain, scheme and port, never from the request's Host header (which the client chooses).
"""

from urllib.parse import urlencode

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


def set_password_url(uidb64: str, token: str) -> str:
    """The public site's page where the holder of a reset or invitation token sets a password."""
    return public_url(f"/accounts/reset/{uidb64}/{token}/")


def password_reset_url() -> str:
    """The public site's form that e-mails a set-password link."""
    return public_url("/accounts/password-reset/")


def public_sign_out_url(ticket: str) -> str:
    """Where a tenant host sends a person to be signed out of the public site too."""
    return public_url("/accounts/signed-out/?" + urlencode({"ticket": ticket}))


def enter_tenant_url(slug: str) -> str:
    """The public site's hand-over into the tenant with `slug`."""
    return public_url(f"/go/{slug}/")
