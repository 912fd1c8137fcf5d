"""Scores per framework: passing controls over applicable ones, each control counted once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from compliance.catalog import ControlInfo, FrameworkInfo
from compliance.models import Status


@dataclass(frozen=True)
class FrameworkScore:
    framework: FrameworkInfo
    passing: int
    failing: int
    not_assessed: int
    not_applicable: int

    @property
    def total(self) -> int:
        return self.passing + self.failing + self.not_assessed + self.not_applicable

    @property
    def applicable(self) -> int:
        return self.total - self.not_applicable

    @property
    def score(self) -> float | None:
        """Percent passing of applicable controls, one decimal; None when nothing applies."""
        return percent_passing(self.passing, self.applicable)


def percent_passing(passing: int, applicable: int) -> float | None:
    if not applicable:
        return None
    return round(100.0 * passing / applicable, 1)


def overall_score(controls: Iterable[ControlInfo], statuses: Mapping[str, str]) -> float | None:
    """`FrameworkScore.score` over every control of the catalog, each once."""
    found = [statuses.get(control.code, Status.NOT_ASSESSED) for control in controls]
    applicable = [status for status in found if status != Status.NOT_APPLICABLE]
    return percent_passing(applicable.count(Status.PASSING), len(applicable))


def framework_scores(
    frameworks: Iterable[FrameworkInfo],
    controls: Iterable[ControlInfo],
    statuses: Mapping[str, str],
) -> list[FrameworkScore]:
    """A control mapped to several requirements of one framework still counts once there; a
    control with no status yet counts as not assessed."""
    controls = list(controls)
    scores = []
    for framework in frameworks:
        counts = dict.fromkeys(Status.values, 0)
        for control in controls:
            if framework.code in control.refs:
                counts[statuses.get(control.code, Status.NOT_ASSESSED)] += 1
        scores.append(
            FrameworkScore(
                framework,
                counts[Status.PASSING],
                counts[Status.FAILING],
                counts[Status.NOT_ASSESSED],
                counts[Status.NOT_APPLICABLE],
            )
        )
    return scores
