"""Prometheus panels live: polled only while someone watches their dashboard, once per panel
however many watch, and the points reach the watching sockets of that tenant only.

A real Prometheus scrapes the test's exporter (series of acme and of globex); the queries the
portal sends are counted by Prometheus itself (`prometheus_http_requests_total`). Sockets are the
real consumers on the real Redis channel layer, in this process; dashboards and sessions are
committed so that the consumers' threads see them.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from dashboards import live, prometheus_poll, tasks
from dashboards.models import Dashboard
from tenants import audit
from tenants.models import Tenant
from tests.backend_servers import (
    PrometheusServer,
    promql_query,
    running_exporter,
    running_prometheus,
)
from tests.factories import dashboard_with_panels
from tests.helpers import wait_for
from tests.test_dashboard_live import QUIET_WINDOW, socket_for

ACTOR = audit.Actor.system("live poll tests")
METRIC = "live_probe_value"
ACME_VALUES = {"a": 41.0, "b": 42.0}
GLOBEX_VALUE = 99.0
STEP = prometheus_poll.STEP_SECONDS
LAYOUT = {"x": 0, "y": 0, "w": 6, "h": 4}
PROBE_SERIES = [
    *((METRIC, {"tenant": "acme", "instance": i}, v) for i, v in ACME_VALUES.items()),
    (METRIC, {"tenant": "globex", "instance": "a"}, GLOBEX_VALUE),
]


@dataclass
class Probe:
    """The running Prometheus, with data from before the current step on."""

    server: PrometheusServer

    def range_queries(self) -> float:
        """How many range queries Prometheus has answered (any status)."""
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            text = client.get(f"{self.server.url}/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prometheus_http_requests_total{")
            and 'handler="/api/v1/query_range"' in line
        )


def wait_for_a_step_with_data(server: PrometheusServer) -> None:
    """Until Prometheus has scraped the probe series and the current step has them: a poll
    asks for whole steps."""
    server.wait_for_samples(METRIC, len(PROBE_SERIES))

    def step_has_data() -> bool:
        step = math.floor(time.time() / STEP) * STEP
        return len(promql_query(server.url, METRIC, time=step)) == len(PROBE_SERIES)

    wait_for(step_has_data, timeout=STEP * 3, message="a whole step with data")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Iterator[Probe]:
    with running_exporter() as exporter:
        exporter.set_series(PROBE_SERIES)
        with running_prometheus(
            tmp_path_factory.mktemp("live-poll"), scrape_configs=[exporter.scrape_config()]
        ) as server:
            wait_for_a_step_with_data(server)
            yield Probe(server)


@pytest.fixture
def prometheus(settings, probe: Probe) -> Probe:
    settings.PROMETHEUS_URL = probe.server.url
    return probe


@dataclass
class Watched:
    dashboard: str
    panels: dict[str, str]  # title -> public id


def make_dashboard(slug: str) -> Watched:
    specs = [
        {"title": "Probe", "kind": "timeseries", "promql": METRIC, "legend": "{{instance}}"},
        {"title": "Probe max", "kind": "stat", "promql": f"max({METRIC})"},
        # Neither is polled: a table is redrawn only on reload, a built-in panel is pushed.
        {"title": "Probe table", "kind": "table", "promql": METRIC},
    ]
    specs = [{"source": "prometheus", **LAYOUT, **spec} for spec in specs]
    specs.append(
        {"title": "Revenue", "kind": "timeseries", "source": "builtin", "metric": "revenue_eur"}
        | LAYOUT
    )
    tenant = Tenant.objects.get(schema_name=slug)
    dashboard = dashboard_with_panels(tenant, f"Live {uuid.uuid4().hex[:8]}", specs, actor=ACTOR)
    with schema_context(slug):
        panels = {panel.title: str(panel.public_id) for panel in dashboard.panels.all()}
    connection.set_schema_to_public()
    return Watched(str(dashboard.public_id), panels)


def forget_dashboard(slug: str, dashboard_id: str) -> None:
    """Remove a test's committed dashboard with its panels. Clean-up of the test's own data,
    not a product operation: no audit event, so tests that look for the one deletion they make
    find only theirs (the creation's events stay: the trail is append-only)."""
    with schema_context(slug):
        Dashboard.objects.filter(public_id=dashboard_id).delete()
    connection.set_schema_to_public()


@pytest.fixture
def watched(django_db_setup, django_db_blocker) -> Iterator[Watched]:
    """A committed acme dashboard with two pollable Prometheus panels, removed afterwards."""
    with django_db_blocker.unblock():
        made = make_dashboard("acme")
    yield made
    with django_db_blocker.unblock():
        forget_dashboard("acme", made.dashboard)


async def watching(dashboard: str, count: int | None, timeout: float = 10.0) -> None:
    """Wait until `count` sockets watch the acme dashboard (None: none; the count comes from
    each consumer's connect and leave hooks, which run after the handshake)."""
    deadline = time.monotonic() + timeout
    while (now := live.watchers(["acme"]).get("acme", {}).get(dashboard)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{now} sockets watch {dashboard}, not {count}")
        await asyncio.sleep(0.02)


def poll_in(slug: str, now: float | None = None) -> int:
    with tenant_context(Tenant.objects.get(schema_name=slug)):
        queried = prometheus_poll.poll(now=now)
    connection.set_schema_to_public()
    return queried


def executive_dashboard(slug: str) -> str:
    with schema_context(slug):
        return str(Dashboard.objects.get(title="Executive overview").public_id)


def test_two_watchers_cost_one_query_per_panel_and_both_get_the_points(
    prometheus: Probe, watched: Watched, session_cookie, django_db_blocker
):
    acme_cookie = session_cookie("executive@acme.example")
    globex_cookie = session_cookie("executive@globex.example")
    with django_db_blocker.unblock():
        globex_dashboard = executive_dashboard("globex")
    now = time.time()

    async def scenario():
        pages = [socket_for("acme", watched.dashboard, acme_cookie) for _ in range(2)]
        globex_page = socket_for("globex", globex_dashboard, globex_cookie)
        for page in (*pages, globex_page):
            assert (await page.open())["type"] == "websocket.accept"
        await watching(watched.dashboard, 2)
        before = prometheus.range_queries()
        queried = await database_sync_to_async(poll_in)("acme", now)
        sent = prometheus.range_queries() - before
        heard = [json.loads((await page.receive(timeout=5))["text"]) for page in pages]
        assert await globex_page.communicator.receive_nothing(timeout=QUIET_WINDOW)
        # The same step again: nothing new to ask for.
        again = await database_sync_to_async(poll_in)("acme", now)
        sent_again = prometheus.range_queries() - before - sent
        for page in pages:
            assert await page.communicator.receive_nothing(timeout=QUIET_WINDOW)
        await asyncio.gather(*(page.hang_up(30) for page in (*pages, globex_page)))
        return queried, sent, heard, again, sent_again

    with django_db_blocker.unblock():
        queried, sent, heard, again, sent_again = async_to_sync(scenario)()
    assert (queried, sent) == (2, 2), "one query per pollable panel, however many watch"
    assert (again, sent_again) == (0, 0)
    assert heard[0] == heard[1]
    message = heard[0]
    assert message["type"] == "points"
    updates = {update["panel"]: update for update in message["panels"]}
    assert set(updates) == {watched.panels["Probe"], watched.panels["Probe max"]}
    step_ms = math.floor(now / STEP) * STEP * 1000
    lines = {line["name"]: line["points"] for line in updates[watched.panels["Probe"]]["series"]}
    assert lines == {name: [[step_ms, value]] for name, value in ACME_VALUES.items()}
    stat = updates[watched.panels["Probe max"]]
    assert stat["value"] == max(ACME_VALUES.values())
    assert stat["points"] == [[step_ms, max(ACME_VALUES.values())]]
    values = {
        point[1]
        for update in message["panels"]
        for line in update["series"]
        for point in line["points"]
    }
    assert values == set(ACME_VALUES.values())
    assert GLOBEX_VALUE not in values


def test_nobody_watching_means_no_query(prometheus: Probe, watched: Watched, django_db_blocker):
    async def watch_then_leave() -> None:
        await live.watch("acme", watched.dashboard, "test.channel")
        await live.unwatch("acme", watched.dashboard, "test.channel")

    async_to_sync(watch_then_leave)()
    before = prometheus.range_queries()
    with django_db_blocker.unblock():
        queried = poll_in("acme")
    assert queried == 0
    assert prometheus.range_queries() == before
    assert watched.dashboard not in live.watchers(["acme"]).get("acme", {})


def test_a_socket_that_goes_stops_counting_and_a_lapsed_entry_is_dropped(
    watched: Watched, session_cookie, django_db_blocker
):
    cookie = session_cookie("executive@acme.example")

    async def scenario():
        page = socket_for("acme", watched.dashboard, cookie)
        assert (await page.open())["type"] == "websocket.accept"
        await watching(watched.dashboard, 1)
        await page.hang_up(30)
        await watching(watched.dashboard, None)
        # An entry nobody refreshed (its server died) lapses by itself.
        await live.watch("acme", watched.dashboard, "test.ghost")
        lapsed = live.watchers(["acme"], now=time.time() + live.WATCH_SECONDS + 1)
        return lapsed

    with django_db_blocker.unblock():
        lapsed = async_to_sync(scenario)()
    assert watched.dashboard not in lapsed.get("acme", {})
    assert watched.dashboard not in live.watchers(["acme"]).get("acme", {})


def test_a_gap_is_caught_up_in_one_query_per_panel(
    prometheus: Probe, watched: Watched, django_db_blocker
):
    async_to_sync(live.watch)("acme", watched.dashboard, "test.channel")
    now = time.time()
    try:
        with django_db_blocker.unblock():
            first = poll_in("acme", now)
            before = prometheus.range_queries()
            # Three steps later (Prometheus answers later instants from the newest sample).
            later = poll_in("acme", now + 3 * STEP)
    finally:
        async_to_sync(live.unwatch)("acme", watched.dashboard, "test.channel")
    assert (first, later) == (2, 2)
    assert prometheus.range_queries() - before == 2


def test_beat_queues_a_poll_only_for_tenants_someone_watches(
    prometheus: Probe, watched: Watched, django_db_blocker, eager_tasks
):
    before = prometheus.range_queries()
    with django_db_blocker.unblock():
        idle = tasks.poll_prometheus_all()
    assert idle == 0
    assert prometheus.range_queries() == before

    async_to_sync(live.watch)("acme", watched.dashboard, "test.channel")
    try:
        with django_db_blocker.unblock():
            queued = tasks.poll_prometheus_all()
    finally:
        async_to_sync(live.unwatch)("acme", watched.dashboard, "test.channel")
        connection.set_schema_to_public()
    assert queued == 1
    assert prometheus.range_queries() - before == 2


def test_the_beat_entry_names_the_task():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["poll-watched-prometheus-panels"]
    assert entry["task"] == tasks.poll_prometheus_all.name
    assert entry["schedule"] == prometheus_poll.POLL_SECONDS
