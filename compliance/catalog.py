"""The catalog as the tenant side reads it: controls with their requirement refs per framework."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from compliance_catalog.models import Control, Framework


@dataclass(frozen=True)
class RequirementRef:
    ref: str
    title: str
    group_title: str


@dataclass(frozen=True)
class FrameworkInfo:
    code: str
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class ControlInfo:
    code: str
    title: str
    description: str
    check_name: str
    # framework code -> the requirements the control maps to, in catalog order.
    refs: dict[str, list[RequirementRef]] = field(default_factory=dict)

    @property
    def automated(self) -> bool:
        return bool(self.check_name)


def frameworks() -> list[FrameworkInfo]:
    """Every framework of the catalog, in page order."""
    return [FrameworkInfo(f.code, f.name, f.version) for f in Framework.objects.all()]


def framework(code: str) -> FrameworkInfo | None:
    found = Framework.objects.filter(code=code).first()
    return None if found is None else FrameworkInfo(found.code, found.name, found.version)


def _control_infos(codes: list[str] | None = None) -> list[ControlInfo]:
    """Live controls (all, or those named) with their mappings, in two queries."""
    rows = Control.objects.filter(retired=False).order_by("position", "code")
    mappings = Control.requirements.through.objects.filter(control__retired=False)
    if codes is not None:
        rows = rows.filter(code__in=codes)
        mappings = mappings.filter(control__code__in=codes)
    infos = {c.code: ControlInfo(c.code, c.title, c.description, c.check_name) for c in rows}
    mappings = mappings.select_related("control", "requirement__framework")
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for link in mappings.order_by("requirement__framework__position", "requirement__position"):
        req = link.requirement
        grouped[link.control.code][req.framework.code].append(
            RequirementRef(req.ref, req.title, req.group_title)
        )
    for code, by_framework in grouped.items():
        if code in infos:
            infos[code].refs = dict(by_framework)
    return list(infos.values())


def controls() -> list[ControlInfo]:
    """Every live control with its mappings (two queries, whatever the catalog's size)."""
    return _control_infos()


def control(code: str) -> ControlInfo | None:
    # Only this control's rows: services look one up per check result.
    return next(iter(_control_infos([code])), None)
