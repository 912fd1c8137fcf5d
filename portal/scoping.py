"""The one place that builds names shared across processes: every one carries the tenant.

Channels group names and raw Redis keys are global to the Redis instance, so a name without the
tenant in it would let two tenants meet. Django cache keys get the schema from
`django_tenants.cache.make_key`; this module covers what the cache framework does not.
"""

import re

from django.conf import settings

_GROUP_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def tenant_group(schema_name: str, topic: str) -> str:
    """Channels group name for `topic` within one tenant (e.g. `tenant.acme.presence`)."""
    if not schema_name:
        raise ValueError("a tenant group needs a schema name")
    name = f"tenant.{schema_name}.{_GROUP_SAFE.sub('_', topic)}"
    if len(name) >= 100:  # channels' limit on group names
        raise ValueError(f"group name too long: {name!r}")
    return name


def tenant_key(schema_name: str, name: str) -> str:
    """Raw Redis key for `name` within one tenant, for data kept outside Django's cache."""
    if not schema_name:
        raise ValueError("a tenant key needs a schema name")
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "portal"
    return f"{prefix}:tenant:{schema_name}:{name}"
