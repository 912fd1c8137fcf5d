"""What the dashboard page hands to Plotly.js: one payload per panel, built on the server."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from dashboards import figures, queries
from dashboards.models import Dashboard, Panel
from dashboards.queries import QueryError, TimeRange

# Pixel width of a full-width panel; a panel of w columns gets w/12 of it.
FULL_WIDTH_PX = 1200
GRID_COLUMNS = 12


def panel_width_px(panel: Panel) -> int:
    return max(120, FULL_WIDTH_PX * panel.w // GRID_COLUMNS)


def figure_for(panel: Panel, span: TimeRange) -> dict[str, Any]:
    """The panel's Plotly figure over `span`; QueryError if its query cannot be answered."""
    width = panel_width_px(panel)
    series = queries.panel_series(panel, span, width=width)
    if panel.kind in (Panel.Kind.TIMESERIES, Panel.Kind.BAR):
        return figures.timeseries_figure(panel, series, bar=panel.kind == Panel.Kind.BAR)
    if panel.kind == Panel.Kind.TABLE:
        return figures.table_figure(panel, series)
    if panel.kind == Panel.Kind.GAUGE:
        return figures.gauge_figure(panel, figures.last_value(series))
    if panel.source == Panel.Source.BUILTIN:
        value = queries.panel_total(panel, span)
        previous = queries.panel_total(panel, span.previous())
    else:
        value, previous = figures.last_value(series), None
    return figures.stat_figure(panel, series, value, previous)


def panel_payload(dashboard: Dashboard, panel: Panel, span: TimeRange) -> dict[str, Any]:
    """Everything the page script needs for one panel (figure, or the reason there is none)."""
    payload: dict[str, Any] = {
        "id": str(panel.public_id),
        "kind": panel.kind,
        "title": panel.title,
        "aggregation": panel.aggregation,
        "live": panel.source == Panel.Source.BUILTIN,
        "csv": reverse("dashboard-panel-csv", args=[dashboard.public_id, panel.public_id]),
    }
    try:
        payload["figure"] = figure_for(panel, span)
    except QueryError as exc:
        payload["error"] = str(exc)
    return payload
