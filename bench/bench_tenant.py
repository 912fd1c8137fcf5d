"""A tenant of its own for the dashboard benchmarks, provisioned once and reused."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from tenants import audit  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.provisioning import (  # noqa: E402
    ensure_public_tenant,
    ensure_template_schema,
    provision_tenant,
)
from tenants.slugs import schema_name_for  # noqa: E402

BENCH_SLUG = "bench-dashboards"


def bench_tenant() -> Tenant:
    """The benchmark tenant (created with its default dashboards and catalog on first use)."""
    ensure_public_tenant()
    ensure_template_schema()
    tenant = Tenant.objects.filter(schema_name=schema_name_for(BENCH_SLUG)).first()
    if tenant is None:
        tenant = provision_tenant(
            slug=BENCH_SLUG,
            name="Dashboard benchmarks",
            admin_email=None,
            actor=audit.Actor.system("bench"),
        )
    connection.set_schema_to_public()
    return tenant
