"""The tenant's own figures on its dashboards: open incidents (by severity, P0/P1, security) and
its compliance standing, recorded as samples of its metrics and read back as the Executive and
Security dashboards show them; another tenant's figures never mix in."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from alerts.models import Incident
from alerts.services import open_incident_counts
from compliance import catalog
from compliance.models import ControlStatus, Source, Status
from dashboards import portal_kpis, queries, tasks
from dashboards.models import Dashboard, MetricDefinition

NOW = timezone.now().replace(microsecond=0)


def incident(severity: str, status: str = "triggered", category: str = "availability"):
    return Incident.objects.create(
        fingerprint=uuid.uuid4().hex[:16],
        started_at=NOW - timedelta(minutes=5),
        alertname=f"Probe{uuid.uuid4().hex[:6]}",
        severity=severity,
        category=category,
        status=status,
    )


def set_statuses(pairs: list[tuple[str, str]]) -> None:
    ControlStatus.objects.all().delete()
    for code, status in pairs:
        ControlStatus.objects.create(
            control_code=code, status=status, source=Source.ATTESTATION, updated_at=NOW
        )


def shown(title: str, dashboard: str = "Executive overview") -> float | None:
    """What the stat panel `title` of the default dashboard shows over the last hour."""
    panel = Dashboard.objects.get(title=dashboard).panels.get(title=title)
    span = queries.TimeRange(NOW - timedelta(hours=1), NOW + timedelta(minutes=1), "1h")
    return queries.panel_total(panel, span)


def test_open_incidents_and_compliance_reach_the_default_dashboards(acme, globex):
    with tenant_context(globex):
        # Incidents are never deleted (their timelines are the record): count from where the
        # tenants stand, and check globex's figures are its own whatever acme has.
        globex_open = open_incident_counts()
    with tenant_context(acme):
        before = open_incident_counts()
        paging = incident("P0")
        incident("P1", status="acknowledged")
        incident("P1", status="resolved")
        incident("P2", category="security")
        incident("P3", status="resolved", category="security")
        controls = catalog.controls()
        set_statuses(
            [
                (controls[0].code, Status.PASSING),
                (controls[1].code, Status.FAILING),
                (controls[2].code, Status.NOT_APPLICABLE),
            ]
        )
        recorded = portal_kpis.record(NOW)
        assert recorded >= 8
        assert shown("Open P0/P1 incidents") == before["P0"] + before["P1"] + 2
        assert shown("Open security incidents", "Security") == before["security"] + 1
        # One of the controls that apply passes.
        applicable = len(controls) - 1
        assert shown("Compliance score") == round(100.0 / applicable, 1)
        failing_frameworks = set(controls[1].refs)
        assert shown("Compliance violations", "Security") == float(len(failing_frameworks))

        # A minute later, the new P0 resolved: the panels say where things stand now.
        Incident.objects.filter(pk=paging.pk).update(status="resolved")
        portal_kpis.record(NOW + timedelta(seconds=1))
        assert shown("Open P0/P1 incidents") == before["P0"] + before["P1"] + 1

    with tenant_context(globex):
        set_statuses([])
        portal_kpis.record(NOW)
        assert shown("Open P0/P1 incidents") == globex_open["P0"] + globex_open["P1"]
        assert shown("Compliance score") == 0.0  # nothing passing yet


def test_a_tenant_without_the_metrics_gets_them_in_its_catalog(acme):
    with tenant_context(acme):
        MetricDefinition.objects.filter(name="open_major_incidents").delete()
        portal_kpis.record(NOW)
        metric = MetricDefinition.objects.get(name="open_major_incidents")
        assert (metric.type, metric.category) == ("gauge", "business")
        assert metric.series.get().last_at == NOW


def test_the_beat_queues_the_figures_of_every_active_tenant(acme, globex, eager_tasks):
    started = timezone.now().replace(microsecond=0)
    assert tasks.record_portal_kpis_all() >= 2
    for tenant in (acme, globex):
        with tenant_context(tenant):
            after = MetricDefinition.objects.get(name="open_major_incidents").series.get()
            assert after.last_at >= started
