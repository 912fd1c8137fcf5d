"""Ingest throughput: samples/s through `POST /api/v1/metrics` beside raw COPY of the same rows.

Run with `python -m portal.devstack run bench/ingest.py [--batches N] [--batch-size 5000]`.
The API path is the whole product path in this process (Django's test client: middleware, token
authentication, parsing, validation against the catalog, series lookup, COPY, both rollups,
latest values) but no network or ASGI server. The COPY path writes the same (series, time,
value) rows straight into the samples table, nothing else. The two alternate batch by batch, so
that both see the same load on a shared machine. Both run in the benchmark tenant; its samples
and rollups are deleted at the end. Goal: over 100,000 samples/s, at least half of raw COPY.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench_tenant import bench_tenant
from django.db import connection, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from dashboards import services, store
from dashboards.models import MetricDefinition, MetricSeries
from tenants import audit
from tenants import services as tenant_services
from tests.helpers import host_of

METRIC = "bench_ingest_latency_ms"
API_GOAL = 100_000
LABEL_VALUES = [f"endpoint-{i}" for i in range(50)]


def batches(count: int, size: int, start: datetime) -> list[list[dict]]:
    made = []
    for b in range(count):
        at = start + timedelta(seconds=b)
        made.append(
            [
                {
                    "name": METRIC,
                    "labels": {"endpoint": LABEL_VALUES[i % len(LABEL_VALUES)]},
                    "value": float(i % 997),
                    "timestamp": (at + timedelta(microseconds=i)).timestamp(),
                }
                for i in range(size)
            ]
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    tenant = bench_tenant()
    actor = audit.Actor.system("bench")
    with tenant_context(tenant):
        if not MetricDefinition.objects.filter(name=METRIC).exists():
            services.create_metric(
                name=METRIC, type="gauge", labels=["endpoint"], cardinality_limit=100, actor=actor
            )
    connection.set_schema_to_public()
    secret = tenant_services.create_token(
        tenant=tenant,
        name="bench ingest",
        scopes=["ingest"],
        actor=actor,
        expires_at=datetime.now(tz=UTC) + timedelta(hours=1),
    ).secret
    client = Client(HTTP_HOST=host_of(tenant.slug), HTTP_AUTHORIZATION=f"Bearer {secret}")
    start = datetime.now(tz=UTC) - timedelta(hours=1)
    made = batches(args.batches, args.batch_size, start)
    bodies = [json.dumps({"samples": b}) for b in made]
    client.post("/api/v1/metrics", bodies[0], content_type="application/json")  # warm-up
    connection.set_schema_to_public()
    with tenant_context(tenant):
        ids = dict(MetricSeries.objects.filter(metric__name=METRIC).values_list("labels_key", "pk"))
        rows = [
            [
                (
                    ids[store.labels_key(s["labels"])],
                    datetime.fromtimestamp(s["timestamp"], tz=UTC),
                    s["value"],
                )
                for s in batch
            ]
            for batch in made
        ]
    connection.set_schema_to_public()
    load_before = os.getloadavg()

    api_times, copy_times = [], []
    for body, batch_rows in zip(bodies, rows, strict=True):
        began = time.perf_counter()
        response = client.post("/api/v1/metrics", body, content_type="application/json")
        api_times.append(time.perf_counter() - began)
        assert response.status_code == 202, response.content[:500]
        assert response.json()["stored"] == args.batch_size, response.content[:500]
        connection.set_schema_to_public()
        with tenant_context(tenant):
            began = time.perf_counter()
            with transaction.atomic():
                store.copy_rows(batch_rows)
            copy_times.append(time.perf_counter() - began)
        connection.set_schema_to_public()

    total = args.batches * args.batch_size
    with tenant_context(tenant):
        # The path checked: every batch through the API (and the warm-up) and through COPY.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM dashboards_sample WHERE series_id = ANY(%s)",
                [list(ids.values())],
            )
            stored = cursor.fetchone()[0]
        assert stored == 2 * total + args.batch_size, f"{stored} samples in the store"
        store.delete_series_samples(list(ids.values()))
    connection.set_schema_to_public()

    api_rate = total / sum(api_times)
    copy_rate = total / sum(copy_times)
    print(f"samples: {args.batches} batches x {args.batch_size} = {total}")
    print(
        f"POST /api/v1/metrics: {api_rate:,.0f} samples/s "
        f"(batch p50 {statistics.median(api_times) * 1000:.0f} ms)"
    )
    print(
        f"raw COPY:             {copy_rate:,.0f} samples/s "
        f"(batch p50 {statistics.median(copy_times) * 1000:.0f} ms)"
    )
    print(f"ratio API/COPY:       {api_rate / copy_rate:.2f} (goal >= 0.5)")
    print(f"API against its goal: {api_rate / API_GOAL:.2f}x the {API_GOAL:,} samples/s to beat")
    load = " ".join(f"{x:.2f}" for x in (*load_before, *os.getloadavg()))
    print(f"load average before and after: {load}")


if __name__ == "__main__":
    main()
