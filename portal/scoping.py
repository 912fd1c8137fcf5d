"""The one place that builds names shared across processes: every one carries the tenant.

Channels group names and raw Redis keys are global to the Redis instance, so a name without the
tenant in it would let two tenants meet. Django cache keys get the schema from
`django_tenants.cache.make_key`; this module covers what the cache framework does not.
"""

import hashlib
import re

from django.conf import settings

_GROUP_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
# channels refuses group names of 100 characters or more.
GROUP_NAME_MAX = 99
_DIGEST_CHARS = 16


def tenant_group(schema_name: str, topic: str) -> str:
    """Channels group name for `topic` within one tenant (e.g. `tenant.acme.presence`).

    A name that would be too long for channels (a 63-character schema with a UUID in the topic)
    keeps the tenant and the start of the topic and ends with a digest of the whole name, so
    that two long names never share a group.
    """
    if not schema_name:
        raise ValueError("a tenant group needs a schema name")
    prefix = f"tenant.{schema_name}."
    name = prefix + _GROUP_SAFE.sub("_", topic)
    if len(name) <= GROUP_NAME_MAX:
        return name
    head = name[: GROUP_NAME_MAX - _DIGEST_CHARS - 1]
    if not head.startswith(prefix):
        raise ValueError(f"schema name too long for a group name: {schema_name!r}")
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{head}.{digest}"


def tenant_wide_group(schema_name: str) -> str:
    """The group every live connection to the tenant joins (e.g. to close them all)."""
    return tenant_group(schema_name, "tenant")


def member_group(schema_name: str, user_id: object) -> str:
    """The group of one member's live connections to the tenant."""
    return tenant_group(schema_name, f"member.{user_id}")


def tenant_key(schema_name: str, name: str) -> str:
    """Raw Redis key for `name` within one tenant, for data kept outside Django's cache."""
    if not schema_name:
        raise ValueError("a tenant key needs a schema name")
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "portal"
    return f"{prefix}:tenant:{schema_name}:{name}"
