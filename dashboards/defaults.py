"""The dashboards every new tenant starts with, created when the tenant is provisioned."""

from __future__ import annotations

from dashboards.models import Dashboard
from dashboards.services import create_dashboard
from tenants import audit

DEFAULT_DASHBOARDS = (
    {"title": "Executive overview", "description": "Business KPIs and SLOs at a glance."},
)


def create_default_dashboards(tenant, **kwargs) -> list[Dashboard]:
    """Receiver of `tenant_provisioned`; runs in the new tenant's schema. Idempotent."""
    if Dashboard.objects.exists():
        return []
    actor = audit.Actor.system("default dashboards")
    return [create_dashboard(**spec, actor=actor) for spec in DEFAULT_DASHBOARDS]
