"""The tenant's own state on its dashboards: open incidents and its compliance standing, recorded
as metrics of its catalog every minute, through the same checked path as pushed samples.

Nobody pushes these: the incident desk and the compliance checks are the source. A sample per
series per minute; panels read them with the `latest` aggregation (where things stand).
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from alerts import services as alerts_services
from compliance import services as compliance_services
from dashboards import ingest, services
from dashboards.models import MetricDefinition
from tenants import audit

ACTOR = "dashboard figures"
# name, unit, help, labels: the metrics this module writes (created in the catalog if missing).
METRICS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("open_incidents", "", "Open incidents by severity.", ["severity"]),
    ("open_major_incidents", "", "Open P0 and P1 incidents.", []),
    ("open_security_incidents", "", "Open security incidents.", []),
    ("compliance_score_ratio", "%", "Controls passing, in percent.", []),
    ("compliance_violations", "", "Failing controls per framework.", ["framework"]),
)
SECURITY_METRICS = frozenset({"open_security_incidents", "compliance_violations"})


def ensure_catalog() -> None:
    """The metrics of `METRICS` the tenant's catalog lacks (a tenant older than them)."""
    existing = set(
        MetricDefinition.objects.filter(name__in=[m[0] for m in METRICS]).values_list(
            "name", flat=True
        )
    )
    actor = audit.Actor.system(ACTOR)
    for name, unit, help_text, labels in METRICS:
        if name not in existing:
            services.create_metric(
                name=name,
                type="gauge",
                unit=unit,
                help=help_text,
                labels=labels,
                category="security" if name in SECURITY_METRICS else "business",
                actor=actor,
            )


def samples(now: datetime) -> list[ingest.RawSample]:
    """This minute's figures, as samples at `now`."""
    incidents = alerts_services.open_incident_counts()
    compliance = compliance_services.dashboard_figures()
    at = now.timestamp()
    rows: list[tuple[str, dict, float]] = [
        ("open_incidents", {"severity": severity}, incidents[severity])
        for severity in ("P0", "P1", "P2", "P3")
    ]
    rows.append(("open_major_incidents", {}, incidents["P0"] + incidents["P1"]))
    rows.append(("open_security_incidents", {}, incidents["security"]))
    if compliance["score"] is not None:
        rows.append(("compliance_score_ratio", {}, compliance["score"]))
    rows += [
        ("compliance_violations", {"framework": code}, failing)
        for code, failing in sorted(compliance["failing"].items())
    ]
    return [
        ingest.RawSample(index, name, labels, float(value), at)
        for index, (name, labels, value) in enumerate(rows)
    ]


def record(now: datetime | None = None) -> int:
    """Record the current figures of this tenant (its schema is current); returns how many."""
    ensure_catalog()
    return ingest.ingest(samples(now or timezone.now()))
