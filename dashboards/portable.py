"""Dashboards as JSON documents: the portal's own export, and reading a document back for import.

An export holds what a dashboard shows and how (title, description, every panel's settings and
place on the grid), never an id of this tenant: it can be imported into any tenant, which scopes
the queries to itself. Import reads either such an export or a Grafana dashboard
(`dashboards.grafana_import`) into one `ImportPlan`; `dashboards.services.import_dashboard`
checks every panel and writes all of it or nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from dashboards import grafana_import
from dashboards.forms import MAX_DOCUMENT_BYTES, MAX_PANELS, clean_cell
from dashboards.models import Dashboard, Panel

FORMAT = "monitoring-portal/dashboard"
VERSION = 1
# Grafana's own documents nest about ten levels; far deeper is no dashboard.
MAX_DEPTH = 64
MAX_ERRORS = 50

DOCUMENT_KEYS = frozenset({"format", "version", "title", "description", "panels"})
TEXT_KEYS = ("title", "kind", "source", "metric", "aggregation", "promql", "unit", "legend")
SPEC_KEYS = frozenset({*TEXT_KEYS, "label_filter", "thresholds", "layout"})


class DocumentError(Exception):
    """The document cannot be imported; `errors` says why (each a sentence)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class ImportPlan:
    """What an import would create, and what of the document it leaves out and why."""

    origin: str  # "portal" or "grafana"
    title: str
    description: str
    panels: list[dict]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (panel title, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (panel title, what changed)
    dashboard_notes: list[str] = field(default_factory=list)  # what changed for all panels


# --- export ------------------------------------------------------------------------------------


def panel_spec(panel: Panel) -> dict:
    """One panel as the export writes it (and import reads it)."""
    return {
        "title": panel.title,
        "kind": panel.kind,
        "source": panel.source,
        "metric": panel.metric,
        "aggregation": panel.aggregation,
        "label_filter": dict(panel.label_filter or {}),
        "promql": panel.promql,
        "unit": panel.unit,
        "thresholds": list(panel.thresholds or []),
        "legend": panel.legend,
        "layout": {"x": panel.x, "y": panel.y, "w": panel.w, "h": panel.h},
    }


def export_dashboard(dashboard: Dashboard) -> dict:
    """The dashboard as a document; panels in the order they are drawn."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": dashboard.title,
        "description": dashboard.description,
        "panels": [panel_spec(panel) for panel in dashboard.panels.all()],
    }


# --- reading a document ------------------------------------------------------------------------


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_document(content: str | bytes) -> object:
    """The JSON value of an uploaded or pasted document; DocumentError if it is not one."""
    limit = f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"
    if isinstance(content, str):
        if len(content) > MAX_DOCUMENT_BYTES or len(content.encode("utf-8", "replace")) > (
            MAX_DOCUMENT_BYTES
        ):
            raise DocumentError([f"The document is larger than {limit}."])
        text = content
    else:
        if len(content) > MAX_DOCUMENT_BYTES:
            raise DocumentError([f"The document is larger than {limit}."])
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DocumentError(["The document is not UTF-8 text."]) from None
    if not text.strip():
        raise DocumentError(["The document is empty."])
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise DocumentError([f"The document nests deeper than {MAX_DEPTH} levels."]) from None
    except ValueError as exc:
        raise DocumentError([f"The document is not valid JSON: {exc}."]) from None
    check_tree(value)
    return value


def check_tree(value: object) -> None:
    """Refuse nesting beyond MAX_DEPTH and text PostgreSQL cannot store (lone surrogates)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentError([f"The document nests deeper than {MAX_DEPTH} levels."])
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise DocumentError(["The document holds a number too large for JSON."])


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError(["The document holds text with an unpaired surrogate."]) from None


def read_document(value: object, *, schema: str) -> ImportPlan:
    """An import plan from a portal export or a Grafana dashboard; DocumentError otherwise."""
    if not isinstance(value, dict):
        raise DocumentError(["The document must be a JSON object (a dashboard)."])
    if "format" in value:
        if value["format"] != FORMAT:
            raise DocumentError([f"format: this portal reads {FORMAT!r} documents."])
        return _read_export(value)
    if grafana_import.looks_like_grafana(value):
        try:
            converted = grafana_import.convert(value, schema=schema)
        except grafana_import.GrafanaError as exc:
            raise DocumentError(exc.errors) from None
        return ImportPlan(
            origin="grafana",
            title=converted.title,
            description=converted.description,
            panels=converted.panels,
            skipped=converted.skipped,
            notes=converted.notes,
            dashboard_notes=converted.dashboard_notes,
        )
    raise DocumentError(
        [
            'This is neither a dashboard exported from this portal (no "format") nor a '
            'Grafana dashboard (no "panels").'
        ]
    )


def _read_export(value: dict) -> ImportPlan:
    errors = []
    unknown = sorted(str(key)[:40] for key in value if key not in DOCUMENT_KEYS)
    if unknown:
        errors.append(f"Unknown fields: {', '.join(unknown[:10])}.")
    version = value.get("version")
    if isinstance(version, bool) or version != VERSION:
        errors.append(f"version: this portal reads version {VERSION}.")
    title = value.get("title")
    if not isinstance(title, str):
        errors.append("title: send a string.")
    description = value.get("description", "")
    if not isinstance(description, str):
        errors.append("description: send a string.")
    panels = value.get("panels")
    if not isinstance(panels, list):
        errors.append("panels: send a list of panels.")
    elif len(panels) > MAX_PANELS:
        errors.append(f"panels: at most {MAX_PANELS} panels (this has {len(panels)}).")
    if errors:
        raise DocumentError(errors)
    return ImportPlan(origin="portal", title=title, description=description, panels=panels)


# --- one panel of a document -------------------------------------------------------------------


def spec_values(spec: object) -> dict:
    """The values `services.create_panel` takes, from one panel of a document.

    Only types are checked here (the panel form checks the values); ValidationError keyed by
    the document's field names.
    """
    if not isinstance(spec, dict):
        raise ValidationError({"panel": ["Send an object."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(str(key)[:40] for key in spec if key not in SPEC_KEYS)
    if unknown:
        errors["panel"] = [f"Unknown fields: {', '.join(unknown[:10])}."]
    for name in ("title", "kind", "source"):
        if name not in spec:
            errors[name] = ["This field is required."]
    values: dict = {}
    for name in TEXT_KEYS:
        if name not in spec:
            continue
        if not isinstance(spec[name], str):
            errors[name] = ["Send a string."]
        else:
            values[name] = spec[name]
    label_filter = spec.get("label_filter", {})
    if not isinstance(label_filter, dict) or not all(
        isinstance(v, str) for v in label_filter.values()
    ):
        errors["label_filter"] = ["Send an object of label names and text values."]
    else:
        values["label_filter"] = label_filter
    thresholds = spec.get("thresholds", [])
    if not isinstance(thresholds, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in thresholds
    ):
        errors["thresholds"] = ["Send a list of numbers."]
    else:
        values["thresholds"] = thresholds
    try:
        values.update(clean_cell(spec.get("layout")))
    except ValidationError as exc:
        errors["layout"] = exc.messages
    if errors:
        raise ValidationError(errors)
    return values


def import_outcome(plan: ImportPlan, dashboard: Dashboard) -> dict:
    """What came of an import, as the report page and the API both say it."""
    return {
        "origin": plan.origin,
        "imported": [{"title": p.title, "kind": p.kind} for p in dashboard.panels.all()],
        "skipped": [{"panel": title, "reason": reason} for title, reason in plan.skipped],
        "notes": [{"panel": title, "note": note} for title, note in plan.notes],
        "dashboard_notes": list(plan.dashboard_notes),
    }


def split_refusal(exc: ValidationError, *, title_sent: bool) -> tuple[list[str], list[str]]:
    """The import service's refusal as (about the title sent, about the document)."""
    problems = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
    title, document = [], []
    for key, messages in problems.items():
        if key == "title" and title_sent:
            title += messages
        elif key in ("", "panels"):
            document += messages
        else:
            document += [f"{key}: {message}" for message in messages]
    return title, document
