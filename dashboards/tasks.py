"""Background work of the dashboards app: sample retention, live Prometheus panels."""

from __future__ import annotations

import logging

from celery import shared_task
from django_tenants.utils import get_public_schema_name, tenant_context

from dashboards import live, prometheus_poll, services

logger = logging.getLogger(__name__)


@shared_task
def expire_tenant_samples() -> int:
    """Delete this tenant's samples older than its retention (runs in the tenant's schema)."""
    return services.expire_samples()


@shared_task(platform_wide=True, routine=True)
def expire_samples_all() -> int:
    """Beat: queue the retention clean-up of every active tenant; returns how many."""
    from tenants.models import Tenant

    count = 0
    tenants = Tenant.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name())
    for tenant in tenants:
        with tenant_context(tenant):
            expire_tenant_samples.delay()
        count += 1
    return count


# No retries for the polls: the next beat, a few seconds later, is the retry.
@shared_task(routine=True, max_retries=0)
def poll_prometheus_panels() -> int:
    """Query the Prometheus panels of this tenant's watched dashboards once; push new points."""
    return prometheus_poll.poll()


@shared_task(platform_wide=True, routine=True, max_retries=0)
def poll_prometheus_all() -> int:
    """Beat: queue a poll for every active tenant with a watched dashboard; returns how many.

    Each poll expires with the beat interval: one a busy worker reaches too late is dropped
    rather than run behind the next.
    """
    from tenants.models import Tenant

    tenants = list(
        Tenant.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name())
    )
    watched = live.watchers(tenant.schema_name for tenant in tenants)
    count = 0
    for tenant in tenants:
        if tenant.schema_name not in watched:
            continue
        with tenant_context(tenant):
            poll_prometheus_panels.apply_async(expires=prometheus_poll.POLL_SECONDS)
        count += 1
    return count
