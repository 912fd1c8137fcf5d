"""Tenant slug rules: a slug is a schema name and the first label of a host name."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

# A lowercase DNS label that is also a safe PostgreSQL identifier: no hyphen (it would need quoting
# in SQL and django-tenants refuses it), starts with a letter, at most 63 characters.
_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def validate_tenant_slug(slug: str) -> str:
    """Return the slug if it may name a new tenant; raise ValidationError saying why not."""
    if not slug:
        raise ValidationError("The slug is required.", code="required")
    if not _SLUG_RE.fullmatch(slug):
        raise ValidationError(
            f"'{slug}' is not a valid slug: use 1–63 lowercase letters, digits or underscores, "
            "starting with a letter.",
            code="invalid",
        )
    if slug.startswith("pg_") or slug in settings.RESERVED_TENANT_SLUGS:
        raise ValidationError(f"'{slug}' is reserved for the platform.", code="reserved")
    return slug
