"""What the dashboard page hands to Plotly.js: one payload per panel, built on the server."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection
from django.urls import reverse
from django_tenants.utils import schema_context

from dashboards import figures, prometheus_poll, queries
from dashboards.models import Dashboard, Panel
from dashboards.queries import QueryError, TimeRange
from portal.backends.prometheus import PrometheusBackend

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


# Prometheus panels asked at once: each is an HTTP round trip that mostly waits.
PROMETHEUS_PARALLEL = 8
_NOT_ASKED = object()


def _prometheus_figure(panel: Panel, span: TimeRange, schema: str) -> dict[str, Any] | str:
    """In a worker thread: the figure, or the error text. A Prometheus panel's figure needs
    no database, only the schema its query is scoped to."""
    try:
        with schema_context(schema):
            return figure_for(panel, span)
    except QueryError as exc:
        return str(exc)
    finally:
        connection.close()  # this thread's own, if anything opened it


def panel_payloads(
    dashboard: Dashboard, panels: Sequence[Panel], span: TimeRange
) -> list[dict[str, Any]]:
    """Every panel's payload. Prometheus panels are asked in parallel; built-in ones in this
    thread, on its database connection."""
    asked = [panel for panel in panels if panel.source == Panel.Source.PROMETHEUS]
    answers: dict[int, dict[str, Any] | str] = {}
    if len(asked) > 1 and PrometheusBackend().configured:
        schema = connection.schema_name
        with ThreadPoolExecutor(max_workers=min(PROMETHEUS_PARALLEL, len(asked))) as pool:
            found = pool.map(lambda panel: _prometheus_figure(panel, span, schema), asked)
            answers = dict(zip((panel.pk for panel in asked), found, strict=True))
    return [
        panel_payload(dashboard, panel, span, answer=answers.get(panel.pk, _NOT_ASKED))
        for panel in panels
    ]


def panel_payload(
    dashboard: Dashboard, panel: Panel, span: TimeRange, *, answer: Any = _NOT_ASKED
) -> dict[str, Any]:
    """Everything the page script needs for one panel (figure, or the reason there is none);
    `answer` is the figure or error text already fetched for it."""
    payload: dict[str, Any] = {
        "id": str(panel.public_id),
        "kind": panel.kind,
        "title": panel.title,
        "aggregation": panel.aggregation,
        # Built-in panels get each pushed sample; Prometheus ones the watched-dashboard poll
        # (a table is redrawn on reload only).
        "live": panel.source == Panel.Source.BUILTIN or panel.kind in prometheus_poll.LIVE_KINDS,
        "csv": reverse("dashboard-panel-csv", args=[dashboard.public_id, panel.public_id]),
    }
    if answer is _NOT_ASKED:
        try:
            answer = figure_for(panel, span)
        except QueryError as exc:
            answer = str(exc)
    payload["error" if isinstance(answer, str) else "figure"] = answer
    return payload
