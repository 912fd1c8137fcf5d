"""The scheduled assessment: every tenant's chain verified, checks run, snapshot taken."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context
from psycopg import sql

from compliance.assessment import verify_audit_chain
from compliance.models import ChainVerification, ComplianceSnapshot, ControlStatus
from compliance.tasks import assess_all_tenants, assess_tenant
from compliance_catalog.models import Control
from portal.celery import app
from tenants import audit_chain
from tests.helpers import psycopg_params

TASK_TIMEOUT = 60

pytestmark = pytest.mark.django_db


def test_the_beat_schedule_names_the_assessment_task():
    entry = settings.CELERY_BEAT_SCHEDULE["compliance-assess"]
    assert entry["task"] == assess_all_tenants.name
    assert entry["task"] in app.tasks


def test_assessing_all_tenants_fills_each_tenants_own_schema(eager_tasks, acme, globex):
    assert assess_all_tenants() >= 2
    today = timezone.localdate()
    for tenant in (acme, globex):
        with tenant_context(tenant):
            assert ComplianceSnapshot.objects.filter(day=today).count() == 6
            assert ControlStatus.objects.filter(control_code="IR-01").exists()
            verification = ChainVerification.objects.get()
            assert verification.ok == audit_chain.verify_chain(tenant).ok


def test_a_recent_verification_is_reused_unless_forced(acme):
    with tenant_context(acme):
        first = verify_audit_chain(acme)
        assert verify_audit_chain(acme).pk == first.pk
        forced = verify_audit_chain(acme, force=True)
        assert forced.pk != first.pk
        assert ChainVerification.objects.count() == 2


COMPLIANCE_TABLES = [
    "compliance_controlstatus",
    "compliance_statuschange",
    "compliance_chainverification",
    "compliance_compliancesnapshot",
    "compliance_evidence",
]


@pytest.fixture
def committed_compliance_cleared():
    """Clear what a worker committed to the seed tenants' compliance tables, after the test."""
    yield
    with psycopg.connect(**psycopg_params(), autocommit=True) as conn:
        for schema in ("acme", "globex"):
            for table in COMPLIANCE_TABLES:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table)))


def test_a_real_worker_assesses_the_tenant_that_sent_the_task(
    celery_worker, committed_compliance_cleared, acme
):
    with tenant_context(acme):
        result = assess_tenant.apply_async(ignore_result=False)
    outcome = result.get(timeout=TASK_TIMEOUT)
    result.forget()
    assert (
        outcome["checked"] == Control.objects.exclude(check_name="").filter(retired=False).count()
    )
    with psycopg.connect(**psycopg_params()) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM acme.compliance_compliancesnapshot WHERE day = %s",
            [timezone.localdate()],
        ).fetchone()[0]
        other = conn.execute("SELECT count(*) FROM globex.compliance_controlstatus").fetchone()[0]
    assert (rows, other) == (6, 0)
