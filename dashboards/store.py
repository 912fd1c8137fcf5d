"""The built-in sample store in the tenant's schema: COPY in, SQL aggregates per time bucket out.

Everything here runs on the current connection, so in the schema of the current tenant. Rows are
`(series_id, ts, value)` in `dashboards_sample` (laid out in migration 0002). Two rollups keep,
per series and five minutes (`dashboards_rollup_5m`) or hour (`dashboards_rollup_1h`), the count,
sum, lowest and highest value and a histogram for percentiles (`dashboards.sketch`); long ranges
read them instead of the samples.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

from django.db import connection, transaction

from dashboards import sketch
from dashboards.models import MetricSeries

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
PERCENTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
# A gauge as it stands: each series' newest sample (in the bucket, or the span), summed over the
# series, e.g. open incidents split by severity. Read from the samples, never the rollups.
LATEST = "latest"


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
    """Append `(series_id, ts, value)` rows with COPY; returns how many were written.

    Samples only: callers fold them into the rollups (`rebuild_rollup`); ingest stores and
    folds in one go (`store_encoded`).
    """
    count = 0
    # Django's wrapper holds the psycopg 3 cursor, which speaks COPY.
    with connection.cursor() as cursor, cursor.cursor.copy(_COPY_SQL) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


# --- Batches in PostgreSQL's binary COPY format ----------------------------------------------

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
# A row is (field count, then length and value of each field); what follows the series id
# (timestamp length, timestamp, value length, value) is packed per sample.
_ROW_HEAD = struct.Struct(">hiqi")
_ROW_TAIL = struct.Struct(">qid")
# PostgreSQL counts microseconds from 2000-01-01 UTC.
_PG_EPOCH_MICROS = 946_684_800_000_000


def encode_rows(series_id: int, micros: Sequence[int], values: Sequence[float]) -> bytes:
    """Rows of one series for `store_encoded`: Unix microseconds and values, in pairs."""
    head = _ROW_HEAD.pack(3, 8, series_id, 8)
    tail = _ROW_TAIL.pack
    shift = _PG_EPOCH_MICROS
    return b"".join(
        [head + tail(at - shift, 8, value) for at, value in zip(micros, values, strict=True)]
    )


_BATCH_TABLE = "dashboards_batch"
# Session-local, emptied at every commit and after each use: the rows of one batch on their
# way to the samples and the rollups.
_BATCH_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH_TABLE} "
    "(series_id bigint NOT NULL, ts timestamptz NOT NULL, value float8 NOT NULL) "
    "ON COMMIT DELETE ROWS"
)


def store_encoded(chunks: Iterable[bytes]) -> None:
    """Store rows made by `encode_rows` as samples and fold them into the rollups.

    One COPY and one statement: the samples and both rollups are written from the same rows in
    the database, in the caller's transaction.
    """
    # In a transaction: the rows of the temporary table go at each commit.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(_BATCH_DDL)
        with cursor.cursor.copy(
            f"COPY {_BATCH_TABLE} (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(b"".join([_COPY_SIGNATURE, *chunks, _COPY_TRAILER]))
        cursor.execute(
            f"""
            WITH stored AS (
                INSERT INTO {SAMPLE_TABLE} (series_id, ts, value)
                SELECT series_id, ts, value FROM {_BATCH_TABLE}
            ), {_fold_sql(_BATCH_TABLE)};
            TRUNCATE {_BATCH_TABLE}
            """  # noqa: S608 (table names are constants)
        )


def update_latest(latest: dict[int, tuple[datetime, float]]) -> None:
    """Remember each series' newest sample (for the scrape endpoint); never moves back in time."""
    if not latest:
        return
    ids = sorted(latest)  # locked in one order by every batch, as the rollups are
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


# JIT compilation costs seconds on these plans and saves little; sorting per bucket in memory
# instead of on disk needs more than the default work_mem. Sent with each read query in one
# message, whose statements PostgreSQL runs as one transaction: both last for that query only.
_READ_SETTINGS = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; "


def _read(sql: str, params: Any) -> list[tuple]:
    """The rows of one aggregate query over many rows, in one round trip."""
    with connection.cursor() as cursor:
        # Django's psycopg cursors bind parameters on the client, so one message may hold
        # several statements; the rows are those of the last.
        cursor.execute(_READ_SETTINGS + sql, params)
        cursor.nextset()
        cursor.nextset()
        return cursor.fetchall()


# --- Rollups ---------------------------------------------------------------------------------

ROLLUP_SECONDS = 300
HOUR_SECONDS = 3600
ROLLUP_5M = "dashboards_rollup_5m"
ROLLUP_1H = "dashboards_rollup_1h"
# Aggregations the rollups answer exactly, as SQL over their columns.
ROLLUP_AGGREGATES: dict[str, str] = {
    "avg": "sum(total) / sum(n)",
    "sum": "sum(total)",
    "max": "max(high)",
    "min": "min(low)",
    "count": "sum(n)::float8",
}
# Buckets of both rollups start at whole multiples of their width from this instant.
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
_COUNT_MASK = sketch.COUNT_MASK
# A stored histogram takes appended bins until it is twice (and a little) the length it had when
# last merged; then it is merged. Readers pay at most about twice the bins, writers merge rarely.
_MERGE_SLACK = 16


def rollup_bucket(at: datetime) -> datetime:
    """The start of the five-minute bucket holding `at`."""
    return _floor(at, ROLLUP_SECONDS)


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = at.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=at.tzinfo)


def _ceil(at: datetime, seconds: int) -> datetime:
    floor = _floor(at, seconds)
    return floor if floor == at else floor + timedelta(seconds=seconds)


def _upsert_sql(table: str, binned: str) -> str:
    """Fold `binned` rows (series_id, bucket, k, n, total, low, high) into `table`."""
    mask = _COUNT_MASK
    return f"""
        INSERT INTO {table} AS r (series_id, bucket, n, total, low, high, sketch, sketch_merged)
        SELECT series_id, bucket, sum(n), sum(total), min(low), max(high),
               array_agg((k::bigint << 32) | least(n, {mask})), count(*)
          FROM {binned} AS b
         GROUP BY series_id, bucket
         -- Every batch locks rows in this order: two batches at once wait, never deadlock.
         ORDER BY series_id, bucket
        ON CONFLICT (series_id, bucket) DO UPDATE
           SET n = r.n + EXCLUDED.n, total = r.total + EXCLUDED.total,
               low = LEAST(r.low, EXCLUDED.low), high = GREATEST(r.high, EXCLUDED.high),
               (sketch, sketch_merged) = (
                   SELECT coalesce(m.merged, r.sketch || EXCLUDED.sketch),
                          coalesce(cardinality(m.merged), r.sketch_merged)
                     FROM (SELECT array_agg((k << 32) | least(c, {mask})::bigint) AS merged
                             FROM (SELECT x >> 32 AS k, sum((x & {mask})::float8) AS c
                                     FROM unnest(r.sketch || EXCLUDED.sketch) AS x
                                    WHERE cardinality(r.sketch) + cardinality(EXCLUDED.sketch)
                                          > 2 * r.sketch_merged + {_MERGE_SLACK}
                                    GROUP BY 1) AS bins) AS m)
    """  # noqa: S608 (tables and constants of this module)


# The five-minute bins of `binned` gathered into hours.
_HOURLY = f"""
    (SELECT series_id, date_bin('1 hour', bucket, {_ORIGIN}) AS bucket, k, sum(n)::bigint AS n,
            sum(total) AS total, min(low) AS low, max(high) AS high
       FROM binned
      GROUP BY 1, 2, 3)
"""  # noqa: S608 (constants of this module)


def _fold_sql(source: str) -> str:
    """CTEs and a final INSERT that fold the (series_id, ts, value) rows of `source` into both
    rollups; the caller starts the WITH clause."""
    return f"""
        binned AS (
            SELECT series_id, date_bin('5 minutes', ts, {_ORIGIN}) AS bucket,
                   {sketch.key_sql("value")} AS k,
                   count(*) AS n, sum(value) AS total, min(value) AS low, max(value) AS high
              FROM {source}
             GROUP BY 1, 2, 3
        ), five AS ({_upsert_sql(ROLLUP_5M, "binned")})
        {_upsert_sql(ROLLUP_1H, _HOURLY)}
    """  # noqa: S608 (tables and constants of this module)


def rebuild_rollup(series_ids: Sequence[int]) -> None:
    """Recompute the rollups of these series from their samples (after a bulk load)."""
    ids = list(series_ids)
    with connection.cursor() as cursor:
        for table in (ROLLUP_5M, ROLLUP_1H):
            cursor.execute(
                f"DELETE FROM {table} WHERE series_id = ANY(%s::bigint[])",  # noqa: S608
                [ids],
            )
        samples = f"(SELECT * FROM {SAMPLE_TABLE} WHERE series_id = ANY(%(ids)s)) AS s"  # noqa: S608
        cursor.execute("WITH " + _fold_sql(samples), {"ids": ids})


def _uses_rollup(aggregation: str, step: timedelta) -> bool:
    return (
        aggregation in AGGREGATES
        and step.total_seconds() >= ROLLUP_SECONDS
        and step.total_seconds() % ROLLUP_SECONDS == 0
    )


def _rollup_for(step: timedelta) -> tuple[str, int]:
    """The coarsest rollup whose buckets fit whole in `step`: its table and bucket width."""
    if step.total_seconds() % HOUR_SECONDS == 0:
        return ROLLUP_1H, HOUR_SECONDS
    return ROLLUP_5M, ROLLUP_SECONDS


def matching_series(metric_name: str, label_filter: dict[str, str]) -> list[MetricSeries]:
    """Series of the metric named `metric_name` whose labels include every pair of
    `label_filter`."""
    rows = MetricSeries.objects.filter(metric__name=metric_name)
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

    Buckets start at `start`; each point is at its bucket's start. Steps of whole five minutes
    read the rollups, and then buckets start at `start` rounded down to the rollup's width
    (five minutes, or an hour for steps of whole hours); percentiles are then within
    `sketch.ALPHA` of the exact ones.
    """
    if aggregation not in AGGREGATES and aggregation != LATEST:
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
        rows = _bucketed_rollup(ids, group_of, aggregation, start, end, step)
        return _series_of(rows, groups, group_by, name)
    if aggregation == LATEST:
        rows = _read(
            f"""
            SELECT g.grp, l.bucket, sum(l.value)
              FROM (SELECT DISTINCT ON (b.series_id, b.bucket) b.series_id, b.bucket, b.value
                      FROM (SELECT series_id, ts, value,
                                   date_part('epoch', date_bin(%s, ts, %s)) AS bucket
                              FROM {SAMPLE_TABLE}
                             WHERE series_id = ANY(%s::bigint[]) AND ts >= %s AND ts < %s) AS b
                     ORDER BY b.series_id, b.bucket, b.ts DESC) AS l
              JOIN unnest(%s::bigint[], %s::int[]) AS g(series_id, grp) USING (series_id)
             GROUP BY g.grp, l.bucket
             ORDER BY g.grp, l.bucket
            """,  # noqa: S608 (the table name is a constant)
            [step, start, ids, start, end, ids, group_of],
        )
        return _series_of(rows, groups, group_by, name)
    # `series_id = ANY` lets the planner use the (series, time) index; the join only maps each
    # series to its group.
    rows = _read(
        f"""
        SELECT g.grp, date_part('epoch', date_bin(%s, s.ts, %s)) AS bucket,
               {AGGREGATES[aggregation]}
          FROM dashboards_sample AS s
          JOIN unnest(%s::bigint[], %s::int[]) AS g(series_id, grp) USING (series_id)
         WHERE s.series_id = ANY(%s::bigint[]) AND s.ts >= %s AND s.ts < %s
         GROUP BY g.grp, bucket
         ORDER BY g.grp, bucket
        """,  # noqa: S608 (the aggregate comes from AGGREGATES, never from input)
        [step, start, ids, group_of, ids, start, end],
    )
    return _series_of(rows, groups, group_by, name)


def _series_of(rows, groups, group_by, name) -> list[Series]:
    """Series from (group, bucket start in epoch seconds, value) rows in time order."""
    points: dict[int, list[tuple[float, float]]] = {index: [] for index in groups.values()}
    for grp, bucket, value in rows:
        if value is not None:
            points[grp].append((bucket, float(value)))
    return [
        Series(name=name, labels=dict(zip(group_by, key, strict=True)), points=points[index])
        for key, index in groups.items()
    ]


def _bucketed_rollup(ids, group_of, aggregation, start, end, step) -> list[tuple]:
    """(group, bucket, value) rows of `bucketed` from the coarsest rollup that fits `step`."""
    table, width = _rollup_for(step)
    origin = _floor(start, width)
    params = {"step": step, "origin": origin, "ids": ids, "groups": group_of, "end": end}
    rows = f"""
        (SELECT g.grp, r.bucket, r.sketch, r.n, r.total, r.low, r.high
           FROM {table} AS r
           JOIN unnest(%(ids)s::bigint[], %(groups)s::int[]) AS g(series_id, grp)
                USING (series_id)
          WHERE r.series_id = ANY(%(ids)s::bigint[])
            AND r.bucket >= %(origin)s AND r.bucket < %(end)s) AS r
    """  # noqa: S608 (a table of this module)
    bucket = "date_part('epoch', date_bin(%(step)s, r.bucket, %(origin)s))"
    if aggregation in PERCENTILES:
        q = PERCENTILES[aggregation]
        found = []
        query = f"SELECT r.grp, {bucket} AS b, r.sketch FROM {rows} ORDER BY 1, 2"  # noqa: S608
        # The histograms of one group and bucket follow each other: merged, then ranked.
        for (grp, at), parts in groupby(_read(query, params), key=itemgetter(0, 1)):
            value = sketch.quantile(list(chain.from_iterable(p[2] for p in parts)), q)
            if value is not None:
                found.append((grp, at, value))
        return found
    return _read(
        f"""
        SELECT r.grp, {bucket} AS b, {ROLLUP_AGGREGATES[aggregation]}
          FROM {rows}
         GROUP BY r.grp, b
         ORDER BY r.grp, b
        """,  # noqa: S608 (the aggregate comes from ROLLUP_AGGREGATES, never from input)
        params,
    )


def _span_rows(start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    """Rollup rows `r` covering [start, end) in whole five minutes, from the hourly rollup where
    whole hours fit: the five-minute buckets at either end, the hours between."""
    first = rollup_bucket(start)
    hours_from, hours_to = _ceil(first, HOUR_SECONDS), _floor(end, HOUR_SECONDS)
    params = {"first": first, "end": end, "hours_from": hours_from, "hours_to": hours_to}
    if hours_to <= hours_from:
        return (
            f"""(SELECT sketch, n, total, low, high FROM {ROLLUP_5M}
                  WHERE series_id = ANY(%(ids)s::bigint[])
                    AND bucket >= %(first)s AND bucket < %(end)s) AS r""",  # noqa: S608
            params,
        )
    return (
        f"""(SELECT sketch, n, total, low, high FROM {ROLLUP_1H}
              WHERE series_id = ANY(%(ids)s::bigint[])
                AND bucket >= %(hours_from)s AND bucket < %(hours_to)s
             UNION ALL
             SELECT sketch, n, total, low, high FROM {ROLLUP_5M}
              WHERE series_id = ANY(%(ids)s::bigint[])
                AND (bucket >= %(first)s AND bucket < %(hours_from)s
                     OR bucket >= %(hours_to)s AND bucket < %(end)s)) AS r""",  # noqa: S608
        params,
    )


def aggregate_over(
    series: Sequence[MetricSeries], *, aggregation: str, start: datetime, end: datetime
) -> float | None:
    """One value of `aggregation` over every sample of `series` in [start, end)."""
    if aggregation not in AGGREGATES and aggregation != LATEST:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if not series:
        return None
    ids = [one.id for one in series]
    if aggregation == LATEST:
        # One index probe per series, however long the span.
        [(value,)] = _read(
            f"""
            SELECT sum(l.value) FROM unnest(%s::bigint[]) AS i(id)
             CROSS JOIN LATERAL (SELECT value FROM {SAMPLE_TABLE}
                                  WHERE series_id = i.id AND ts >= %s AND ts < %s
                                  ORDER BY ts DESC LIMIT 1) AS l
            """,  # noqa: S608 (the table name is a constant)
            [ids, start, end],
        )
        return None if value is None else float(value)
    if end - start >= timedelta(hours=1):
        # Whole five-minute buckets: the edges of a long span weigh next to nothing.
        rows, params = _span_rows(start, end)
        params["ids"] = ids
        if aggregation in PERCENTILES:
            found = _read(f"SELECT sketch FROM {rows}", params)  # noqa: S608
            elements = list(chain.from_iterable(row[0] for row in found))
            return sketch.quantile(elements, PERCENTILES[aggregation])
        [(value,)] = _read(f"SELECT {ROLLUP_AGGREGATES[aggregation]} FROM {rows}", params)  # noqa: S608
        return None if value is None else float(value)
    [(value,)] = _read(
        f"""
        SELECT {AGGREGATES[aggregation]} FROM dashboards_sample
         WHERE series_id = ANY(%s::bigint[]) AND ts >= %s AND ts < %s
        """,  # noqa: S608 (the aggregate comes from AGGREGATES, never from input)
        [ids, start, end],
    )
    return None if value is None else float(value)


def delete_older_than(cutoff: datetime) -> int:
    """Delete every sample before `cutoff`; returns how many went."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM dashboards_sample WHERE ts < %s", [cutoff])
        removed = cursor.rowcount
        cursor.execute(f"DELETE FROM {ROLLUP_5M} WHERE bucket < %s", [rollup_bucket(cutoff)])  # noqa: S608
        cursor.execute(
            f"DELETE FROM {ROLLUP_1H} WHERE bucket < %s",  # noqa: S608
            [_floor(cutoff, HOUR_SECONDS)],
        )
        return removed


def delete_series_samples(series_ids: Sequence[int]) -> None:
    """Delete the samples of these series (the table has no foreign key to cascade)."""
    if series_ids:
        with connection.cursor() as cursor:
            for table in (SAMPLE_TABLE, ROLLUP_5M, ROLLUP_1H):
                cursor.execute(
                    f"DELETE FROM {table} WHERE series_id = ANY(%s::bigint[])",  # noqa: S608
                    [list(series_ids)],
                )
