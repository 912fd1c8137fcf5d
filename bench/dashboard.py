"""Dashboard server time: the Executive dashboard with 12 panels over 30 days of 10 s data.

Run with `python -m portal.devstack run bench/dashboard.py [--requests N] [--panels]`. In the
benchmark tenant it writes 30 days of one sample per 10 s for every series the panels read (once;
kept for later runs, with their rollups), builds a 12-panel copy of the Executive dashboard, then
requests its page (`?range=30d`) N times as an executive through Django's test client and prints
p50/p95 of the server time. `--panels` adds each panel's own time (median over N renderings of
its figure), to see which panels a page waits for. Goal: p95 under 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

from bench_tenant import bench_tenant
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from dashboards import queries, rendering, services
from dashboards.defaults import DEFAULT_DASHBOARDS
from dashboards.demo_feed import DEMO_SERIES
from dashboards.models import Dashboard, MetricDefinition, MetricSeries
from dashboards.store import labels_key, rebuild_rollup
from tenants import audit
from tenants.models import Membership
from tests.helpers import host_of

TITLE = "Executive overview (12 panels)"
DAYS = 30
STEP_S = 10
EXTRA_PANELS = [
    {
        "title": "Latency p95",
        "kind": "timeseries",
        "source": "builtin",
        "metric": "http_request_duration_ms",
        "aggregation": "p95",
        "unit": "ms",
        "x": 0,
        "y": 11,
        "w": 4,
        "h": 4,
    },
    {
        "title": "Throughput",
        "kind": "timeseries",
        "source": "builtin",
        "metric": "http_requests_per_second",
        "aggregation": "sum",
        "unit": "req/s",
        "x": 4,
        "y": 11,
        "w": 4,
        "h": 4,
    },
    {
        "title": "CPU",
        "kind": "gauge",
        "source": "builtin",
        "metric": "cpu_usage_ratio",
        "aggregation": "avg",
        "unit": "%",
        "x": 8,
        "y": 11,
        "w": 4,
        "h": 4,
    },
]


def twelve_panel_dashboard(actor: audit.Actor) -> Dashboard:
    dashboard = Dashboard.objects.filter(title=TITLE).first()
    if dashboard is not None:
        return dashboard
    dashboard = services.create_dashboard(title=TITLE, actor=actor)
    panels = [*DEFAULT_DASHBOARDS[0]["panels"], *EXTRA_PANELS][:12]
    for position, panel in enumerate(panels):
        services.create_panel(
            dashboard_id=dashboard.public_id, position=position, actor=actor, **panel
        )
    return dashboard


def ensure_data(dashboard: Dashboard) -> int:
    """30 days of 10 s samples for every demo series of the panels' metrics; rows written."""
    metrics = set(dashboard.panels.values_list("metric", flat=True))
    catalog = {m.name: m for m in MetricDefinition.objects.filter(name__in=metrics)}
    written = 0
    now = timezone.now()
    for series in DEMO_SERIES:
        if series.metric not in catalog:
            continue
        row, created = MetricSeries.objects.get_or_create(
            metric=catalog[series.metric],
            labels_key=labels_key(series.labels),
            defaults={"labels": series.labels},
        )
        if not created and row.last_at is not None:
            continue
        with connection.cursor() as cursor:
            # Generated in the database: the bench measures reading, not writing.
            cursor.execute(
                """
                INSERT INTO dashboards_sample (series_id, ts, value)
                SELECT %s, t, %s * (1 + 0.3 * sin(extract(epoch FROM t) / 13751.0))
                              * (0.9 + 0.2 * random())
                  FROM generate_series(%s::timestamptz, %s::timestamptz, %s::interval) AS t
                """,
                [row.pk, series.base, now - timedelta(days=DAYS), now, f"{STEP_S} seconds"],
            )
            written += cursor.rowcount
        row.last_at, row.last_value = now, series.base
        row.save(update_fields=["last_at", "last_value"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM dashboards_rollup_5m)")
        (rolled,) = cursor.fetchone()
    if written or not rolled:
        rebuild_rollup(list(MetricSeries.objects.values_list("pk", flat=True)))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE dashboards_sample")
            cursor.execute("ANALYZE dashboards_rollup_5m")
            cursor.execute("ANALYZE dashboards_rollup_1h")
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--panels", action="store_true", help="time each panel on its own too")
    args = parser.parse_args()
    tenant = bench_tenant()
    actor = audit.Actor.system("bench")
    with tenant_context(tenant):
        dashboard = twelve_panel_dashboard(actor)
        began = time.perf_counter()
        written = ensure_data(dashboard)
        if written:
            print(f"wrote {written:,} samples in {time.perf_counter() - began:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM dashboards_sample")
            total = cursor.fetchone()[0]
        panels = dashboard.panels.count()
    connection.set_schema_to_public()
    user, _ = get_user_model().objects.get_or_create(
        username="bench-executive@bench.example",
        defaults={"email": "bench-executive@bench.example"},
    )
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": "executive"})
    client = Client(HTTP_HOST=host_of(tenant.slug))
    client.force_login(user, backend="tenants.accounts.backends.EmailBackend")
    url = f"/dashboards/{dashboard.public_id}/?range=30d"
    assert client.get(url).status_code == 200  # warm-up
    load_before = os.getloadavg()
    times = []
    for _ in range(args.requests):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
        assert b'"error"' not in response.content, "a panel failed"
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"panels: {panels}, samples in the store: {total:,}, range: {DAYS} days of {STEP_S} s")
    print(
        f"server time over {args.requests} requests: p50 {statistics.median(times):.0f} ms, "
        f"p95 {p95:.0f} ms (goal p95 < 150 ms: {p95 / 150:.1f}x the limit)"
    )
    load = " ".join(f"{x:.2f}" for x in (*load_before, *os.getloadavg()))
    print(f"load average before and after: {load}")
    if args.panels:
        panel_times(tenant, dashboard, args.requests)


def panel_times(tenant, dashboard: Dashboard, rounds: int) -> None:
    """Each panel's figure on its own, as the page builds it: median milliseconds."""
    span = queries.time_range({"range": "30d"})
    with tenant_context(tenant):
        taken: dict[int, list[float]] = {}
        for _ in range(rounds):
            for panel in dashboard.panels.all():
                began = time.perf_counter()
                rendering.figure_for(panel, span)
                taken.setdefault(panel.pk, []).append((time.perf_counter() - began) * 1000)
        for panel in dashboard.panels.all():
            print(
                f"  {panel.title[:28]:28} {panel.kind:10} {panel.aggregation:5} "
                f"{statistics.median(taken[panel.pk]):6.1f} ms"
            )
    connection.set_schema_to_public()


if __name__ == "__main__":
    main()
