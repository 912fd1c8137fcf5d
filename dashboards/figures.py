"""Plotly figures (data + layout dicts, as plotly's Python figures serialise) for each panel kind.

The page hands each figure to Plotly.js in a JSON block; times are epoch milliseconds on a date
axis, so the live script can append points as they come.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dashboards.models import Panel
from dashboards.store import Series

OK, WARN, BAD = "#2e7d32", "#ef6c00", "#c62828"
LINE_COLOURS = ["#1e88e5", "#8e24aa", "#00897b", "#f4511e", "#6d4c41", "#3949ab"]
MAX_TABLE_ROWS = 50


def _base_layout(panel: Panel) -> dict[str, Any]:
    return {
        "margin": {"l": 48, "r": 12, "t": 8, "b": 32},
        "autosize": True,
        "showlegend": False,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"size": 12},
        "xaxis": {"type": "date", "automargin": True},
        "yaxis": {"title": {"text": panel.unit}, "automargin": True, "rangemode": "tozero"},
    }


_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def series_label(series: Series, legend: str = "") -> str:
    if legend:
        # Prometheus' (and Grafana's) legend format: {{label}} is that label's value.
        named = _LEGEND_LABEL.sub(lambda m: str(series.labels.get(m.group(1), "")), legend)
        if named.strip():
            return named
    if not series.labels:
        return series.name
    return ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))


def _xy(series: Series) -> tuple[list[float], list[float]]:
    return [t * 1000 for t, _ in series.points], [v for _, v in series.points]


def _threshold_shapes(panel: Panel) -> list[dict[str, Any]]:
    colours = [WARN, BAD]
    return [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": value,
            "y1": value,
            "line": {"color": colours[min(i, 1)], "dash": "dot", "width": 1},
        }
        for i, value in enumerate(panel.thresholds or [])
    ]


def timeseries_figure(panel: Panel, series: Sequence[Series], *, bar: bool = False) -> dict:
    data = []
    for index, one in enumerate(series):
        x, y = _xy(one)
        trace: dict[str, Any] = {
            "type": "bar" if bar else "scatter",
            "x": x,
            "y": y,
            "name": series_label(one, panel.legend),
            "marker": {"color": LINE_COLOURS[index % len(LINE_COLOURS)]},
        }
        if not bar:
            trace["mode"] = "lines"
            trace["line"] = {"width": 1.5}
        data.append(trace)
    layout = _base_layout(panel)
    layout["showlegend"] = len(series) > 1
    layout["legend"] = {"orientation": "h", "y": -0.25}
    layout["shapes"] = _threshold_shapes(panel)
    return {"data": data, "layout": layout}


def _colour_for(panel: Panel, value: float | None) -> str:
    thresholds = panel.thresholds or []
    if value is None or not thresholds:
        return LINE_COLOURS[0]
    passed = sum(1 for limit in thresholds if value >= limit)
    return [OK, WARN, BAD][min(passed, 2)]


def stat_figure(
    panel: Panel, series: Sequence[Series], value: float | None, previous: float | None
) -> dict:
    """A big number, its change against the previous period, and a sparkline under it."""
    indicator: dict[str, Any] = {
        "type": "indicator",
        "mode": "number+delta" if previous not in (None, 0) else "number",
        "value": value,
        "number": {"suffix": f" {panel.unit}" if panel.unit else "", "valueformat": ",.4~s"},
        "domain": {"x": [0, 1], "y": [0.35, 1]},
    }
    if previous not in (None, 0):
        indicator["delta"] = {"reference": previous, "relative": True, "valueformat": "+.1%"}
    data: list[dict[str, Any]] = [indicator]
    if series:
        x, y = _xy(series[0])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": y,
                "fill": "tozeroy",
                "line": {"width": 1, "color": _colour_for(panel, value)},
                "hoverinfo": "skip",
                "xaxis": "x",
                "yaxis": "y",
            }
        )
    layout = {
        "margin": {"l": 4, "r": 4, "t": 4, "b": 4},
        "autosize": True,
        "showlegend": False,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {"visible": False, "type": "date", "domain": [0, 1]},
        "yaxis": {"visible": False, "domain": [0, 0.3]},
    }
    return {"data": data, "layout": layout}


def gauge_figure(panel: Panel, value: float | None) -> dict:
    thresholds = list(panel.thresholds or [])
    top = max([*thresholds, value or 0, 1.0]) * 1.25
    edges = [0.0, *thresholds, top]
    steps = [
        {"range": [edges[i], edges[i + 1]], "color": [OK, WARN, BAD][min(i, 2)] + "33"}
        for i in range(len(edges) - 1)
    ]
    return {
        "data": [
            {
                "type": "indicator",
                "mode": "gauge+number",
                "value": value,
                "number": {
                    "suffix": f" {panel.unit}" if panel.unit else "",
                    "valueformat": ",.4~s",
                },
                "gauge": {
                    "axis": {"range": [0, top]},
                    "bar": {"color": _colour_for(panel, value)},
                    "steps": steps,
                },
            }
        ],
        "layout": {
            "margin": {"l": 24, "r": 24, "t": 16, "b": 8},
            "autosize": True,
            "paper_bgcolor": "rgba(0,0,0,0)",
        },
    }


def table_figure(panel: Panel, series: Sequence[Series]) -> dict:
    """The newest points of every series, newest first."""
    rows = sorted(
        ((t, series_label(one, panel.legend), v) for one in series for t, v in one.points),
        key=lambda row: row[0],
        reverse=True,
    )[:MAX_TABLE_ROWS]
    return {
        "data": [
            {
                "type": "table",
                "header": {"values": ["Time (UTC)", "Series", f"Value {panel.unit}".strip()]},
                "cells": {
                    "values": [
                        [_iso(t) for t, _, _ in rows],
                        [label for _, label, _ in rows],
                        [round(v, 4) for _, _, v in rows],
                    ]
                },
            }
        ],
        "layout": {"margin": {"l": 4, "r": 4, "t": 4, "b": 4}, "autosize": True},
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def last_value(series: Sequence[Series]) -> float | None:
    values = [one.points[-1] for one in series if one.points]
    return max(values)[1] if values else None
