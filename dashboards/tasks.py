"""Background work of the dashboards app: sample retention."""

from __future__ import annotations

import logging

from celery import shared_task
from django_tenants.utils import get_public_schema_name, tenant_context

from dashboards import services

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
