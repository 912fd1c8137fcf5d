"""Background work of the tenants app. Tasks run in the schema of the tenant that sent them."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from tenants.summary import SUMMARY_CACHE_KEY, compute_summary

WORKER_HEARTBEAT_KEY = "worker-heartbeat"


@shared_task(ignore_result=False)
def refresh_tenant_summary() -> dict:
    """Recompute the current tenant's home-page counts and cache them (tenant-scoped key)."""
    tenant = getattr(connection, "tenant", None)
    if tenant is None or connection.schema_name == get_public_schema_name():
        raise RuntimeError("refresh_tenant_summary must be sent from a tenant's context")
    summary = compute_summary(tenant)
    cache.set(SUMMARY_CACHE_KEY, summary, timeout=300)
    return summary


@shared_task
def refresh_all_tenant_summaries() -> int:
    """Fan out one summary refresh per active tenant, each sent from that tenant's context."""
    from tenants.models import Tenant

    count = 0
    for tenant in Tenant.objects.filter(is_active=True).exclude(
        schema_name=get_public_schema_name()
    ):
        with tenant_context(tenant):
            refresh_tenant_summary.delay()
        count += 1
    return count


@shared_task
def record_worker_heartbeat() -> str:
    """Lets pages show whether background work is running (a platform-level, public key)."""
    now = timezone.now().isoformat()
    with schema_context(get_public_schema_name()):
        cache.set(WORKER_HEARTBEAT_KEY, now, timeout=120)
    return now
