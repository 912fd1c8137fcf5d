"""Work done once per tenant, for the platform's periodic tasks."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection
from django_tenants.utils import get_public_schema_name, tenant_context

from tenants.models import Tenant


def active_tenants():
    """Every active tenant but the platform itself, in a stable order."""
    return (
        Tenant.objects.filter(is_active=True)
        .exclude(schema_name=get_public_schema_name())
        .order_by("schema_name")
    )


def each_active_tenant() -> Iterator[Tenant]:
    """Each active tenant, with its schema current while the caller works on it (a task sent
    then runs in that tenant)."""
    for tenant in active_tenants():
        with tenant_context(tenant):
            yield tenant


def current_tenant() -> Tenant:
    """The tenant whose schema the connection is in (a task's, or a `tenant_context`'s)."""
    schema = connection.schema_name
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name == schema:
        return tenant
    # schema_context() and Celery's tenant tasks set only a placeholder tenant: look it up.
    return Tenant.objects.get(schema_name=schema)
