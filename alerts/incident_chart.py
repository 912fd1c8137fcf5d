"""The incident page's chart: the expression of the rule that fired, from 30 minutes before the
incident started to 30 minutes after it ended (or now), with the incident's period shaded.

A Plotly figure (data + layout, as `dashboards.figures` builds them) that `static/js/incident.js`
draws. When the rule ends in a comparison (`… > 5`) the chart shows the left-hand side and the
threshold as a line, as the rule editor's preview does: the filtered result alone would only
show the points that fired. The series this incident is about (its labels match the alert's) is
drawn bold. Every refusal (no rule, Prometheus not connected or failing, an expression that can
no longer be scoped) comes back as a message, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts import queries
from alerts.models import Incident
from alerts.preview import choose_step, series_name, split_threshold
from alerts.promql import PromQLError, scope_to_tenant

MARGIN = timedelta(minutes=30)
MAX_SERIES = 20
INCIDENT_FILL = "rgba(200, 40, 40, 0.12)"
THRESHOLD_COLOUR = "rgb(200, 40, 40)"
ACK_COLOUR = "#ef6c00"
FOCUS_COLOUR = "#1e40af"
OTHER_COLOURS = ["#8e24aa", "#00897b", "#6d4c41", "#3949ab", "#f4511e", "#546e7a"]


@dataclass
class IncidentChart:
    """The figure, or why there is none (`message`; `connected` False when Prometheus is not
    set up at all, which is a normal state rather than a failure)."""

    figure: dict[str, Any] | None = None
    message: str = ""
    connected: bool = True
    expr: str = ""
    notes: list[str] = field(default_factory=list)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _matches(series: queries.Series, incident: Incident) -> bool:
    labels = {k: v for k, v in series.labels.items() if k != "__name__"}
    return bool(labels) and all(incident.labels.get(k) == v for k, v in labels.items())


def _peak(series: queries.Series) -> float:
    values = [v for _, v in series.points if math.isfinite(v)]
    return max(values, default=-math.inf)


def _shared_labels(series: list[queries.Series]) -> set[str]:
    """Labels every series has with the same value: left out of the legend, which then names
    each series by what tells it apart (and fits a phone)."""
    if len(series) < 2:
        return set()
    first = series[0].labels
    return {
        k
        for k, v in first.items()
        if k != "__name__" and all(s.labels.get(k) == v for s in series[1:])
    }


def _shapes(incident: Incident, now: datetime, threshold: float | None) -> list[dict]:
    shapes: list[dict] = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": _ms(incident.started_at),
            "x1": _ms(incident.ended_at or now),
            "y0": 0,
            "y1": 1,
            "fillcolor": INCIDENT_FILL,
            "line": {"width": 0},
            "layer": "below",
        },
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": _ms(incident.started_at),
            "x1": _ms(incident.started_at),
            "y0": 0,
            "y1": 1,
            "line": {"color": THRESHOLD_COLOUR, "width": 1.5},
        },
    ]
    if incident.acknowledged_at:
        ack = _ms(incident.acknowledged_at)
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": ack,
                "x1": ack,
                "y0": 0,
                "y1": 1,
                "line": {"color": ACK_COLOUR, "width": 1.5, "dash": "dot"},
            }
        )
    if threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": threshold,
                "y1": threshold,
                "line": {"color": THRESHOLD_COLOUR, "width": 2, "dash": "dash"},
            }
        )
    return shapes


def _figure(
    incident: Incident,
    series: list[queries.Series],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    threshold: float | None,
) -> dict[str, Any]:
    traces = []
    others = 0
    shared = _shared_labels(series)
    for one in series:
        focus = _matches(one, incident)
        colour = FOCUS_COLOUR if focus else OTHER_COLOURS[others % len(OTHER_COLOURS)]
        others += 0 if focus else 1
        own = {k: v for k, v in one.labels.items() if k not in shared}
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": series_name(own) or series_name(one.labels) or "value",
                "x": [round(t * 1000) for t, _ in one.points],
                "y": [v if math.isfinite(v) else None for _, v in one.points],
                "connectgaps": False,
                "line": {"color": colour, "width": 2.5 if focus else 1.2},
                "opacity": 1 if focus else 0.7,
                "hovertemplate": "%{y}<extra>%{fullData.name}</extra>",
            }
        )
    return {
        "data": traces,
        "layout": {
            "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
            "height": 320,
            "autosize": True,
            "showlegend": 1 < len(traces) <= 10,
            "legend": {"orientation": "h", "y": -0.25},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"size": 12},
            "xaxis": {
                "type": "date",
                "range": [_ms(start), _ms(end)],
                "title": {"text": "UTC"},
                "automargin": True,
            },
            "yaxis": {"zeroline": False, "automargin": True},
            "shapes": _shapes(incident, now, threshold),
        },
    }


def incident_chart(
    incident: Incident, *, schema: str, now: datetime | None = None
) -> IncidentChart:
    """The chart of `incident`'s rule around it (`incident.rule` and its group loaded)."""
    rule = incident.rule
    if rule is None:
        return IncidentChart(
            message="No chart: the rule that fired this incident is not in the portal any more "
            "(deleted, or renamed), so there is no expression to draw."
        )
    now = now or datetime.now(tz=UTC)
    start = incident.started_at - MARGIN
    end = min((incident.ended_at or now) + MARGIN, now)
    if end <= start:  # an alert that starts in the future (a skewed clock): still a window
        end = start + 2 * MARGIN
    step = choose_step(int((end - start).total_seconds()), rule.group.interval)
    threshold = split_threshold(rule.expr)
    try:
        expr = scope_to_tenant(threshold.lhs if threshold else rule.expr, schema)
    except PromQLError as exc:
        return IncidentChart(message=f"No chart: the rule's expression cannot be queried ({exc}).")
    chart = IncidentChart(expr=expr)
    if rule.updated_at > incident.started_at:
        chart.notes.append(
            "The rule was changed after this incident started: the chart uses its current "
            "expression."
        )
    try:
        series = queries.query_range(expr, start, end, step, timeout=queries.PAGE_TIMEOUT)
    except queries.Unavailable as exc:
        chart.connected = exc.connected
        chart.message = (
            f"No chart: {exc.reason}"
            if not exc.connected
            else f"No chart: Prometheus did not answer ({exc.reason})."
        )
        return chart
    except ValueError as exc:  # a window the backend refuses; nothing to draw
        chart.message = f"No chart: {exc}."
        return chart
    if not series:
        chart.message = "The expression returned no data around this incident."
        return chart
    # The incident's own series first, then the highest: those are what people compare.
    ranked = sorted(series, key=lambda s: (not _matches(s, incident), -_peak(s)))
    if len(ranked) > MAX_SERIES:
        chart.notes.append(f"The chart shows {MAX_SERIES} of {len(ranked)} series.")
    chart.figure = _figure(
        incident,
        ranked[:MAX_SERIES],
        start=start,
        end=end,
        now=now,
        threshold=threshold.value if threshold else None,
    )
    return chart
