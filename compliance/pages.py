"""What the compliance pages show, assembled from the catalog and the tenant's state."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from compliance import catalog
from compliance.models import ComplianceSnapshot, ControlStatus, Evidence, Status

# Failing first (what needs doing), then unknown, then fine.
STATUS_ORDER = {
    Status.FAILING: 0,
    Status.NOT_ASSESSED: 1,
    Status.PASSING: 2,
    Status.NOT_APPLICABLE: 3,
}
TREND_DAYS = 30

STATUS_BADGES = {
    Status.PASSING: "badge-ok",
    Status.FAILING: "badge-bad",
    Status.NOT_ASSESSED: "badge-muted",
    Status.NOT_APPLICABLE: "badge-info",
}


@dataclass
class ControlRow:
    info: catalog.ControlInfo
    state: ControlStatus | None
    evidence: list[Evidence]

    @property
    def status(self) -> str:
        return self.state.status if self.state else Status.NOT_ASSESSED

    @property
    def status_label(self) -> str:
        return Status(self.status).label

    @property
    def badge(self) -> str:
        return STATUS_BADGES[Status(self.status)]

    @property
    def source_label(self) -> str:
        if self.state is None:
            return "automated check" if self.info.automated else "attestation"
        return self.state.get_source_display().lower()

    @property
    def reason(self) -> str:
        if self.state is None:
            return "Not run yet." if self.info.automated else "Not attested yet."
        return self.state.reason


def control_rows(framework_code: str | None = None) -> list[ControlRow]:
    """Every live control (or those mapped to one framework), failing first."""
    states = {s.control_code: s for s in ControlStatus.objects.all()}
    evidence: dict[str, list[Evidence]] = defaultdict(list)
    for item in Evidence.objects.all():
        evidence[item.control_code].append(item)
    rows = [
        ControlRow(info, states.get(info.code), evidence.get(info.code, []))
        for info in catalog.controls()
        if framework_code is None or framework_code in info.refs
    ]
    rows.sort(key=lambda row: STATUS_ORDER[Status(row.status)])
    return rows


@dataclass(frozen=True)
class TrendRow:
    day: object
    scores: list[float | None]


def trend(frameworks: list[catalog.FrameworkInfo]) -> list[TrendRow]:
    """The last TREND_DAYS snapshot days, newest first, one score per framework (or None)."""
    days = list(
        ComplianceSnapshot.objects.order_by("-day").values_list("day", flat=True).distinct()
    )[:TREND_DAYS]
    by_key = {
        (s.framework_code, s.day): s.score for s in ComplianceSnapshot.objects.filter(day__in=days)
    }
    return [TrendRow(day, [by_key.get((f.code, day)) for f in frameworks]) for day in days]
