"""Rollups of the metric store: percentile histograms within their bound of percentile_cont,
the five-minute and hourly rollups equal whichever way they are built, long ranges read hours."""

from __future__ import annotations

import importlib
import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from dashboards import queries, rendering, services, sketch, store
from dashboards.models import MetricSeries, Panel
from tenants import audit
from tests.test_dashboard_queries import store_through_ingest

ACTOR = audit.Actor.system("rollup tests")
START = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exact_percentile(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_cont: linear between the two closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def within_bound(estimate: float, values: list[float], q: float) -> bool:
    """The documented bound: ALPHA of the closest ranks' magnitude (of percentile_cont itself
    when they have the same sign)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    exact = exact_percentile(values, q)
    scale = abs(exact) if low * high > 0 else max(abs(low), abs(high))
    return abs(estimate - exact) <= sketch.ALPHA * scale + 1e-12


def histogram(values: list[float]) -> list[int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[sketch.key(value)] = counts.get(sketch.key(value), 0) + 1
    return [sketch.pack(key, count) for key, count in counts.items()]


# --- The histogram itself ----------------------------------------------------------------------


def test_every_value_is_within_alpha_of_its_bin():
    rng = random.Random(11)
    values = [0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1e-300, 1.0, -1.0, 12.5]
    values += [rng.choice((-1, 1)) * math.exp(rng.uniform(-700, 700)) for _ in range(20_000)]
    for value in values:
        represented = sketch.value_of(sketch.key(value))
        assert abs(represented - value) <= sketch.ALPHA * abs(value), value
    assert sketch.value_of(sketch.key(0.0)) == 0.0
    # Keys sort as their values do.
    ordered = sorted(values)
    assert [sketch.key(v) for v in ordered] == sorted(sketch.key(v) for v in ordered)


DATA_SETS = {
    "latency": [random.Random(1).lognormvariate(4, 0.8) for _ in range(5000)],
    "uniform": [random.Random(2).uniform(0, 1000) for _ in range(3000)],
    "with zeros and negatives": [
        random.Random(3).choice((0.0, -1.0, 1.0)) * random.Random(4).uniform(1, 50)
        for _ in range(2000)
    ]
    + [0.0] * 300,
    "few": [3.0, 7.0, 7.0, 120.0],
    "one": [42.0],
}


@pytest.mark.parametrize("name", sorted(DATA_SETS))
@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_quantiles_are_within_the_bound_of_percentile_cont(name, q):
    values = DATA_SETS[name]
    estimate = sketch.quantile(histogram(values), q)
    assert within_bound(estimate, values, q), (estimate, exact_percentile(values, q))


def test_histograms_merge_in_any_order_and_with_repeated_keys():
    values = DATA_SETS["latency"]
    parts = [histogram(values[i : i + 250]) for i in range(0, len(values), 250)]
    merged = [element for part in reversed(parts) for element in part]
    assert len(merged) > len(histogram(values))  # the same key in several parts
    for q in (0.5, 0.95, 0.99):
        assert sketch.quantile(merged, q) == sketch.quantile(histogram(values), q)
    assert sketch.quantile([], 0.5) is None


# --- In the tenant's store ---------------------------------------------------------------------


def new_metric(labels=("region",)):
    return services.create_metric(
        name=f"rolled_{uuid.uuid4().hex[:8]}", type="gauge", labels=list(labels), actor=ACTOR
    )


def new_series(metric, labels: dict) -> MetricSeries:
    return MetricSeries.objects.create(
        metric=metric, labels=labels, labels_key=store.labels_key(labels)
    )


def latencies(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.lognormvariate(5, 0.6), 3) for _ in range(count)]


def rollup_rows(table: str, series_ids: list[int]) -> dict:
    """(series, bucket): (n, total, low, high, {key: count}) of a rollup."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT series_id, bucket, n, total, low, high, sketch, sketch_merged FROM {table} "
            "WHERE series_id = ANY(%s)",
            [series_ids],
        )
        rows = {}
        for series_id, bucket, n, total, low, high, packed, merged in cursor.fetchall():
            counts: dict[int, int] = {}
            for element in packed:
                key, count = sketch.unpack(element)
                counts[key] = counts.get(key, 0) + count
            # A stored histogram is at most about twice as long as its distinct bins.
            assert len(packed) <= 2 * max(merged, len(counts)) + 16 + len(counts)
            rows[(series_id, bucket)] = (n, total, low, high, counts)
    return rows


def assert_same_rollups(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key, (n, total, low, high, counts) in first.items():
        other = second[key]
        assert (n, low, high, counts) == (other[0], other[2], other[3], other[4]), key
        assert total == pytest.approx(other[1])


@pytest.fixture
def two_hours(acme):
    """Three series of 10 s latencies over two hours in acme, rollups built from the samples."""
    with tenant_context(acme):
        metric = new_metric()
        values = {}
        for number, region in enumerate(("eu", "us", "ap")):
            series = new_series(metric, {"region": region})
            values[series.pk] = latencies(number, 720)
            store.copy_rows(
                (series.pk, START + timedelta(seconds=10 * i), v)
                for i, v in enumerate(values[series.pk])
            )
        store.rebuild_rollup(list(values))
    return metric.name, values


@pytest.mark.parametrize("aggregation", ["p50", "p95", "p99"])
@pytest.mark.parametrize("step", [timedelta(minutes=10), timedelta(hours=1)])
def test_percentile_panels_read_the_rollups_within_the_bound(acme, two_hours, aggregation, step):
    name, values = two_hours
    q = store.PERCENTILES[aggregation]
    span = queries.TimeRange(START, START + timedelta(hours=2), "custom")
    with tenant_context(acme):
        # The rollups alone answer: the samples are gone.
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM dashboards_sample WHERE series_id = ANY(%s)", [list(values)]
            )
        [series] = queries.builtin_series(
            Panel(metric=name, aggregation=aggregation), span, step=step
        )
    assert store._uses_rollup(aggregation, step)
    width = int(step.total_seconds())
    buckets = int(7200 / width)
    assert [t for t, _ in series.points] == [START.timestamp() + i * width for i in range(buckets)]
    per_bucket = width // 10
    for number, (_, estimate) in enumerate(series.points):
        window = [
            v for vs in values.values() for v in vs[number * per_bucket : (number + 1) * per_bucket]
        ]
        assert within_bound(estimate, window, q), (number, estimate)


def test_whole_hour_steps_read_the_hourly_rollup(acme, two_hours):
    name, values = two_hours
    span = queries.TimeRange(START, START + timedelta(hours=2), "custom")
    with tenant_context(acme):
        with connection.cursor() as cursor:
            # Only the hourly rollup answers: emptying the five-minute one changes nothing.
            cursor.execute(
                f"DELETE FROM {store.ROLLUP_5M} WHERE series_id = ANY(%s)", [list(values)]
            )
        [series] = queries.builtin_series(
            Panel(metric=name, aggregation="sum"), span, step=timedelta(hours=1)
        )
    expected = [sum(sum(vs[i * 360 : (i + 1) * 360]) for vs in values.values()) for i in (0, 1)]
    assert [v for _, v in series.points] == pytest.approx(expected)


def test_long_ranges_step_in_whole_hours_and_never_below_a_bucket_per_pixel():
    month = queries.TimeRange(START - timedelta(days=30), START, "30d")
    assert queries.step_for(month, 400) == timedelta(hours=1)
    assert queries.step_for(month, 1200) == timedelta(minutes=20)
    week = queries.TimeRange(START - timedelta(days=7), START, "7d")
    assert queries.step_for(week, 600) == timedelta(minutes=10)
    for span in (month, week):
        for width in (120, 300, 400, 600, 900, 1200):
            step = queries.step_for(span, width)
            assert span.length / step >= width
            assert store._rollup_for(step)[0] == (
                store.ROLLUP_1H if step.total_seconds() % 3600 == 0 else store.ROLLUP_5M
            )


def test_a_kpi_over_hours_adds_whole_hours_and_its_five_minute_edges(acme, two_hours):
    name, values = two_hours

    def samples(first: int, last: int) -> list[float]:
        return [v for vs in values.values() for v in vs[first:last]]

    def totals(span) -> tuple:
        return tuple(
            queries.panel_total(Panel(metric=name, aggregation=aggregation), span)
            for aggregation in ("count", "max", "sum", "p95")
        )

    # 12:07 to 13:52 holds no whole hour: five-minute buckets from 12:05 to 13:50 (to 13:55).
    inside = queries.TimeRange(
        START + timedelta(minutes=7), START + timedelta(minutes=112), "custom"
    )
    # 11:57 to 13:07: the buckets of 11:55, the hour of 12:00, the buckets of 13:00 and 13:05.
    across = queries.TimeRange(
        START - timedelta(minutes=3), START + timedelta(minutes=67), "custom"
    )
    with tenant_context(acme):
        found = {"inside": totals(inside), "across": totals(across)}
        with connection.cursor() as cursor:
            # What the hour's five-minute rows held, the hourly row still answers.
            cursor.execute(
                f"DELETE FROM {store.ROLLUP_5M} WHERE bucket >= %s AND bucket < %s",
                [START, START + timedelta(hours=1)],
            )
        assert totals(across) == pytest.approx(found["across"])
        short = queries.TimeRange(START, START + timedelta(minutes=30), "custom")
        exact = queries.panel_total(Panel(metric=name, aggregation="p95"), short)
    for key, window in (("inside", samples(30, 690)), ("across", samples(0, 420))):
        count, top, total, p95 = found[key]
        assert count == len(window)
        assert top == max(window)
        assert total == pytest.approx(sum(window))
        assert within_bound(p95, window, 0.95)
    # Under an hour the samples answer: percentile_cont itself.
    assert exact == pytest.approx(exact_percentile(samples(0, 180), 0.95))


def test_ingest_batches_fold_into_the_same_rollups_as_a_rebuild(acme):
    """Many small batches (appends, then merges) and one rebuild give the same rollups."""
    with tenant_context(acme):
        metric = new_metric()
        ids = [new_series(metric, {"region": r}).pk for r in ("eu", "us")]
        rng = random.Random(5)
        rows = [
            (series_id, START + timedelta(seconds=i), rng.choice((0.0, -2.5, 1.0)) * i)
            for i in range(4000)
            for series_id in ids
        ]
        rng.shuffle(rows)
        for chunk in range(0, len(rows), 97):
            part = rows[chunk : chunk + 97]
            store.store_encoded(
                [
                    store.encode_rows(
                        series_id,
                        [(at - EPOCH) // timedelta(microseconds=1)],
                        [value],
                    )
                    for series_id, at, value in part
                ]
            )
        folded = {t: rollup_rows(t, ids) for t in (store.ROLLUP_5M, store.ROLLUP_1H)}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM dashboards_sample WHERE series_id = ANY(%s)", [ids]
            )
            assert cursor.fetchone()[0] == len(rows)
        store.rebuild_rollup(ids)
        rebuilt = {t: rollup_rows(t, ids) for t in (store.ROLLUP_5M, store.ROLLUP_1H)}
    assert len(folded[store.ROLLUP_5M]) == 2 * 14  # 4000 s: buckets from 12:00 to 13:05
    assert len(folded[store.ROLLUP_1H]) == 2 * 2
    for table in folded:
        assert_same_rollups(folded[table], rebuilt[table])


def test_batches_folded_as_they_arrive_match_a_rebuild(acme):
    with tenant_context(acme):
        metric = new_metric()
        series_id = new_series(metric, {"region": "eu"}).pk
        rows = [(series_id, START + timedelta(seconds=30 * i), float(i % 13)) for i in range(300)]
        store_through_ingest(rows[:100])
        store_through_ingest(rows[100:])
        folded = {t: rollup_rows(t, [series_id]) for t in (store.ROLLUP_5M, store.ROLLUP_1H)}
        store.rebuild_rollup([series_id])
        for table, rows_of in folded.items():
            assert_same_rollups(rows_of, rollup_rows(table, [series_id]))


def test_the_migration_rebuilds_what_rebuild_rollup_builds(acme, two_hours):
    migration = importlib.import_module("dashboards.migrations.0005_rollup_sketches")
    rebuild = migration.SKETCH_SQL[migration.SKETCH_SQL.index("TRUNCATE") :]
    _, values = two_hours
    ids = list(values)
    with tenant_context(acme), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {store.ROLLUP_1H}")
        cursor.execute(rebuild)
        migrated = {t: rollup_rows(t, ids) for t in (store.ROLLUP_5M, store.ROLLUP_1H)}
        store.rebuild_rollup(ids)
        for table, rows_of in migrated.items():
            assert rows_of
            assert_same_rollups(rows_of, rollup_rows(table, ids))


def test_retention_and_deleting_a_metric_clear_both_rollups(acme, two_hours):
    name, values = two_hours
    ids = list(values)
    with tenant_context(acme):
        store.delete_older_than(START + timedelta(hours=1, minutes=2))
        assert {b for _, b in rollup_rows(store.ROLLUP_1H, ids)} == {START + timedelta(hours=1)}
        assert min(b for _, b in rollup_rows(store.ROLLUP_5M, ids)) == START + timedelta(hours=1)
        metric = MetricSeries.objects.get(pk=ids[0]).metric
        services.delete_metric(metric_id=metric.public_id, actor=ACTOR)
        assert rollup_rows(store.ROLLUP_1H, ids) == {}
        assert rollup_rows(store.ROLLUP_5M, ids) == {}


def test_a_kpi_looks_its_series_up_once_for_its_figure_and_both_periods(acme, two_hours):
    name, _ = two_hours
    panel = Panel(kind=Panel.Kind.STAT, metric=name, aggregation="avg", w=3)
    span = queries.TimeRange(START, START + timedelta(hours=2), "custom")
    with tenant_context(acme), CaptureQueriesContext(connection) as captured:
        figure = rendering.figure_for(panel, span)
    sql = [q["sql"] for q in captured.captured_queries]
    # One look-up of the metric's series (joined to the catalog by name) for all three.
    assert sum("dashboards_metric" in s for s in sql) == 1
    # The sparkline, the figure and the previous period's: one query each, and nothing else.
    assert sum("dashboards_sample" in s or "dashboards_rollup" in s for s in sql) == 3
    assert len([s for s in sql if not s.startswith("SET search_path")]) == 4
    indicator = figure["data"][0]
    everything = [v for vs in two_hours[1].values() for v in vs]
    assert indicator["value"] == pytest.approx(sum(everything) / len(everything))
