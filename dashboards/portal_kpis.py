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
from dashboards import ingest
from dashboards.defaults import create_default_catalog
from tenants import audit

ACTOR = "dashboard figures"
# The metrics this module writes: standard ones (`defaults.DEFAULT_METRICS`), created in the
# catalog of a tenant older than them.
METRICS = frozenset(
    {
        "open_incidents",
        "open_major_incidents",
        "open_security_incidents",
        "compliance_score_ratio",
        "compliance_violations",
    }
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
    create_default_catalog(audit.Actor.system(ACTOR), names=METRICS)
    return ingest.ingest(samples(now or timezone.now()), charge=False)
