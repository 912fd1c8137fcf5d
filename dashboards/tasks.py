"""Background work of the dashboards app: sample retention, live Prometheus panels, Grafana."""

from __future__ import annotations

import logging

from celery import shared_task

from dashboards import grafana_sync, live, portal_kpis, prometheus_poll, services
from portal.backends.base import BackendError
from tenants.fanout import active_tenants, each_active_tenant

logger = logging.getLogger(__name__)


@shared_task
def expire_tenant_samples() -> int:
    """Delete this tenant's samples older than its retention (runs in the tenant's schema)."""
    return services.expire_samples()


@shared_task(platform_wide=True, routine=True)
def expire_samples_all() -> int:
    """Beat: queue the retention clean-up of every active tenant; returns how many."""
    count = 0
    for _tenant in each_active_tenant():
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
    watched = live.watchers(tenant.schema_name for tenant in active_tenants())
    count = 0
    for tenant in each_active_tenant():
        if tenant.schema_name in watched:
            poll_prometheus_panels.apply_async(expires=prometheus_poll.POLL_SECONDS)
            count += 1
    return count


def _raise_if_transient(result: grafana_sync.PushResult) -> None:
    # The row already says "failed"; PortalTask retries a transient BackendError with backoff.
    if result.transient:
        raise BackendError(result.error, backend="Grafana", permanent=False)


@shared_task(max_retries=8)
def push_to_grafana(dashboard_id: str) -> str:
    """Push one dashboard of this tenant to its Grafana folder (if it is kept there)."""
    result = grafana_sync.push(dashboard_id)
    _raise_if_transient(result)
    return result.status


@shared_task(max_retries=8)
def remove_from_grafana(push_id: int) -> str:
    """Take a dashboard the tenant stopped pushing (or deleted) out of Grafana."""
    result = grafana_sync.remove(push_id)
    _raise_if_transient(result)
    return result.status


@shared_task(platform_wide=True, routine=True)
def grafana_reconcile_all() -> int:
    """Beat: queue what each tenant owes Grafana (pending, failed past backoff, removals)."""
    count = 0
    for _tenant in each_active_tenant():
        for row in grafana_sync.due():
            if row.status == row.Status.REMOVING:
                remove_from_grafana.delay(row.pk)
            elif row.dashboard is not None:
                push_to_grafana.delay(str(row.dashboard.public_id))
            count += 1
    return count


@shared_task(routine=True, max_retries=0)
def record_portal_kpis() -> int:
    """This tenant's open incidents and compliance standing as samples of its metrics."""
    return portal_kpis.record()


# Each run expires with the next: a minute's figures recorded late are not worth queueing.
@shared_task(platform_wide=True, routine=True, max_retries=0)
def record_portal_kpis_all() -> int:
    """Beat: queue the figures of every active tenant; returns how many."""
    count = 0
    for _tenant in each_active_tenant():
        record_portal_kpis.apply_async(expires=KPI_SECONDS)
        count += 1
    return count


KPI_SECONDS = 60.0
