"""One query layer for every panel: the same `Series` shape from the built-in store and from
Prometheus, bucketed for the time range and downsampled to the panel's pixel width.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from alerts.promql import PromQLError, scope_to_tenant
from dashboards import store
from dashboards.downsample import minmax
from dashboards.models import MetricDefinition, MetricSeries, Panel
from dashboards.store import Series
from portal.backends.base import BackendError
from portal.backends.prometheus import PrometheusBackend

RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "24h"
DEFAULT_WIDTH = 600
MIN_STEP = timedelta(seconds=10)
# Two buckets per pixel: the downsampler then keeps each pixel's low and high.
BUCKETS_PER_PIXEL = 2
# Prometheus refuses a range query of more than 11,000 points per series.
PROMETHEUS_MAX_POINTS = 11_000
# From this step on, buckets are whole hours (the hourly rollup): at most twice the step.
HOURLY_FROM_SECONDS = 1800


class QueryError(Exception):
    """A panel's query cannot be answered; the message is shown on the panel."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    key: str  # the picker's name for it, or "custom"

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> TimeRange:
        """The period of the same length just before this one (for "change against")."""
        return TimeRange(self.start - self.length, self.start, self.key)


def time_range(params, *, now: datetime | None = None) -> TimeRange:
    """The range a page asks for: `range=24h`, or `from`/`to` ISO date-times; default 24 h."""
    now = now or timezone.now()
    start, end = params.get("from"), params.get("to")
    if start and end:
        first, second = parse_datetime(start), parse_datetime(end)
        if first and second:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            second = second if second.tzinfo else second.replace(tzinfo=UTC)
            if first < second and second - first <= RANGES["90d"]:
                return TimeRange(first, second, "custom")
    key = params.get("range") if params.get("range") in RANGES else DEFAULT_RANGE
    return TimeRange(now - RANGES[key], now, key)


def step_for(span: TimeRange, width: int) -> timedelta:
    """The bucket width for `span` drawn `width` pixels wide (never finer than 10 s).

    Steps of five minutes or more are whole five minutes, and of half an hour or more whole
    hours, so long ranges read the rollups instead of every sample; rounding up never leaves
    fewer than one bucket per pixel.
    """
    seconds = int((span.length / max(1, width * BUCKETS_PER_PIXEL)).total_seconds())
    if seconds >= HOURLY_FROM_SECONDS:
        seconds = -(-seconds // store.HOUR_SECONDS) * store.HOUR_SECONDS
    elif seconds >= store.ROLLUP_SECONDS:
        seconds = -(-seconds // store.ROLLUP_SECONDS) * store.ROLLUP_SECONDS
    return max(MIN_STEP, timedelta(seconds=seconds))


def _downsampled(series: list[Series], width: int) -> list[Series]:
    points = max(4, width)
    return [Series(s.name, s.labels, minmax(s.points, points)) for s in series]


# Where a panel object keeps the series it was found to read (see `_stored_series`).
_SERIES_MEMO = "_stored_series"


def _stored_series(panel: Panel) -> list[MetricSeries]:
    """The series of the store a built-in panel reads; QueryError if its metric is unknown.

    Looked up once per panel object: a KPI's sparkline, figure and previous-period figure
    share them.
    """
    wanted = (panel.metric, dict(panel.label_filter or {}))
    memo = panel.__dict__.get(_SERIES_MEMO)
    if memo is not None and memo[0] == wanted:
        return memo[1]
    matching = store.matching_series(panel.metric, panel.label_filter or {})
    if not matching and not MetricDefinition.objects.filter(name=panel.metric).exists():
        raise QueryError(f"{panel.metric or 'No metric'} is not in the metric catalog.")
    panel.__dict__[_SERIES_MEMO] = (wanted, matching)
    return matching


def builtin_series(
    panel: Panel, span: TimeRange, *, width: int = DEFAULT_WIDTH, step: timedelta | None = None
) -> list[Series]:
    """The panel's metric from the tenant's store: its aggregation per bucket."""
    series = store.bucketed(
        _stored_series(panel),
        aggregation=panel.aggregation,
        start=span.start,
        end=span.end,
        step=step or step_for(span, width),
        name=panel.metric,
    )
    return _downsampled(series, width)


def prometheus_series(
    panel: Panel, span: TimeRange, *, width: int = DEFAULT_WIDTH, backend=None
) -> list[Series]:
    """The panel's PromQL, scoped to this tenant, as a range query."""
    try:
        expr = scope_to_tenant(panel.promql, connection.schema_name)
    except PromQLError as exc:
        raise QueryError(f"PromQL: {exc}") from None
    step = step_for(span, width).total_seconds()
    step = max(step, span.length.total_seconds() / PROMETHEUS_MAX_POINTS)
    backend = backend or PrometheusBackend()
    if not backend.configured:
        raise QueryError("Prometheus is not connected.")
    try:
        result = backend.query_range(expr, span.start, span.end, step)
    except BackendError as exc:
        raise QueryError(f"Prometheus: {exc}") from None
    series = []
    for item in result:
        labels = {k: v for k, v in item.get("metric", {}).items() if k != "tenant"}
        name = labels.pop("__name__", "")
        points = [(float(t), float(v)) for t, v in item.get("values", [])]
        series.append(Series(name or panel.title, labels, points))
    return _downsampled(series, width)


def panel_series(panel: Panel, span: TimeRange, *, width: int = DEFAULT_WIDTH) -> list[Series]:
    """The series a panel shows over `span`, whatever its source."""
    if panel.source == Panel.Source.PROMETHEUS:
        return prometheus_series(panel, span, width=width)
    return builtin_series(panel, span, width=width)


def panel_total(panel: Panel, span: TimeRange) -> float | None:
    """The panel's aggregation over the whole span (built-in store; a KPI's headline figure)."""
    try:
        matching = _stored_series(panel)
    except QueryError:
        return None
    return store.aggregate_over(
        matching, aggregation=panel.aggregation, start=span.start, end=span.end
    )
