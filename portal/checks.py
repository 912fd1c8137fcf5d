"""System checks: no unsafe start outside development, and backend settings that make sense.

`manage.py` runs them for every command; the ASGI app and the Celery worker run them at start
(`refuse_unsafe_production_start`) at every level other than development.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from portal.backends.base import url_problem
from portal.secret_key import weakness as secret_key_weakness

BACKEND_URL_SETTINGS = {
    "PROMETHEUS_URL": "portal.E010",
    "ALERTMANAGER_URL": "portal.E011",
    "GRAFANA_URL": "portal.E012",
}


@register(Tags.security, deploy=False)
def production_settings_check(app_configs, **kwargs) -> list[CheckMessage]:
    """Outside development a strong SECRET_KEY; in production also hosts, no DEBUG, a mailer."""
    errors: list[CheckMessage] = []
    if settings.MONITORING_LEVEL != "development":
        # The settings module already refuses a weak key; this catches one set another way.
        problem = secret_key_weakness(settings.SECRET_KEY or "")
        if problem:
            errors.append(
                Error(
                    f"{problem}: sessions and hand-over tickets could be forged.",
                    hint="Set SECRET_KEY to a random value of at least 50 characters.",
                    id="portal.E001",
                )
            )
    if not settings.PRODUCTION:
        return errors
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


@register("backends")
def backend_settings_check(app_configs, **kwargs) -> list[CheckMessage]:
    """Backend URLs are well-formed, Grafana has a token, rule files can be written."""
    messages: list[CheckMessage] = []
    for name, check_id in BACKEND_URL_SETTINGS.items():
        value = getattr(settings, name, "")
        problem = url_problem(value)
        if problem:
            messages.append(
                Error(
                    f"{name}={value!r} is not a usable backend URL: {problem}.",
                    hint=f"Set {name} to the base URL, e.g. http://127.0.0.1:9090, or unset it.",
                    id=check_id,
                )
            )
    if settings.GRAFANA_URL and not settings.GRAFANA_TOKEN:
        messages.append(
            Warning(
                "GRAFANA_URL is set but GRAFANA_TOKEN is not: Grafana will refuse the portal.",
                hint="Create a Grafana service account token and set GRAFANA_TOKEN.",
                id="portal.W010",
            )
        )
    problem = _unwritable_directory(Path(settings.PROMETHEUS_RULES_DIR))
    if problem:
        messages.append(
            Warning(
                f"PROMETHEUS_RULES_DIR={settings.PROMETHEUS_RULES_DIR!r}: {problem}; "
                "tenant rule files cannot be written.",
                hint="Point PROMETHEUS_RULES_DIR at a directory this user may write.",
                id="portal.W011",
            )
        )
    return messages


def _unwritable_directory(path: Path) -> str | None:
    """Why files cannot be created in `path` (created on first use if missing), or None."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return "no part of the path exists"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def refuse_unsafe_production_start() -> None:
    """Run the system checks where no manage.py command does (ASGI server, Celery worker)."""
    if settings.MONITORING_LEVEL == "development":
        return
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    serious = [message for message in checks.run_checks() if message.is_serious()]
    if serious:
        raise ImproperlyConfigured("; ".join(f"{m.id}: {m.msg}" for m in serious))
