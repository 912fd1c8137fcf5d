"""Counts shown on a tenant's home page, computed in the tenant's schema."""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context
from redis.exceptions import RedisError

SUMMARY_CACHE_KEY = "tenant-summary"
SUMMARY_TTL_SECONDS = 300
WORKER_HEARTBEAT_KEY = "worker-heartbeat"
log = logging.getLogger(__name__)


def current_summary(tenant) -> dict:
    """The cached counts, else fresh ones; the page works while the cache is down."""
    try:
        summary = cache.get(SUMMARY_CACHE_KEY)
    except RedisError:
        log.warning("cache unavailable; computing the tenant summary directly")
        return compute_summary(tenant)
    return summary if summary is not None else refresh_summary(tenant)


def refresh_summary(tenant) -> dict:
    """Compute the counts and cache them under the current schema's key."""
    summary = compute_summary(tenant)
    cache.set(SUMMARY_CACHE_KEY, summary, timeout=SUMMARY_TTL_SECONDS)
    return summary


def record_worker_seen() -> str:
    now = timezone.now().isoformat()
    with schema_context(get_public_schema_name()):
        cache.set(WORKER_HEARTBEAT_KEY, now, timeout=120)
    return now


def worker_last_seen() -> datetime | None:
    """When a Celery worker last reported in (a platform-wide, public-schema key)."""
    try:
        with schema_context(get_public_schema_name()):
            value = cache.get(WORKER_HEARTBEAT_KEY)
    except RedisError:
        return None
    return datetime.fromisoformat(value) if value else None


def compute_summary(tenant) -> dict:
    from tenants.models import ApiToken, AuditEvent, Membership

    return {
        "tenant": tenant.schema_name,
        "members": Membership.objects.filter(tenant=tenant).count(),
        "active_tokens": ApiToken.objects.filter(tenant=tenant, revoked_at__isnull=True).count(),
        "audit_events": AuditEvent.objects.filter(tenant=tenant).count(),
        "computed_at": timezone.now().isoformat(),
    }
