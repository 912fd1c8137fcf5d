"""The built-in sample store in the tenant's schema: COPY in, SQL aggregates per time bucket out.

Everything here runs on the current connection, so in the schema of the current tenant. Rows are
`(series_id, ts, value)` in `dashboards_sample` (laid out in migration 0002).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction

from dashboards.models import MetricDefinition, MetricSeries

SAMPLE_TABLE = "dashboards_sample"
# Binary COPY: no text formatting of floats and timestamps on either side.
_COPY_SQL = f"COPY {SAMPLE_TABLE} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["int8", "timestamptz", "float8"]

# SQL of each aggregation over `value` within one bucket.
AGGREGATES: dict[str, str] = {
    "avg": "avg(value)",
    "sum": "sum(value)",
    "max": "max(value)",
    "min": "min(value)",
    "count": "count(*)::float8",
    "p50": "percentile_cont(0.5) WITHIN GROUP (ORDER BY value)",
    "p95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY value)",
    "p99": "percentile_cont(0.99) WITHIN GROUP (ORDER BY value)",
}


@dataclass(frozen=True)
class Series:
    """One line of a chart: its labels and (epoch seconds, value) points in time order.

    Both the built-in store and Prometheus answer in this shape.
    """

    name: str
    labels: dict[str, str]
    points: list[tuple[float, float]]


def labels_key(labels: dict[str, str]) -> str:
    """The canonical text of a label set: the unique key of a series within its metric."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def copy_rows(rows: Iterable[tuple[int, datetime, float]]) -> int:
    """Append `(series_id, ts, value)` rows with COPY; returns how many were written."""
    count = 0
    # Django's wrapper holds the psycopg 3 cursor, which speaks COPY.
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def update_latest(latest: dict[int, tuple[datetime, float]]) -> None:
    """Remember each series' newest sample (for the scrape endpoint); never moves back in time."""
    if not latest:
        return
    ids = list(latest)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE dashboards_metricseries AS s
               SET last_at = v.ts, last_value = v.value
              FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS v(id, ts, value)
             WHERE s.id = v.id AND (s.last_at IS NULL OR s.last_at <= v.ts)
            """,
            [ids, [latest[i][0] for i in ids], [latest[i][1] for i in ids]],
        )


@contextmanager
def _reading() -> Iterator[Any]:
    """A cursor for one aggregate query over many rows.

    JIT compilation costs seconds on these plans and saves little; sorting per bucket in memory
    instead of on disk needs more than the default work_mem. Both only for this transaction.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        yield cursor


ROLLUP_SECONDS = 300
# Aggregations the rollup answers exactly, as SQL over its columns.
ROLLUP_AGGREGATES: dict[str, str] = {
    "avg": "sum(total) / sum(n)",
    "sum": "sum(total)",
    "max": "max(high)",
    "min": "min(low)",
    "count": "sum(n)::float8",
}


def rollup_bucket(at: datetime) -> datetime:
    """The start of the five-minute bucket holding `at`."""
    seconds = at.timestamp()
    return datetime.fromtimestamp(seconds - seconds % ROLLUP_SECONDS, tz=at.tzinfo)


def add_to_rollup(rows: Iterable[tuple[int, datetime, float]]) -> None:
    """Fold freshly stored rows into the five-minute rollup (in the caller's transaction)."""
    folded: dict[tuple[int, datetime], list[float]] = {}
    for series_id, at, value in rows:
        entry = folded.get((series_id, rollup_bucket(at)))
        if entry is None:
            folded[(series_id, rollup_bucket(at))] = [1, value, value, value]
        else:
            entry[0] += 1
            entry[1] += value
            entry[2] = min(entry[2], value)
            entry[3] = max(entry[3], value)
    if not folded:
        return
    keys = list(folded)
    values = [folded[key] for key in keys]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO dashboards_rollup_5m AS r (series_id, bucket, n, total, low, high)
            SELECT * FROM unnest(
                %s::bigint[], %s::timestamptz[], %s::bigint[], %s::float8[], %s::float8[],
                %s::float8[]
            )
            ON CONFLICT (series_id, bucket) DO UPDATE
               SET n = r.n + EXCLUDED.n, total = r.total + EXCLUDED.total,
                   low = LEAST(r.low, EXCLUDED.low), high = GREATEST(r.high, EXCLUDED.high)
            """,
            [
                [k[0] for k in keys],
                [k[1] for k in keys],
                [v[0] for v in values],
                [v[1] for v in values],
                [v[2] for v in values],
                [v[3] for v in values],
            ],
        )


def rebuild_rollup(series_ids: Sequence[int]) -> None:
    """Recompute the rollup of these series from their samples (after a bulk load)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM dashboards_rollup_5m WHERE series_id = ANY(%s::bigint[])",
            [list(series_ids)],
        )
        cursor.execute(
            """
            INSERT INTO dashboards_rollup_5m (series_id, bucket, n, total, low, high)
            SELECT series_id, date_bin('5 minutes', ts, TIMESTAMPTZ '2000-01-01'), count(*),
                   sum(value), min(value), max(value)
              FROM dashboards_sample WHERE series_id = ANY(%s::bigint[])
             GROUP BY 1, 2
            """,
            [list(series_ids)],
        )


def _uses_rollup(aggregation: str, step: timedelta) -> bool:
    return (
        aggregation in ROLLUP_AGGREGATES
        and step.total_seconds() >= ROLLUP_SECONDS
        and step.total_seconds() % ROLLUP_SECONDS == 0
    )


def matching_series(metric: MetricDefinition, label_filter: dict[str, str]) -> list[MetricSeries]:
    """Series of `metric` whose labels include every pair of `label_filter`."""
    rows = MetricSeries.objects.filter(metric=metric)
    if label_filter:
        rows = rows.filter(labels__contains=label_filter)
    return list(rows.only("id", "labels"))


def bucketed(
    series: Sequence[MetricSeries],
    *,
    aggregation: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    group_by: Sequence[str] = (),
    name: str = "",
) -> list[Series]:
    """One aggregated series per group of `series` (by the `group_by` labels), per `step` bucket.

    Buckets start at `start`; each point is at its bucket's start.
    """
    if aggregation not in AGGREGATES:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if not series:
        return []
    groups: dict[tuple[str, ...], int] = {}
    group_of: list[int] = []
    for one in series:
        key = tuple(str(one.labels.get(label, "")) for label in group_by)
        group_of.append(groups.setdefault(key, len(groups)))
    ids = [one.id for one in series]
    if _uses_rollup(aggregation, step):
        return _bucketed_rollup(
            series, ids, group_of, groups, aggregation, start, end, step, group_by, name
        )
    with _reading() as cursor:
        # `series_id = ANY` lets the planner use the (series, time) index; the join only maps
        # each series to its group.
        cursor.execute(
            f"""
            SELECT g.grp, date_bin(%s, s.ts, %s) AS bucket, {AGGREGATES[aggregation]}
              FROM dashboards_sample AS s
              JOIN unnest(%s::bigint[], %s::int[]) AS g(series_id, grp) USING (series_id)
             WHERE s.series_id = ANY(%s::bigint[]) AND s.ts >= %s AND s.ts < %s
             GROUP BY g.grp, bucket
             ORDER BY g.grp, bucket
            """,  # noqa: S608 (the aggregate comes from AGGREGATES, never from input)
            [step, start, ids, group_of, ids, start, end],
        )
        rows = cursor.fetchall()
    return _series_of(rows, groups, group_by, name)


def _series_of(rows, groups, group_by, name) -> list[Series]:
    points: dict[int, list[tuple[float, float]]] = {index: [] for index in groups.values()}
    for grp, bucket, value in rows:
        if value is not None:
            points[grp].append((bucket.timestamp(), float(value)))
    return [
        Series(name=name, labels=dict(zip(group_by, key, strict=True)), points=points[index])
        for key, index in groups.items()
    ]


def _bucketed_rollup(
    series, ids, group_of, groups, aggregation, start, end, step, group_by, name
) -> list[Series]:
    """`bucketed` from the five-minute rollup; buckets start at `start` rounded down to 5 min."""
    origin = rollup_bucket(start)
    with _reading() as cursor:
        cursor.execute(
            f"""
            SELECT g.grp, date_bin(%s, r.bucket, %s) AS b, {ROLLUP_AGGREGATES[aggregation]}
              FROM dashboards_rollup_5m AS r
              JOIN unnest(%s::bigint[], %s::int[]) AS g(series_id, grp) USING (series_id)
             WHERE r.series_id = ANY(%s::bigint[]) AND r.bucket >= %s AND r.bucket < %s
             GROUP BY g.grp, b
             ORDER BY g.grp, b
            """,  # noqa: S608 (the aggregate comes from ROLLUP_AGGREGATES, never from input)
            [step, origin, ids, group_of, ids, origin, end],
        )
        rows = cursor.fetchall()
    return _series_of(rows, groups, group_by, name)


def aggregate_over(
    series: Sequence[MetricSeries], *, aggregation: str, start: datetime, end: datetime
) -> float | None:
    """One value of `aggregation` over every sample of `series` in [start, end)."""
    if aggregation not in AGGREGATES:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if not series:
        return None
    if aggregation in ROLLUP_AGGREGATES and end - start >= timedelta(hours=1):
        # Whole five-minute buckets: the edges of a long span weigh next to nothing.
        with _reading() as cursor:
            cursor.execute(
                f"""
                SELECT {ROLLUP_AGGREGATES[aggregation]} FROM dashboards_rollup_5m
                 WHERE series_id = ANY(%s::bigint[]) AND bucket >= %s AND bucket < %s
                """,  # noqa: S608 (the aggregate comes from ROLLUP_AGGREGATES)
                [[one.id for one in series], rollup_bucket(start), end],
            )
            (value,) = cursor.fetchone()
        return None if value is None else float(value)
    with _reading() as cursor:
        cursor.execute(
            f"""
            SELECT {AGGREGATES[aggregation]} FROM dashboards_sample
             WHERE series_id = ANY(%s::bigint[]) AND ts >= %s AND ts < %s
            """,  # noqa: S608 (the aggregate comes from AGGREGATES, never from input)
            [[one.id for one in series], start, end],
        )
        (value,) = cursor.fetchone()
    return None if value is None else float(value)


def delete_older_than(cutoff: datetime) -> int:
    """Delete every sample before `cutoff`; returns how many went."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM dashboards_sample WHERE ts < %s", [cutoff])
        removed = cursor.rowcount
        cursor.execute(
            "DELETE FROM dashboards_rollup_5m WHERE bucket < %s", [rollup_bucket(cutoff)]
        )
        return removed


def delete_series_samples(series_ids: Sequence[int]) -> None:
    """Delete the samples of these series (the table has no foreign key to cascade)."""
    if series_ids:
        with connection.cursor() as cursor:
            for table in ("dashboards_sample", "dashboards_rollup_5m"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE series_id = ANY(%s::bigint[])",  # noqa: S608
                    [list(series_ids)],
                )
