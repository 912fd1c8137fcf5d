"""The query layer on known data: bucketed aggregates, percentiles, filters, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from dashboards import queries, services, store
from dashboards.models import MetricDefinition, MetricSeries, Panel
from tenants import audit

ACTOR = audit.Actor.system("query tests")
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_series(metric: MetricDefinition, labels: dict, values: list[float], every_s: int = 10):
    series = MetricSeries.objects.create(
        metric=metric, labels=labels, labels_key=store.labels_key(labels)
    )
    store.copy_rows(
        (series.pk, START + timedelta(seconds=i * every_s), value) for i, value in enumerate(values)
    )
    store.rebuild_rollup([series.pk])
    return series


def store_through_ingest(rows) -> None:
    """(series id, time, value) rows stored and folded as ingest stores a batch."""
    runs: dict[int, tuple[list[int], list[float]]] = {}
    for series_id, at, value in rows:
        micros, values = runs.setdefault(series_id, ([], []))
        micros.append(round(at.timestamp() * 1_000_000))
        values.append(value)
    store.store_encoded([store.encode_rows(series_id, *run) for series_id, run in runs.items()])


@pytest.fixture
def latency(acme):
    """acme's `latency_ms`: region eu 1..12 and us 101..112, one sample each 10 s (2 minutes)."""
    name = f"latency_{uuid.uuid4().hex[:8]}"
    with tenant_context(acme):
        metric = services.create_metric(
            name=name, type="gauge", labels=["region"], category="technical", actor=ACTOR
        )
        add_series(metric, {"region": "eu"}, [float(v) for v in range(1, 13)])
        add_series(metric, {"region": "us"}, [float(v) for v in range(101, 113)])
    return name


def panel(name: str, aggregation: str, label_filter: dict | None = None) -> Panel:
    return Panel(metric=name, aggregation=aggregation, label_filter=label_filter or {})


SPAN = queries.TimeRange(START, START + timedelta(minutes=2), "custom")
ONE_MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("aggregation", "first", "second"),
    [
        # First minute: eu 1..6 and us 101..106; second: eu 7..12 and us 107..112.
        ("avg", 53.5, 59.5),
        ("sum", 642.0, 714.0),
        ("max", 106.0, 112.0),
        ("min", 1.0, 7.0),
        ("count", 12.0, 12.0),
        # percentile_cont over the 12 values of each bucket (linear between ranks).
        ("p50", 53.5, 59.5),
        ("p95", 105.45, 111.45),
        # Each series' newest sample of the bucket, summed: eu 6 + us 106, then eu 12 + us 112.
        ("latest", 112.0, 124.0),
    ],
)
def test_builtin_series_aggregate_per_bucket(acme, latency, aggregation, first, second):
    with tenant_context(acme):
        [series] = queries.builtin_series(panel(latency, aggregation), SPAN, step=ONE_MINUTE)
    assert [t for t, _ in series.points] == [START.timestamp(), (START + ONE_MINUTE).timestamp()]
    assert [v for _, v in series.points] == pytest.approx([first, second])


def test_label_filter_narrows_the_series(acme, latency):
    with tenant_context(acme):
        [series] = queries.builtin_series(
            panel(latency, "max", {"region": "eu"}), SPAN, step=ONE_MINUTE
        )
    assert [v for _, v in series.points] == [6.0, 12.0]


def test_group_by_gives_one_series_per_label_value(acme, latency):
    with tenant_context(acme):
        metric = MetricDefinition.objects.get(name=latency)
        grouped = store.bucketed(
            store.matching_series(metric.name, {}),
            aggregation="avg",
            start=SPAN.start,
            end=SPAN.end,
            step=ONE_MINUTE,
            group_by=["region"],
        )
    by_region = {s.labels["region"]: [v for _, v in s.points] for s in grouped}
    assert by_region == {"eu": [3.5, 9.5], "us": [103.5, 109.5]}


def test_range_ends_are_respected(acme, latency):
    span = queries.TimeRange(START + timedelta(seconds=30), START + timedelta(seconds=60), "c")
    with tenant_context(acme):
        [series] = queries.builtin_series(panel(latency, "count"), span, step=ONE_MINUTE)
    # 30 s, 40 s and 50 s of each series: 6 samples in one bucket.
    assert [v for _, v in series.points] == [6.0]


def test_total_over_the_period_and_the_previous_one(acme, latency):
    with tenant_context(acme):
        assert queries.panel_total(panel(latency, "max"), SPAN) == 112.0
        assert queries.panel_total(panel(latency, "max"), SPAN.previous()) is None


def test_latest_is_where_each_series_stands_at_the_end_of_the_span(acme, latency):
    with tenant_context(acme):
        assert queries.panel_total(panel(latency, "latest"), SPAN) == 124.0
        assert queries.panel_total(panel(latency, "latest", {"region": "eu"}), SPAN) == 12.0
        first_minute = queries.TimeRange(START, START + ONE_MINUTE, "custom")
        assert queries.panel_total(panel(latency, "latest"), first_minute) == 112.0
        # A long span reads the samples too (rollups keep no "latest").
        long_span = queries.TimeRange(START - timedelta(days=30), SPAN.end, "custom")
        assert queries.panel_total(panel(latency, "latest"), long_span) == 124.0


def test_long_ranges_come_back_downsampled_to_the_width(acme):
    name = f"busy_{uuid.uuid4().hex[:8]}"
    values = [float(i % 97) for i in range(20_000)]
    values[12_345] = 10_000.0
    with tenant_context(acme):
        metric = services.create_metric(name=name, type="gauge", actor=ACTOR)
        add_series(metric, {}, values)
        span = queries.TimeRange(START, START + timedelta(seconds=10 * 20_000), "custom")
        [series] = queries.builtin_series(
            panel(name, "max"), span, width=200, step=timedelta(seconds=10)
        )
    assert len(series.points) <= 200
    assert max(v for _, v in series.points) == 10_000.0


def test_another_tenant_never_sees_the_series(acme, globex, latency):
    with tenant_context(globex):
        services.create_metric(name=latency, type="gauge", labels=["region"], actor=ACTOR)
        assert queries.builtin_series(panel(latency, "avg"), SPAN, step=ONE_MINUTE) == []
        assert queries.panel_total(panel(latency, "avg"), SPAN) is None


def test_a_metric_outside_the_catalog_is_a_query_error(acme):
    with tenant_context(acme), pytest.raises(queries.QueryError, match="not in the metric"):
        queries.builtin_series(panel("nobody_declared_this", "avg"), SPAN)


def test_time_range_from_the_url():
    now = datetime(2026, 11, 28, tzinfo=UTC)
    assert queries.time_range({"range": "7d"}, now=now).start == now - timedelta(days=7)
    assert queries.time_range({"range": "1y"}, now=now).key == queries.DEFAULT_RANGE
    custom = queries.time_range(
        {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, now=now
    )
    assert custom.key == "custom" and custom.length == timedelta(days=1)


@pytest.mark.parametrize("aggregation", ["avg", "sum", "max", "min", "count"])
def test_long_steps_read_the_rollup_and_agree_with_the_samples(acme, aggregation):
    """Two hours of 10 s samples, bucketed by 10 minutes: rollup and samples give one answer."""
    name = f"rolled_{uuid.uuid4().hex[:8]}"
    values = [float((i * 37) % 101) for i in range(720)]
    span = queries.TimeRange(START, START + timedelta(hours=2), "custom")
    step = timedelta(minutes=10)
    with tenant_context(acme):
        metric = services.create_metric(name=name, type="gauge", labels=["region"], actor=ACTOR)
        add_series(metric, {"region": "eu"}, values)
        # Stored through ingest's path too: the rollup is folded in as batches arrive.
        other = MetricSeries.objects.create(
            metric=metric, labels={"region": "us"}, labels_key=store.labels_key({"region": "us"})
        )
        rows = [(other.pk, START + timedelta(seconds=10 * i), v * 2) for i, v in enumerate(values)]
        store_through_ingest(rows[:300])
        store_through_ingest(rows[300:])
        matching = store.matching_series(metric.name, {})
        from_rollup = store.bucketed(
            matching, aggregation=aggregation, start=span.start, end=span.end, step=step
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT date_bin('10 minutes', ts, %s), {store.AGGREGATES[aggregation]}
                  FROM dashboards_sample WHERE series_id = ANY(%s) GROUP BY 1 ORDER BY 1
                """,  # noqa: S608 (a constant of the module under test)
                [START, [s.pk for s in matching]],
            )
            from_samples = [(b.timestamp(), v) for b, v in cursor.fetchall()]
        total = queries.panel_total(panel(name, aggregation), span)
    assert store._uses_rollup(aggregation, step)
    [series] = from_rollup
    assert [t for t, _ in series.points] == [t for t, _ in from_samples]
    assert [v for _, v in series.points] == pytest.approx([v for _, v in from_samples])
    overall = {
        "avg": sum(values) * 1.5 / 720,
        "sum": sum(values) * 3,
        "max": 200.0,
        "min": 0.0,
        "count": 1440.0,
    }[aggregation]
    assert total == pytest.approx(overall)
