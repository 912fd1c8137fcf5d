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
