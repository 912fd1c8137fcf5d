"""Tenant slugs: the first label of the tenant's host name, and (hyphens as underscores) its schema.

A slug is a lowercase DNS label. Underscores are not allowed in host names (Django rejects such
hosts), and hyphens are not allowed in schema names, so the schema is the slug with `-` → `_`;
the mapping is one-to-one because slugs never contain underscores.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

_SLUG_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def slug_for(schema_name: str) -> str:
    return schema_name.replace("_", "-")


def validate_tenant_slug(slug: str) -> str:
    """Return the slug if it may name a new tenant; raise ValidationError saying why not."""
    if not slug:
        raise ValidationError("The slug is required.", code="required")
    if not _SLUG_RE.fullmatch(slug):
        raise ValidationError(
            f"'{slug}' is not a valid slug: use 1–63 lowercase letters, digits or hyphens, "
            "starting with a letter and not ending with a hyphen.",
            code="invalid",
        )
    reserved = settings.RESERVED_TENANT_SLUGS
    schema = schema_name_for(slug)
    if schema.startswith("pg_") or slug in reserved or schema in reserved:
        raise ValidationError(f"'{slug}' is reserved for the platform.", code="reserved")
    return slug
