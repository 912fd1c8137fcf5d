"""Writes to dashboards, each with its audit event. Callers run inside the tenant's schema.

Callers pass values `dashboards.forms.DashboardForm` has cleaned; they are checked again here,
since the admin and commands call these services too.
"""

import uuid
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from alerts.promql import PromQLError, scope_to_tenant
from dashboards import grafana_push, ingest, portable, store
from dashboards.actions import AuditAction
from dashboards.forms import (
    DESCRIPTION_MAX,
    MAX_PANELS,
    TITLE_MAX,
    MetricDefinitionForm,
    PanelForm,
    clean_layout,
)
from dashboards.models import Dashboard, MetricDefinition, MetricSettings, Panel
from tenants import audit
from tenants.forms import check_field_text, tidy_text


def _clean_title(title: str) -> str:
    title = check_field_text("title", title, max_length=TITLE_MAX)
    if not title:
        raise ValidationError({"title": ["This field is required."]})
    return title


def _clean_description(description: str) -> str:
    return check_field_text("description", description, max_length=DESCRIPTION_MAX, multiline=True)


@transaction.atomic
def create_dashboard(*, title: str, description: str = "", actor: audit.Actor) -> Dashboard:
    dashboard = Dashboard.objects.create(
        title=_clean_title(title), description=_clean_description(description)
    )
    audit.record(
        actor=actor,
        action=AuditAction.DASHBOARD_CREATED,
        obj=dashboard,
        after={"title": dashboard.title, "description": dashboard.description},
    )
    return dashboard


@transaction.atomic
def update_dashboard(
    *,
    dashboard_id,
    title: str | None = None,
    description: str | None = None,
    actor: audit.Actor,
) -> Dashboard:
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    before = {"title": dashboard.title, "description": dashboard.description}
    if title is not None:
        dashboard.title = _clean_title(title)
    if description is not None:
        dashboard.description = _clean_description(description)
    after = {"title": dashboard.title, "description": dashboard.description}
    if after == before:
        return dashboard  # nothing changed: nothing to record
    dashboard.save()
    grafana_push.dashboard_changed(dashboard)
    audit.record(
        actor=actor,
        action=AuditAction.DASHBOARD_UPDATED,
        obj=dashboard,
        before=before,
        after=after,
    )
    return dashboard


@transaction.atomic
def delete_dashboard(*, dashboard_id, actor: audit.Actor) -> None:
    """Remove a dashboard with its panels; the trail keeps what they were."""
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    audit.record(
        actor=actor,
        action=AuditAction.DASHBOARD_DELETED,
        obj=dashboard,
        before={
            "title": dashboard.title,
            "description": dashboard.description,
            "panels": [_panel_values(panel) for panel in dashboard.panels.all()],
        },
    )
    grafana_push.dashboard_deleting(dashboard)
    dashboard.delete()


def _shown(title: object) -> str:
    """A panel's title as an error message may quote it: one line, short."""
    return tidy_text(title, 60)


# Where a panel form's field is in a document.
_DOCUMENT_FIELD = {"x": "layout x", "y": "layout y", "w": "layout w", "h": "layout h"}


def _checked_specs(specs: list) -> list[dict]:
    """Each panel of a document checked as `create_panel` would; every error names its panel."""
    if len(specs) > MAX_PANELS:
        raise ValidationError({"panels": [f"At most {MAX_PANELS} panels (this has {len(specs)})."]})
    checked, errors = [], []
    for index, spec in enumerate(specs):
        name = _shown(spec.get("title")) if isinstance(spec, dict) else ""
        where = f"Panel {index + 1}" + (f" “{name}”" if name else "")
        try:
            values = _check_panel({**portable.spec_values(spec), "position": index})
        except ValidationError as exc:
            problems = exc.message_dict if hasattr(exc, "error_dict") else {"panel": exc.messages}
            for key, messages in problems.items():
                label = _DOCUMENT_FIELD.get(key, key)
                errors += [f"{where}, {label}: {message}" for message in messages]
            continue
        checked.append(values)
    if errors:
        shown = errors[: portable.MAX_ERRORS]
        if len(errors) > len(shown):
            shown.append(f"… and {len(errors) - len(shown)} more.")
        raise ValidationError({"panels": shown})
    return checked


@transaction.atomic
def import_dashboard(
    *,
    plan: portable.ImportPlan,
    actor: audit.Actor,
    title: str | None = None,
) -> Dashboard:
    """A new dashboard from an import plan (`portable.read_document`): all of it or nothing.

    `title`, if given, replaces the document's. The trail records the import (where it came
    from, what was left out) and each panel as created.
    """
    title = _clean_title(title if title else plan.title)
    description = _clean_description(plan.description)
    checked = _checked_specs(plan.panels)
    dashboard = Dashboard.objects.create(title=title, description=description)
    audit.record(
        actor=actor,
        action=AuditAction.DASHBOARD_IMPORTED,
        obj=dashboard,
        after={
            "title": title,
            "description": description,
            "origin": plan.origin,
            "panels": len(checked),
            "skipped": [{"panel": t, "reason": r} for t, r in plan.skipped[:MAX_PANELS]],
        },
    )
    for values in checked:
        panel = Panel.objects.create(dashboard=dashboard, **values)
        audit.record(
            actor=actor, action=AuditAction.PANEL_CREATED, obj=panel, after=_panel_values(panel)
        )
    return dashboard


MAX_RETENTION_DAYS = 400


def list_dashboards():
    return Dashboard.objects.all()


# --- Panels ----------------------------------------------------------------------------------

PANEL_FIELDS = (
    "title",
    "kind",
    "source",
    "metric",
    "aggregation",
    "label_filter",
    "promql",
    "unit",
    "thresholds",
    "legend",
    "x",
    "y",
    "w",
    "h",
    "position",
)


def _panel_values(panel: Panel) -> dict:
    return {name: getattr(panel, name) for name in PANEL_FIELDS}


def _check_panel(values: dict) -> dict:
    """Values a `PanelForm` cleaned, checked against what needs the database or the parser."""
    form = PanelForm(data={k: v for k, v in values.items() if v is not None})
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    values = form.cleaned_data
    if values["source"] == Panel.Source.BUILTIN:
        if not MetricDefinition.objects.filter(name=values["metric"]).exists():
            raise ValidationError({"metric": [f"{values['metric']} is not in the metric catalog."]})
        values["promql"] = ""
    else:
        try:
            # Scoping also refuses an expression that names another tenant.
            scope_to_tenant(values["promql"], connection.schema_name)
        except PromQLError as exc:
            raise ValidationError({"promql": [str(exc)]}) from None
        values["metric"] = ""
    return values


@transaction.atomic
def create_panel(*, dashboard_id, actor: audit.Actor, **values) -> Panel:
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    panel = Panel.objects.create(dashboard=dashboard, **_check_panel(values))
    grafana_push.dashboard_changed(dashboard)
    audit.record(
        actor=actor, action=AuditAction.PANEL_CREATED, obj=panel, after=_panel_values(panel)
    )
    return panel


@transaction.atomic
def update_panel(*, panel_id, actor: audit.Actor, **values) -> Panel:
    panel = Panel.objects.select_for_update().get(public_id=panel_id)
    before = _panel_values(panel)
    checked = _check_panel({**before, **{k: v for k, v in values.items() if v is not None}})
    for name, value in checked.items():
        setattr(panel, name, value)
    after = _panel_values(panel)
    if after == before:
        return panel
    panel.save()
    grafana_push.dashboard_changed(panel.dashboard)
    audit.record(
        actor=actor, action=AuditAction.PANEL_UPDATED, obj=panel, before=before, after=after
    )
    return panel


@transaction.atomic
def delete_panel(*, panel_id, actor: audit.Actor) -> None:
    panel = Panel.objects.select_for_update().get(public_id=panel_id)
    audit.record(
        actor=actor, action=AuditAction.PANEL_DELETED, obj=panel, before=_panel_values(panel)
    )
    grafana_push.dashboard_changed(panel.dashboard)
    panel.delete()


def panels_of(dashboard: Dashboard):
    return dashboard.panels.all()


LAYOUT_FIELDS = ("x", "y", "w", "h", "position")


def _panel_key(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


@transaction.atomic
def arrange_panels(*, dashboard_id, layout, actor: audit.Actor) -> list[Panel]:
    """Place every panel of the dashboard: `layout` is [{panel: <id>, x, y, w, h}, ...].

    Every panel is named exactly once, so the order is total: panels are drawn by (y, x), ties
    in the order sent. Returns the panels in their new order.
    """
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    cells = clean_layout(layout)
    panels = {str(panel.public_id): panel for panel in dashboard.panels.select_for_update()}
    errors, seen = [], set()
    for index, cell in enumerate(cells):
        key = _panel_key(cell["panel"])
        if key not in panels:
            # The same words for a malformed id, another dashboard's and another tenant's.
            errors.append(f"Item {index}: no panel with this id on this dashboard.")
        elif key in seen:
            errors.append(f"Item {index}: {panels[key].title} is named twice.")
        seen.add(key)
        cell["panel"] = key
    left_out = [panel.title for key, panel in panels.items() if key not in seen]
    if left_out:
        shown = ", ".join(left_out[:5]) + (" …" if len(left_out) > 5 else "")
        errors.append(f"Name every panel once; {len(left_out)} left out: {shown}.")
    if errors:
        raise ValidationError({"layout": errors[:20]})
    order = sorted(range(len(cells)), key=lambda i: (cells[i]["y"], cells[i]["x"], i))
    before, after, changed = {}, {}, []
    for position, index in enumerate(order):
        cell = cells[index]
        panel = panels[cell["panel"]]
        old = {name: getattr(panel, name) for name in LAYOUT_FIELDS}
        new = {**{name: cell[name] for name in ("x", "y", "w", "h")}, "position": position}
        if old != new:
            for name, value in new.items():
                setattr(panel, name, value)
            changed.append(panel)
            before[cell["panel"]] = {"title": panel.title, **old}
            after[cell["panel"]] = {"title": panel.title, **new}
    if changed:
        Panel.objects.bulk_update(changed, LAYOUT_FIELDS)
        grafana_push.dashboard_changed(dashboard)
        audit.record(
            actor=actor,
            action=AuditAction.DASHBOARD_ARRANGED,
            obj=dashboard,
            before={"panels": before},
            after={"panels": after},
        )
    return [panels[cells[index]["panel"]] for index in order]


# --- Metric catalog --------------------------------------------------------------------------

METRIC_FIELDS = ("name", "type", "unit", "help", "labels", "category", "cardinality_limit")


def _metric_values(metric: MetricDefinition) -> dict:
    return {name: getattr(metric, name) for name in METRIC_FIELDS}


def _check_metric(values: dict) -> dict:
    form = MetricDefinitionForm(data={k: v for k, v in values.items() if v is not None})
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    return form.cleaned_data


@transaction.atomic
def create_metric(*, actor: audit.Actor, **values) -> MetricDefinition:
    values = _check_metric(values)
    if MetricDefinition.objects.filter(name=values["name"]).exists():
        raise ValidationError({"name": [f"{values['name']} is already in the catalog."]})
    metric = MetricDefinition.objects.create(**values)
    audit.record(
        actor=actor, action=AuditAction.METRIC_CREATED, obj=metric, after=_metric_values(metric)
    )
    return metric


@transaction.atomic
def update_metric(*, metric_id, actor: audit.Actor, **values) -> MetricDefinition:
    metric = MetricDefinition.objects.select_for_update().get(public_id=metric_id)
    before = _metric_values(metric)
    checked = _check_metric({**before, **{k: v for k, v in values.items() if v is not None}})
    if checked["name"] != metric.name:
        raise ValidationError({"name": ["A metric keeps its name (its samples are stored by it)."]})
    if checked["type"] != metric.type and metric.series.exists():
        raise ValidationError({"type": ["The type of a metric with samples cannot change."]})
    for name, value in checked.items():
        setattr(metric, name, value)
    after = _metric_values(metric)
    if after == before:
        return metric
    metric.save()
    audit.record(
        actor=actor, action=AuditAction.METRIC_UPDATED, obj=metric, before=before, after=after
    )
    return metric


@transaction.atomic
def delete_metric(*, metric_id, actor: audit.Actor) -> None:
    """Remove a metric from the catalog with its series and samples."""
    metric = MetricDefinition.objects.select_for_update().get(public_id=metric_id)
    audit.record(
        actor=actor, action=AuditAction.METRIC_DELETED, obj=metric, before=_metric_values(metric)
    )
    store.delete_series_samples(list(metric.series.values_list("pk", flat=True)))
    metric.delete()


def list_metrics():
    return MetricDefinition.objects.all()


@transaction.atomic
def update_metric_settings(*, retention_days: int, actor: audit.Actor) -> MetricSettings:
    if not isinstance(retention_days, int) or not 1 <= retention_days <= MAX_RETENTION_DAYS:
        raise ValidationError(
            {"retention_days": [f"Keep samples between 1 and {MAX_RETENTION_DAYS} days."]}
        )
    row, _ = MetricSettings.objects.select_for_update().get_or_create(pk=1)
    before = {"retention_days": row.retention_days}
    row.retention_days = retention_days
    row.save()
    audit.record(
        actor=actor,
        action=AuditAction.METRIC_SETTINGS_UPDATED,
        obj=row,
        object_repr="metric store settings",
        before=before,
        after={"retention_days": retention_days},
    )
    return row


def expire_samples(*, now: datetime | None = None) -> int:
    """Delete the tenant's samples older than its retention; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=ingest.settings_row().retention_days)
    return store.delete_older_than(cutoff)
