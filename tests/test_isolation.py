"""Tenant isolation: acme and globex share primary keys, never data.

Each seeded tenant has a Dashboard with primary key 1 in its own schema. A member, a token, a
WebSocket, a cache entry or a background task of one tenant must never reach the other's rows,
whichever way it asks: pages, the API (session or token), presence, the cache, Celery.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_tenants.cache import make_key
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.factories import ApiTokenFactory, DashboardFactory, MembershipFactory
from tests.helpers import (
    bearer,
    client_on,
    committed_writes,
    host_of,
    messages_until,
    messages_within,
    send_json,
    stored_viewer_ids,
    viewer_ids,
    wait_for_message,
)
from tests.websockets_client import InProcessSocket, open_presence, websocket_scope

# Both tenants' seeded dashboard has this primary key, each in its own schema.
SHARED_PK = 1
TASK_TIMEOUT = 30
# A deliberate idle period, not a wait for something to happen: what is tested is that a
# connection with nothing to say survives a whole blocking read of the channel layer (5 seconds),
# so the test has to stay idle for longer than that, and only a duration can show it.
IDLE_WINDOW = 8.0


# --- Helpers: tenants, dashboards, members -------------------------------------------------------


def tenant_named(slug: str):
    from tenants.models import Tenant

    return Tenant.objects.get(schema_name=slug)


def dashboard_of(tenant, pk: int = SHARED_PK):
    from dashboards.models import Dashboard

    with tenant_context(tenant):
        return Dashboard.objects.get(pk=pk)


def dashboard_ids(tenant) -> set[str]:
    from dashboards.models import Dashboard

    with tenant_context(tenant):
        return {str(pk) for pk in Dashboard.objects.values_list("public_id", flat=True)}


def member_emails(tenant) -> set[str]:
    from tenants.models import Membership

    return set(Membership.objects.filter(tenant=tenant).values_list("user__email", flat=True))


@pytest.fixture(scope="module", autouse=True)
def on_the_test_database(django_db_setup) -> None:
    """Some tests here commit; never let them do that to a database that is not the test one."""
    name = connection.settings_dict["NAME"]
    if not name.startswith("test_"):
        pytest.fail(f"refusing to run against database {name!r}: test databases were not set up")


@pytest.fixture
def committed(django_db_blocker) -> Iterator[None]:
    """Database access outside any test transaction: every write here is committed at once."""
    with committed_writes(django_db_blocker):
        yield


# --- Helpers: the API --------------------------------------------------------------------------


def result_ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def issue_token(tenant, scopes: list[str]) -> str:
    _, secret = ApiTokenFactory(tenant=tenant, scopes=scopes)
    return secret


# --- 1. Pages ----------------------------------------------------------------------------------


def test_an_acme_session_is_forbidden_on_every_globex_page(member_client, acme, globex):
    client = member_client(acme, "admin")
    globex_dashboard = dashboard_of(globex).public_id
    for path in ("/", "/dashboards/", f"/dashboards/{globex_dashboard}/", "/members/"):
        response = client.get(path, HTTP_HOST=host_of("globex"))
        assert response.status_code == 403, path
        assert str(globex_dashboard).encode() not in response.content


def test_the_dashboard_list_shows_only_the_tenants_own_dashboards(member_client, acme, globex):
    secret = DashboardFactory(tenant=globex, title="Globex merger plans")
    response = member_client(acme, "executive").get("/dashboards/")
    assert response.status_code == 200
    listed = {str(d.public_id) for d in response.context["dashboards"]}
    assert listed == dashboard_ids(acme)
    assert str(dashboard_of(acme).public_id) in listed
    assert b"Globex merger plans" not in response.content
    for globex_id in (secret.public_id, dashboard_of(globex).public_id):
        assert str(globex_id).encode() not in response.content


def test_a_globex_dashboard_id_is_not_found_on_acmes_host(member_client, acme, globex):
    client = member_client(acme, "admin")
    assert client.get(f"/dashboards/{dashboard_of(acme).public_id}/").status_code == 200
    response = client.get(f"/dashboards/{dashboard_of(globex).public_id}/")
    assert response.status_code == 404


# --- 2. API with a session ---------------------------------------------------------------------


def test_an_acme_session_is_forbidden_on_globex_api(member_client, acme, globex):
    client = member_client(acme, "admin")
    for path in ("/api/v1/dashboards/", "/api/v1/members/", "/api/v1/audit-events/"):
        response = client.get(path, HTTP_HOST=host_of("globex"))
        assert response.status_code == 403, path


def test_the_dashboard_api_lists_only_the_sessions_tenant(member_client, acme, globex):
    acme_rows = result_ids(member_client(acme, "operator").get("/api/v1/dashboards/"))
    globex_rows = result_ids(member_client(globex, "operator").get("/api/v1/dashboards/"))
    assert acme_rows == dashboard_ids(acme)
    assert str(dashboard_of(acme).public_id) in acme_rows
    assert globex_rows == dashboard_ids(globex)
    assert not acme_rows & globex_rows


def test_patching_a_globex_dashboard_through_acme_is_not_found(member_client, acme, globex):
    target = dashboard_of(globex)
    response = send_json(
        member_client(acme, "operator"),
        "patch",
        f"/api/v1/dashboards/{target.public_id}/",
        {"title": "Taken over"},
    )
    assert response.status_code == 404
    after = dashboard_of(globex)
    assert (after.title, after.updated_at) == (target.title, target.updated_at)
    assert dashboard_of(acme).title != "Taken over"


# --- 3. API with a token -----------------------------------------------------------------------


def test_an_acme_token_is_unauthenticated_on_globexs_host(acme, globex):
    secret = issue_token(acme, ["read", "write"])
    client = client_on("globex")
    for path in ("/api/v1/dashboards/", "/api/v1/members/", "/api/v1/audit-events/"):
        response = client.get(path, **bearer(secret))
        assert response.status_code == 401, path
        assert str(dashboard_of(globex).public_id).encode() not in response.content
    response = client.patch(
        f"/api/v1/dashboards/{dashboard_of(globex).public_id}/",
        data={"title": "Taken over"},
        content_type="application/json",
        **bearer(secret),
    )
    assert response.status_code == 401
    assert dashboard_of(globex).title != "Taken over"


def test_an_acme_token_sees_only_acmes_dashboards(acme, globex):
    secret = issue_token(acme, ["read"])
    rows = result_ids(client_on("acme").get("/api/v1/dashboards/", **bearer(secret)))
    assert rows == dashboard_ids(acme)
    assert str(dashboard_of(globex).public_id) not in rows


def test_an_acme_token_cannot_reach_a_globex_dashboard_by_id(acme, globex):
    secret = issue_token(acme, ["read", "write"])
    client = client_on("acme")
    target = dashboard_of(globex)
    path = f"/api/v1/dashboards/{target.public_id}/"
    assert client.get(path, **bearer(secret)).status_code == 404
    response = client.patch(
        path, data={"title": "Taken over"}, content_type="application/json", **bearer(secret)
    )
    assert response.status_code == 404
    assert dashboard_of(globex).title == target.title


def test_a_write_token_creates_dashboards_only_in_its_own_schema(acme, globex):
    secret = issue_token(acme, ["read", "write"])
    globex_before = dashboard_ids(globex)
    response = client_on("acme").post(
        "/api/v1/dashboards/",
        data={"title": "Capacity"},
        content_type="application/json",
        **bearer(secret),
    )
    assert response.status_code == 201, response.content
    assert response.json()["id"] in dashboard_ids(acme)
    assert dashboard_ids(globex) == globex_before


def test_a_read_only_token_cannot_create_a_dashboard(acme):
    secret = issue_token(acme, ["read"])
    before = dashboard_ids(acme)
    response = client_on("acme").post(
        "/api/v1/dashboards/",
        data={"title": "Not allowed"},
        content_type="application/json",
        **bearer(secret),
    )
    assert response.status_code == 403
    assert dashboard_ids(acme) == before


def test_a_revoked_token_is_unauthenticated(acme):
    from tenants import audit, services

    token, secret = ApiTokenFactory(tenant=acme, scopes=["read"])
    client = client_on("acme")
    assert client.get("/api/v1/dashboards/", **bearer(secret)).status_code == 200
    services.revoke_token(
        tenant=acme, token_id=token.public_id, actor=audit.Actor.system("isolation tests")
    )
    assert client.get("/api/v1/dashboards/", **bearer(secret)).status_code == 401


def test_a_token_on_the_public_host_reaches_no_api(acme):
    secret = issue_token(acme, ["read", "write"])
    client = client_on(None)
    for path in ("/api/v1/dashboards/", "/api/v1/members/"):
        response = client.get(path, **bearer(secret))
        # The public site has no API at all: the URL does not exist there.
        assert response.status_code == 404, path
        assert str(dashboard_of(acme).public_id).encode() not in response.content


def test_a_token_lists_only_its_own_tenants_members(acme, globex):
    secret = issue_token(acme, ["read"])
    response = client_on("acme").get("/api/v1/members/", **bearer(secret))
    assert response.status_code == 200
    emails = {row["email"] for row in response.json()["results"]}
    assert emails == member_emails(acme)
    assert not emails & member_emails(globex)


def test_a_token_lists_only_its_own_tenants_audit_events(acme, globex):
    from tenants.models import AuditEvent

    secret = issue_token(acme, ["read"])
    rows = result_ids(client_on("acme").get("/api/v1/audit-events/", **bearer(secret)))
    globex_events = {
        str(pk)
        for pk in AuditEvent.objects.filter(tenant=globex).values_list("public_id", flat=True)
    }
    assert rows
    assert globex_events
    assert not rows & globex_events


# --- 4. WebSocket presence ---------------------------------------------------------------------
# The seeded members, on purpose: a presence entry can outlive its socket by a moment, and these
# tests check that each tenant's entries name its current members only, so the people must stay.


def user_id(email: str, django_db_blocker) -> str:
    from django.contrib.auth import get_user_model

    with django_db_blocker.unblock():
        return str(get_user_model().objects.get(email=email).pk)


def member_ids(slug: str, django_db_blocker) -> set[str]:
    from tenants.models import Membership

    with django_db_blocker.unblock():
        ids = Membership.objects.filter(tenant__schema_name=slug).values_list("user_id", flat=True)
        return {str(pk) for pk in ids}


def presence_of(server: str, slug: str, cookie: str):
    """A member's WebSocket to a tenant's presence channel."""
    return open_presence(server, host_of(slug), cookie)


def refusal_status(server: str, host: str, cookie: str | None = None) -> int:
    """The HTTP status with which the server refuses the WebSocket handshake."""
    with pytest.raises(InvalidStatus) as refused, open_presence(server, host, cookie):
        pass
    return refused.value.response.status_code


def wait_for_presence(ws: ClientConnection, viewer_id: str) -> dict:
    return wait_for_message(
        ws, lambda m: viewer_id in viewer_ids([m]), f"presence update listing {viewer_id}"
    )


def test_a_member_sees_themself_in_their_tenants_presence(
    live_server_url, session_cookie, django_db_blocker
):
    email = "operator@acme.example"
    me = user_id(email, django_db_blocker)
    with presence_of(live_server_url, "acme", session_cookie(email)) as ws:
        message = wait_for_presence(ws, me)
    mine = next(v for v in message["viewers"] if v["id"] == me)
    assert mine["role"] == "operator"
    assert {v["id"] for v in message["viewers"]} <= member_ids("acme", django_db_blocker)


def test_a_quiet_presence_connection_stays_open(live_server_url, session_cookie, django_db_blocker):
    email = "executive@acme.example"
    me = user_id(email, django_db_blocker)
    with presence_of(live_server_url, "acme", session_cookie(email)) as ws:
        wait_for_presence(ws, me)
        try:
            # Stay idle for longer than one blocking read of the channel layer (5 s): the
            # behaviour under test is that the socket outlives it, which takes that long to show.
            messages_within(ws, IDLE_WINDOW)
            ws.send(json.dumps({"type": "ping"}))
            wait_for_message(ws, lambda m: m == {"type": "pong"}, "pong")
        except ConnectionClosed as closed:
            pytest.fail(f"the server dropped a quiet presence connection: {closed!r}")


def test_a_globex_member_cannot_open_acmes_presence(live_server_url, session_cookie):
    cookie = session_cookie("admin@globex.example")
    assert refusal_status(live_server_url, host_of("acme"), cookie) == 403


@pytest.mark.parametrize("host", ["initech.localhost", "localhost"])
def test_presence_is_refused_on_a_host_that_is_no_tenant(live_server_url, session_cookie, host):
    cookie = session_cookie("admin@acme.example")
    assert refusal_status(live_server_url, host, cookie) == 403


def test_presence_is_refused_to_anonymous_visitors(live_server_url):
    assert refusal_status(live_server_url, host_of("acme")) == 403


def test_acme_presence_is_never_delivered_to_globex(
    live_server_url, session_cookie, django_db_blocker
):
    acme_email, globex_email, globex_peer = (
        "operator@acme.example",
        "operator@globex.example",
        "executive@globex.example",
    )
    acme_id, globex_id, peer_id = (
        user_id(e, django_db_blocker) for e in (acme_email, globex_email, globex_peer)
    )
    acme_members = member_ids("acme", django_db_blocker)
    globex_members = member_ids("globex", django_db_blocker)
    with presence_of(live_server_url, "globex", session_cookie(globex_email)) as gx:
        wait_for_presence(gx, globex_id)
        with presence_of(live_server_url, "acme", session_cookie(acme_email)) as ac:
            # Acme's own socket gets the update: the broadcast happened.
            assert globex_id not in viewer_ids([wait_for_presence(ac, acme_id)])

            # A globex colleague joins after that broadcast. Messages on one socket arrive in
            # order, so anything about acme leaking to the globex socket would arrive before the
            # colleague's presence update: read everything up to and including it.
            with presence_of(live_server_url, "globex", session_cookie(globex_peer)):
                heard = messages_until(
                    gx,
                    lambda m: peer_id in viewer_ids([m]),
                    f"presence update listing {peer_id}",
                )
                assert {peer_id, globex_id} <= viewer_ids(heard[-1:])
                assert not viewer_ids(heard) & acme_members, heard
                assert viewer_ids(heard) <= globex_members, heard

                # Redis keeps one presence hash per tenant, each naming only its own members.
                stored = {slug: stored_viewer_ids(slug) for slug in ("acme", "globex")}
            assert acme_id in stored["acme"] and stored["acme"] <= acme_members
            assert {globex_id, peer_id} <= stored["globex"] and stored["globex"] <= globex_members


def in_process_presence(slug: str | None, cookie: str | None) -> InProcessSocket:
    """/ws/presence/ of the ASGI app in this process, opened from a page of `slug`'s host."""
    from portal.asgi import application

    return InProcessSocket(application, websocket_scope(host_of(slug), cookie=cookie))


def test_the_in_process_asgi_app_keeps_presence_within_the_tenant(
    session_cookie, django_db_blocker
):
    from tenants.realtime.consumers import CLOSE_FORBIDDEN

    acme_email = "security@acme.example"
    acme_id = user_id(acme_email, django_db_blocker)
    acme_cookie = session_cookie(acme_email)
    globex_cookie = session_cookie("security@globex.example")

    async def scenario() -> dict[str, dict]:
        member = in_process_presence("acme", acme_cookie)
        outcomes = {"member": await member.open()}
        if outcomes["member"]["type"] == "websocket.accept":
            outcomes["presence"] = await member.receive()
        await member.hang_up(seconds=10)
        for name, (slug, cookie) in {
            "stranger": ("acme", globex_cookie),
            "anonymous": ("acme", None),
            "unknown": ("initech", acme_cookie),
            "public": (None, acme_cookie),
        }.items():
            refused = in_process_presence(slug, cookie)
            outcomes[name] = await refused.open()
            await refused.hang_up(seconds=10)
        return outcomes

    with django_db_blocker.unblock():
        outcomes = async_to_sync(scenario)()
    assert outcomes["member"]["type"] == "websocket.accept"
    message = json.loads(outcomes["presence"]["text"])
    assert message["type"] == "presence"
    assert acme_id in viewer_ids([message])
    # The consumer refuses people who are not members of the host's tenant.
    for name in ("stranger", "anonymous"):
        assert outcomes[name] == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}, name
    # A host that is no tenant is refused before any consumer runs.
    for name in ("unknown", "public"):
        assert outcomes[name]["type"] == "websocket.close", name


# --- 5. Cache ----------------------------------------------------------------------------------

SUMMARY_KEY = "tenant-summary"


@pytest.fixture
def clean_summaries(acme, globex) -> Iterator[None]:
    """No tenant-summary entry for either tenant before or after the test."""

    def clear():
        for tenant in (acme, globex):
            with tenant_context(tenant):
                cache.delete(SUMMARY_KEY)

    clear()
    yield
    clear()


def summary_keys() -> set[bytes]:
    """The raw Redis keys of every schema's cached summary."""
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return set(client.scan_iter(match=f"*:{prefix}:*:{SUMMARY_KEY}"))
    finally:
        client.close()


@pytest.mark.parametrize("first, second", [("acme", "globex"), ("globex", "acme")])
def test_a_cache_entry_of_one_tenant_is_invisible_to_the_other(clean_summaries, first, second):
    writer, reader = tenant_named(first), tenant_named(second)
    with tenant_context(writer):
        cache.set(SUMMARY_KEY, {"tenant": first}, timeout=60)
    with tenant_context(reader):
        assert cache.get(SUMMARY_KEY) is None
        cache.set(SUMMARY_KEY, {"tenant": second}, timeout=60)
    with tenant_context(writer):
        assert cache.get(SUMMARY_KEY) == {"tenant": first}
    with tenant_context(reader):
        assert cache.get(SUMMARY_KEY) == {"tenant": second}


def test_cache_keys_carry_the_schema(clean_summaries, acme, globex):
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    raw = {}
    for tenant in (acme, globex):
        with tenant_context(tenant):
            raw[tenant.schema_name] = make_key(SUMMARY_KEY, prefix, 1)
            assert cache.make_key(SUMMARY_KEY) == raw[tenant.schema_name]
            cache.set(SUMMARY_KEY, tenant.schema_name, timeout=60)
    assert raw["acme"] != raw["globex"]
    assert raw["acme"].startswith("acme:") and raw["globex"].startswith("globex:")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert client.exists(raw["acme"]) and client.exists(raw["globex"])
    finally:
        client.close()


# --- 6. Celery ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sender, other", [("acme", "globex"), ("globex", "acme")])
def test_a_task_changes_only_the_senders_row_with_the_shared_id(
    celery_worker, committed, sender, other
):
    from dashboards.models import Dashboard
    from tests.celery_probe import retitle_dashboard

    sending, untouched = tenant_named(sender), tenant_named(other)
    original = dashboard_of(sending).title
    other_before = dashboard_of(untouched).title
    suffix = f" ({uuid.uuid4().hex[:8]})"
    try:
        with tenant_context(sending):
            result = retitle_dashboard.delay(SHARED_PK, suffix)
        outcome = result.get(timeout=TASK_TIMEOUT)
        assert outcome == {"schema": sender, "title": original + suffix}
        assert dashboard_of(sending).title == original + suffix
        assert dashboard_of(untouched).title == other_before
    finally:
        with tenant_context(sending):
            Dashboard.objects.filter(pk=SHARED_PK).update(title=original)


def test_a_summary_refresh_sent_by_globex_is_cached_for_globex_only(
    celery_worker, clean_summaries, acme, globex
):
    from tenants.summary import compute_summary
    from tenants.tasks import refresh_tenant_summary

    with tenant_context(globex):
        result = refresh_tenant_summary.delay()
    summary = result.get(timeout=TASK_TIMEOUT)
    expected = compute_summary(globex)
    assert summary["tenant"] == "globex"
    for count in ("members", "active_tokens", "audit_events"):
        assert summary[count] == expected[count], count
    assert summary["members"] == len(member_emails(globex))
    with tenant_context(globex):
        assert cache.get(SUMMARY_KEY) == summary
    with tenant_context(acme):
        assert cache.get(SUMMARY_KEY) is None


def test_a_summary_refresh_sent_from_the_public_schema_fails(celery_worker, clean_summaries):
    from tenants.tasks import refresh_tenant_summary

    before = summary_keys()
    with schema_context(get_public_schema_name()):
        result = refresh_tenant_summary.delay()
        result.get(timeout=TASK_TIMEOUT, propagate=False)
    assert result.failed()
    assert isinstance(result.result, RuntimeError)
    assert "tenant's context" in str(result.result)
    # The failed task cached no summary for any schema, the public one or a tenant's (acme's and
    # globex's were cleared, so they count as new too).
    assert not summary_keys() - before


def test_a_member_removed_while_connected_loses_presence_at_the_next_ping(
    live_server_url, session_cookie, committed
):
    membership = MembershipFactory(tenant=tenant_named("acme"), role="executive")
    person = membership.user
    try:
        with presence_of(live_server_url, "acme", session_cookie(person.email)) as ws:
            wait_for_presence(ws, str(person.pk))
            membership.delete()
            ws.send(json.dumps({"type": "ping"}))
            with pytest.raises(ConnectionClosed) as closed:
                wait_for_message(ws, lambda m: m == {"type": "pong"}, "pong")
            assert closed.value.rcvd.code == 4403
    finally:
        person.delete()
