"""Live dashboards: a watching page gets ingested points; other tenants' pages never do.

The WebSocket stack (host -> tenant, session, route) runs in this process on the real Redis
channel layer; ingest runs committed, so its on-commit push happens as in production.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.db import connection
from django_tenants.utils import tenant_context

from dashboards import ingest
from dashboards.live import dashboard_group
from dashboards.models import Dashboard
from dashboards.routing import websocket_urlpatterns
from tenants.models import Tenant
from tenants.realtime.consumers import CLOSE_FORBIDDEN
from tenants.realtime.middleware import TenantFromHostMiddleware
from tests.helpers import host_of
from tests.websockets_client import (
    InProcessSocket,
    cookie_of,
    create_session,
    delete_sessions,
    websocket_scope,
)

# A deliberate quiet period: what is tested is that nothing arrives, which only a duration shows.
QUIET_WINDOW = 0.5
# How soon a left socket's consumer must be gone. Not what this module tests: an instance may be
# inside one blocking read of the Redis channel layer (5 s) when its client leaves.
HANG_UP_WITHIN = 30.0


def application():
    return TenantFromHostMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


def executive_dashboard_id(slug: str) -> str:
    with tenant_context(Tenant.objects.get(schema_name=slug)):
        return str(Dashboard.objects.get(title="Executive overview").public_id)


def push_revenue(slug: str, value: float) -> int:
    """Ingest one revenue sample in `slug` for real (committed; pushes on commit)."""
    with tenant_context(Tenant.objects.get(schema_name=slug)):
        raw = [
            ingest.RawSample(0, "revenue_eur", {"channel": "web"}, value, time.time()),
        ]
        stored = ingest.ingest(raw)
    connection.set_schema_to_public()
    return stored


def forget_revenue(slug: str, values: list[float]) -> None:
    """Remove committed revenue samples of these values from `slug`'s store, with what they
    left in the rollups and the series' latest values: clean-up of a test's own data, so later
    tests reading acme's revenue see none of it."""
    from dashboards import store
    from dashboards.models import MetricSeries

    with tenant_context(Tenant.objects.get(schema_name=slug)), connection.cursor() as cursor:
        series = list(MetricSeries.objects.filter(metric__name="revenue_eur"))
        ids = [one.pk for one in series]
        cursor.execute(
            "DELETE FROM dashboards_sample WHERE series_id = ANY(%s) AND value = ANY(%s)",
            [ids, list(values)],
        )
        store.rebuild_rollup(ids)
        for one in series:
            cursor.execute(
                "SELECT ts, value FROM dashboards_sample WHERE series_id = %s"
                " ORDER BY ts DESC LIMIT 1",
                [one.pk],
            )
            last_at, last_value = cursor.fetchone() or (None, None)
            MetricSeries.objects.filter(pk=one.pk).update(last_at=last_at, last_value=last_value)
    connection.set_schema_to_public()


def socket_for(slug: str, dashboard_id: str, cookie: str | None) -> InProcessSocket:
    scope = websocket_scope(host_of(slug), f"/ws/dashboards/{dashboard_id}/", cookie=cookie)
    return InProcessSocket(application(), scope)


@pytest.fixture
def sessions(django_db_setup, django_db_blocker):
    made = []

    def make(email: str) -> str:
        made.append(create_session(email, django_db_blocker))
        return cookie_of(made[-1])

    yield make
    delete_sessions(made, django_db_blocker)


def test_a_watching_page_gets_pushed_points_and_another_tenant_gets_none(
    sessions, django_db_blocker
):
    acme_cookie = sessions("executive@acme.example")
    globex_cookie = sessions("executive@globex.example")
    with django_db_blocker.unblock():
        acme_dashboard = executive_dashboard_id("acme")
        globex_dashboard = executive_dashboard_id("globex")

    async def scenario():
        acme_page = socket_for("acme", acme_dashboard, acme_cookie)
        globex_page = socket_for("globex", globex_dashboard, globex_cookie)
        # The same dashboard id on globex's host names globex's (absent) dashboard, not acme's.
        globex_peek = socket_for("globex", acme_dashboard, globex_cookie)
        for page in (acme_page, globex_page, globex_peek):
            assert (await page.open())["type"] == "websocket.accept"
        stored = await database_sync_to_async(push_revenue)("acme", 4321.0)
        message = json.loads((await acme_page.receive(timeout=5))["text"])
        for page in (globex_page, globex_peek):
            assert await page.communicator.receive_nothing(timeout=QUIET_WINDOW)
        # All leave together; each instance must end (the timing of a close is the realtime
        # tests' business: here a channel-layer receive may take its poll interval to let go).
        await asyncio.gather(
            *(page.hang_up(HANG_UP_WITHIN) for page in (acme_page, globex_page, globex_peek))
        )
        return stored, message

    with django_db_blocker.unblock():
        stored, message = async_to_sync(scenario)()
    assert stored == 1
    assert message["type"] == "points"
    titles_by_panel = {}
    with django_db_blocker.unblock(), tenant_context(Tenant.objects.get(schema_name="acme")):
        for panel in Dashboard.objects.get(public_id=acme_dashboard).panels.all():
            titles_by_panel[str(panel.public_id)] = panel.title
    pushed = {titles_by_panel[update["panel"]]: update for update in message["panels"]}
    assert {"Revenue", "Revenue per minute"} <= set(pushed)
    assert pushed["Revenue per minute"]["points"][0][1] == 4321.0


@pytest.mark.parametrize(
    ("who", "slug"),
    [(None, "acme"), ("executive@globex.example", "acme")],
    ids=["anonymous", "member of another tenant"],
)
def test_sockets_without_access_are_refused(sessions, django_db_blocker, who, slug):
    cookie = sessions(who) if who else None
    with django_db_blocker.unblock():
        dashboard = executive_dashboard_id("acme")

    async def scenario():
        page = socket_for(slug, dashboard, cookie)
        answer = await page.open()
        await page.ended_within(1.0)
        return answer

    with django_db_blocker.unblock():
        answer = async_to_sync(scenario)()
    assert answer == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_dashboard_groups_carry_the_tenant():
    assert dashboard_group("acme", "x") != dashboard_group("globex", "x")
    assert dashboard_group("acme", "x").startswith("tenant.acme.")


def _feeds_of(group: str) -> list:
    from dashboards.consumers import _feeds

    return [feed for (_, name), feed in _feeds.items() if name == group]


async def _group_members(group: str) -> list[bytes]:
    """Members of a channel group as the Redis channel layer stores them."""
    layer = get_channel_layer()
    redis = layer.connection(layer.consistent_hash(group))
    return await redis.zrange(layer._group_key(group), 0, -1)


FEED_VALUE = 7654.25


def test_sockets_on_one_dashboard_share_one_feed_that_goes_with_the_last(
    sessions, django_db_blocker
):
    cookie = sessions("executive@acme.example")
    with django_db_blocker.unblock():
        dashboard = executive_dashboard_id("acme")
    group = dashboard_group("acme", dashboard)

    async def scenario():
        pages = [socket_for("acme", dashboard, cookie) for _ in range(3)]
        for page in pages:
            assert (await page.open())["type"] == "websocket.accept"
        feeds = _feeds_of(group)
        shared = (len(feeds), len(feeds[0].sockets), len(await _group_members(group)))
        await database_sync_to_async(push_revenue)("acme", FEED_VALUE)
        texts = [(await page.receive(timeout=5))["text"] for page in pages]
        for page in pages:
            assert await page.communicator.receive_nothing(timeout=QUIET_WINDOW)
        await asyncio.gather(*(page.hang_up(HANG_UP_WITHIN) for page in pages[:2]))
        one_left = [len(feed.sockets) for feed in _feeds_of(group)]
        await pages[2].hang_up(HANG_UP_WITHIN)
        return shared, texts, one_left, _feeds_of(group), await _group_members(group)

    with django_db_blocker.unblock():
        try:
            shared, texts, one_left, feeds_after, members_after = async_to_sync(scenario)()
        finally:
            forget_revenue("acme", [FEED_VALUE])
    # One feed, the one member of the group in Redis, for three sockets.
    assert shared == (1, 3, 1)
    assert len(set(texts)) == 1
    assert json.loads(texts[0])["type"] == "points"
    assert one_left == [1]
    assert feeds_after == []
    assert members_after == []


def test_a_refused_socket_never_joins_a_feed(sessions, django_db_blocker):
    cookie = sessions("executive@globex.example")
    with django_db_blocker.unblock():
        dashboard = executive_dashboard_id("acme")

    async def scenario():
        page = socket_for("acme", dashboard, cookie)
        answer = await page.open()
        await page.ended_within(1.0)
        return answer, _feeds_of(dashboard_group("acme", dashboard))

    with django_db_blocker.unblock():
        answer, feeds = async_to_sync(scenario)()
    assert answer == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert feeds == []


def test_a_stuck_socket_drops_its_oldest_updates_and_holds_up_no_one():
    from dashboards.consumers import OUTBOX_SIZE, DashboardConsumer

    async def scenario() -> list[str]:
        consumer = DashboardConsumer()
        consumer._outbox = asyncio.Queue(OUTBOX_SIZE)
        # A writer that never gets to send (its client stopped reading).
        consumer._writer = asyncio.get_running_loop().create_future()
        for number in range(OUTBOX_SIZE + 5):
            consumer.deliver(str(number))  # never waits
        return [consumer._outbox.get_nowait() for _ in range(consumer._outbox.qsize())]

    queued = async_to_sync(scenario)()
    assert queued == [str(n) for n in range(5, OUTBOX_SIZE + 5)]


def test_points_sent_while_a_socket_is_being_accepted_reach_it_after_the_handshake(
    sessions, django_db_blocker, monkeypatch
):
    from dashboards import live
    from dashboards.consumers import DashboardConsumer

    cookie = sessions("executive@acme.example")
    with django_db_blocker.unblock():
        dashboard = executive_dashboard_id("acme")
    early = live.points_message([{"panel": "p", "kind": "timeseries", "points": [[1.0, 2.0]]}])
    check_access = DashboardConsumer._still_allowed

    async def update_during_the_handshake(consumer) -> bool:
        # The access check before the accept: the socket is in the feed, not yet accepted.
        if not consumer._accepted.is_set():
            await get_channel_layer().group_send(
                dashboard_group("acme", dashboard), {"type": live.POINTS_EVENT, "text": early}
            )
            deadline = time.monotonic() + 5
            while consumer._outbox.empty() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return await check_access(consumer)

    monkeypatch.setattr(DashboardConsumer, "_still_allowed", update_during_the_handshake)

    async def scenario():
        page = socket_for("acme", dashboard, cookie)
        opened = await page.open()
        first = await page.receive(timeout=5)
        await page.hang_up(HANG_UP_WITHIN)
        return opened, first

    with django_db_blocker.unblock():
        opened, first = async_to_sync(scenario)()
    assert opened["type"] == "websocket.accept"
    assert first == {"type": "websocket.send", "text": early}
