"""What the incident desk counts: incidents per severity, acknowledgements overdue, and over 30
days the mean times to acknowledge (MTTA) and to resolve (MTTR) and the breaches of the tenant's
acknowledgement targets.

Pure functions of a queryset (already narrowed to what the viewer may see), the targets
(`alerts.services.ack_targets()`, minutes per severity) and the time now; the database does the
counting. A breach is measured as the compliance check measures it: an incident answered
(acknowledged, or resolved before anyone had to) later than its severity's target, or still
unanswered past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Avg,
    Case,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan

from alerts.models import Incident, Severity

WINDOW = timedelta(days=30)
SEVERITIES = tuple(Severity.values)
TRIGGERED = Incident.Status.TRIGGERED


def _target(targets: dict[str, int], severity: str) -> timedelta:
    # A severity without a target of its own is held to the most lenient one (P3's).
    return timedelta(minutes=targets.get(severity, targets.get("P3", 1440)))


def _overdue_q(targets: dict[str, int], now: datetime) -> Q:
    """Triggered incidents nobody has acknowledged within their severity's target."""
    condition = Q()
    for severity in SEVERITIES:
        condition |= Q(severity=severity, started_at__lt=now - _target(targets, severity))
    return Q(status=TRIGGERED) & condition


# ---- the list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeverityCount:
    severity: str
    label: str
    count: int
    overdue: int


def severity_counts(
    incidents: QuerySet[Incident], targets: dict[str, int], now: datetime
) -> list[SeverityCount]:
    """For each severity, how many of `incidents` there are and how many are overdue."""
    overdue = _overdue_q(targets, now)
    totals = incidents.order_by().aggregate(
        **{f"n_{s}": Count("pk", filter=Q(severity=s)) for s in SEVERITIES},
        **{f"late_{s}": Count("pk", filter=Q(severity=s) & overdue) for s in SEVERITIES},
    )
    return [
        SeverityCount(s, Severity(s).label, totals[f"n_{s}"], totals[f"late_{s}"])
        for s in SEVERITIES
    ]


def ack_state(incident: Incident, targets: dict[str, int], now: datetime) -> str:
    """ "overdue" (triggered and past its target), "late" (acknowledged after it), or ""."""
    target = _target(targets, incident.severity)
    if incident.status == TRIGGERED:
        return "overdue" if now - incident.started_at > target else ""
    if incident.acknowledged_at and incident.acknowledged_at - incident.started_at > target:
        return "late"
    return ""


def ack_due_at(incident: Incident, targets: dict[str, int]) -> datetime:
    return incident.started_at + _target(targets, incident.severity)


# ---- 30 days --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeverityStats:
    severity: str
    label: str
    target_minutes: int
    incidents: int
    acknowledged: int
    resolved: int
    mtta: timedelta | None
    mttr: timedelta | None
    breaches: int


def _since(start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(start) - F("started_at"), output_field=DurationField())


def window_stats(
    incidents: QuerySet[Incident], targets: dict[str, int], now: datetime
) -> list[SeverityStats]:
    """MTTA, MTTR and target breaches per severity of the `incidents` started in 30 days.

    MTTA is over the incidents that were acknowledged, MTTR over those resolved (by a person or
    by the alert clearing).
    """
    answered = Coalesce("acknowledged_at", "resolved_at", Value(now, output_field=DateTimeField()))
    waited = ExpressionWrapper(answered - F("started_at"), output_field=DurationField())
    target = Case(
        *[When(severity=s, then=Value(_target(targets, s))) for s in SEVERITIES],
        default=Value(_target(targets, "P3")),
        output_field=DurationField(),
    )
    rows = (
        incidents.filter(started_at__gte=now - WINDOW)
        .order_by()
        .values("severity")
        .annotate(
            total=Count("pk"),
            acknowledged=Count("acknowledged_at"),
            resolved=Count("resolved_at"),
            mtta=Avg(_since("acknowledged_at")),
            mttr=Avg(_since("resolved_at")),
            breaches=Count("pk", filter=GreaterThan(waited, target)),
        )
    )
    by_severity = {row["severity"]: row for row in rows}
    stats = []
    for severity in SEVERITIES:
        row = by_severity.get(severity, {})
        stats.append(
            SeverityStats(
                severity=severity,
                label=Severity(severity).label,
                target_minutes=int(_target(targets, severity).total_seconds() // 60),
                incidents=row.get("total", 0),
                acknowledged=row.get("acknowledged", 0),
                resolved=row.get("resolved", 0),
                mtta=row.get("mtta"),
                mttr=row.get("mttr"),
                breaches=row.get("breaches", 0),
            )
        )
    return stats


def duration_text(value: timedelta | None) -> str:
    """A duration as people read it on the desk: "45 s", "12 min", "3 h 05 min", "2 d 4 h"
    (whole hours and days without their zero part: "4 h", "1 d")."""
    if value is None:
        return "—"
    seconds = max(0, round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def minutes_text(minutes: int) -> str:
    return duration_text(timedelta(minutes=minutes))
