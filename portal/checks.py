"""System checks that refuse a production start with development defaults.

`manage.py` runs them for every command; the ASGI app and the Celery worker run them at start.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=False)
def production_settings_check(app_configs, **kwargs) -> list[Error]:
    """In production a real SECRET_KEY and an explicit ALLOWED_HOSTS are mandatory."""
    if not settings.PRODUCTION:
        return []
    errors = []
    key = settings.SECRET_KEY or ""
    if key == settings.INSECURE_SECRET_KEY or len(key) < 50 or len(set(key)) < 5:
        errors.append(
            Error(
                "SECRET_KEY is unset, the development default, or too short for production.",
                hint="Set SECRET_KEY to a random value of at least 50 characters.",
                id="portal.E001",
            )
        )
    if settings.DEBUG:
        errors.append(
            Error(
                "DEBUG is on in production: error pages would show settings and code.",
                hint="Unset DEBUG or set DEBUG=false.",
                id="portal.E003",
            )
        )
    hosts = settings.ALLOWED_HOSTS
    if not hosts or "*" in hosts:
        errors.append(
            Error(
                "ALLOWED_HOSTS must list the portal's host names in production (no '*').",
                hint="Set ALLOWED_HOSTS, e.g. 'portal.example.com,.portal.example.com'.",
                id="portal.E002",
            )
        )
    if settings.EMAIL_BACKEND.endswith(("console.EmailBackend", "dummy.EmailBackend")):
        errors.append(
            Warning(
                "No mail server is configured: invitations and password resets go nowhere.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587.",
                id="portal.W001",
            )
        )
    return errors


def refuse_unsafe_production_start() -> None:
    """Run the system checks where no manage.py command does (ASGI server, Celery worker)."""
    if not settings.PRODUCTION:
        return
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    serious = [message for message in checks.run_checks() if message.is_serious()]
    if serious:
        raise ImproperlyConfigured("; ".join(f"{m.id}: {m.msg}" for m in serious))
