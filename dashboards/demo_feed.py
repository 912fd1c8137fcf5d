"""Realistic demo metrics for the default dashboards: daily and weekly cycles, noise, anomalies.

`value_at` is a pure function of (tenant, series, time, seed), so the history written at start
and the live feed pushed afterwards join without a step.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboards import store
from dashboards.models import MetricDefinition, MetricSeries


@dataclass(frozen=True)
class DemoSeries:
    metric: str
    labels: dict[str, str]
    base: float
    noise: float  # relative standard deviation
    cycle: float = 0.0  # daily swing, relative to base (business hours busier)
    floor: float = 0.0
    ceiling: float | None = None
    whole: bool = False  # counts of things: whole numbers
    spike: float = 0.0  # relative jump during an anomaly (negative: a dip)


def _series() -> tuple[DemoSeries, ...]:
    # Open incidents and compliance figures are the tenant's real ones (`portal_kpis`).
    made = []
    for channel, base in (("web", 120.0), ("shop", 40.0), ("partner", 20.0)):
        made.append(DemoSeries("revenue_eur", {"channel": channel}, base, 0.15, 0.6, spike=-0.5))
    made += [
        DemoSeries("checkout_conversion_ratio", {}, 3.2, 0.05, 0.2, spike=-0.4),
        DemoSeries("active_users", {}, 800, 0.05, 0.7, whole=True),
        DemoSeries("availability_ratio", {}, 99.95, 0.0003, 0, ceiling=100, spike=-0.02),
        DemoSeries("error_budget_remaining_ratio", {}, 72, 0.01, 0, ceiling=100),
    ]
    for endpoint, latency, rate in (
        ("/checkout", 180, 30),
        ("/search", 90, 120),
        ("/api", 45, 300),
    ):
        made.append(
            DemoSeries(
                "http_request_duration_ms", {"endpoint": endpoint}, latency, 0.35, 0.3, spike=3.0
            )
        )
        made.append(DemoSeries("http_requests_per_second", {"endpoint": endpoint}, rate, 0.1, 0.8))
    made += [
        DemoSeries("http_errors_per_second", {"class": "4xx"}, 2.0, 0.3, 0.8, spike=2.0),
        DemoSeries("http_errors_per_second", {"class": "5xx"}, 0.3, 0.5, 0.8, spike=8.0),
    ]
    for host, cpu, memory in (("web-1", 45, 62), ("web-2", 42, 58), ("db-1", 30, 75)):
        made.append(
            DemoSeries("cpu_usage_ratio", {"host": host}, cpu, 0.1, 0.5, ceiling=100, spike=0.8)
        )
        made.append(
            DemoSeries("memory_usage_ratio", {"host": host}, memory, 0.02, 0.1, ceiling=100)
        )
    made += [
        DemoSeries("failed_signins", {}, 3, 0.6, 0.5, whole=True, spike=10.0),
        DemoSeries("suspicious_events", {"kind": "brute_force"}, 0.5, 0.8, whole=True, spike=12),
        DemoSeries("suspicious_events", {"kind": "impossible_travel"}, 0.2, 0.8, whole=True),
        DemoSeries("vulnerability_findings", {"severity": "critical"}, 2, 0.2, whole=True),
        DemoSeries("vulnerability_findings", {"severity": "high"}, 8, 0.1, whole=True),
        DemoSeries("vulnerability_findings", {"severity": "medium"}, 20, 0.05, whole=True),
    ]
    return tuple(made)


DEMO_SERIES = _series()
# Each tenant looks like a business of its own size.
TENANT_SCALE = {"acme": 1.0, "globex": 0.6}
ANOMALY_HOURS_PER_WEEK = 3


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) from `parts`."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_anomaly(slug: str, at: datetime) -> bool:
    """A few hours a week are incidents: the same hours for every series of a tenant."""
    hour = int(at.timestamp() // 3600)
    return _unit(slug, "anomaly", hour) < ANOMALY_HOURS_PER_WEEK / (7 * 24)


def value_at(slug: str, series: DemoSeries, at: datetime, rng: random.Random) -> float:
    scale = TENANT_SCALE.get(slug, 0.8)
    hours = at.hour + at.minute / 60
    # Busiest mid-afternoon, quietest at night; weekends at 60 % for business-hour series.
    daily = 1 + series.cycle * math.sin(2 * math.pi * (hours - 9) / 24)
    weekly = 0.6 if at.weekday() >= 5 and series.cycle else 1.0
    value = series.base * daily * weekly * (1 + rng.gauss(0, series.noise))
    if series.cycle or series.metric.startswith(("revenue", "active", "http_requests")):
        value *= scale
    if series.spike and in_anomaly(slug, at):
        value *= 1 + series.spike
    value = max(series.floor, value)
    if series.ceiling is not None:
        value = min(series.ceiling, value)
    return float(round(value)) if series.whole else round(value, 4)


def current_batch(slug: str, at: datetime, rng: random.Random) -> list[dict]:
    """One sample of every demo series at `at`, as `POST /api/v1/metrics` takes it."""
    return [
        {
            "name": series.metric,
            "labels": series.labels,
            "value": value_at(slug, series, at, rng),
            "timestamp": at.timestamp(),
        }
        for series in DEMO_SERIES
    ]


def history_rows(
    slug: str, series_ids: dict[int, int], start: datetime, end: datetime, step: timedelta
) -> Iterator[tuple[int, datetime, float]]:
    """Rows for COPY: every demo series from `start` to `end`, one sample per `step`."""
    rng = random.Random(f"{slug}-history")  # noqa: S311 (demo data, not a secret)
    at = start
    while at < end:
        for index, series in enumerate(DEMO_SERIES):
            yield series_ids[index], at, value_at(slug, series, at, rng)
        at += step


def ensure_series() -> dict[int, int]:
    """The store's series id of each demo series (created if missing), by index."""
    metrics = {m.name: m for m in MetricDefinition.objects.all()}
    ids = {}
    for index, series in enumerate(DEMO_SERIES):
        key = store.labels_key(series.labels)
        row, _ = MetricSeries.objects.get_or_create(
            metric=metrics[series.metric], labels_key=key, defaults={"labels": series.labels}
        )
        ids[index] = row.pk
    return ids


def backfill(slug: str, *, days: int, step: timedelta, now: datetime) -> int:
    """Write `days` of history before `now` unless the store already has some; rows written."""
    ids = ensure_series()
    start = now - timedelta(days=days)
    if MetricSeries.objects.filter(pk__in=ids.values(), last_at__gte=start).exists():
        return 0
    written = store.copy_rows(history_rows(slug, ids, start, now, step))
    store.rebuild_rollup(list(ids.values()))
    rng = random.Random(f"{slug}-latest")  # noqa: S311 (demo data, not a secret)
    store.update_latest(
        {ids[i]: (now, value_at(slug, s, now, rng)) for i, s in enumerate(DEMO_SERIES)}
    )
    return written
