"""Live connections: refused at once, resolved like pages, and closed within a second when access
goes.

Most tests run against the served app (uvicorn, real Redis channel layer) in a tenant whose slug
has the full 63 characters, so every group name is as long as it gets. The tests that need to see
an app instance end, or a consumer that no route serves, drive the ASGI app in this process.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.urls import path
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from portal.scoping import GROUP_NAME_MAX, member_group, tenant_group, tenant_wide_group
from tenants import audit, lifecycle, services
from tenants.realtime.base import TenantConsumer
from tenants.realtime.consumers import CLOSE_FORBIDDEN
from tenants.realtime.middleware import TenantFromHostMiddleware
from tenants.roles import Perm, Role
from tests.conftest import BASE_DIR, host_of, wait_for
from tests.helpers import stored_viewer_ids, wait_for_message
from tests.websockets_client import (
    InProcessSocket,
    close_code_within,
    cookie_of,
    create_session,
    delete_sessions,
    open_socket,
    websocket_scope,
)

ACTOR = audit.Actor.system("realtime tests")
# Access that goes must close the socket within a second; the margin covers reading the close.
REVOKED_WITHIN = 1.0
MARGIN = 0.25
# A refused or abandoned app instance must be gone this soon.
ENDS_WITHIN = 1.0
# A server with nothing left open stops this soon after SIGTERM (uvicorn waits for app instances).
SHUTDOWN_WITHIN = 5.0
# The longest slug a tenant can have: one full DNS label.
LONG_SLUG = f"live-{uuid.uuid4().hex}".ljust(63, "x")
PROBE_TOPIC = f"probe.{uuid.uuid4()}"


# --- The tenant and its people -------------------------------------------------------------------


@dataclass
class Person:
    email: str
    id: str
    cookie: str


@pytest.fixture(scope="module")
def long_tenant(django_db_setup, django_db_blocker):
    """A provisioned (committed) tenant with a 63-character slug and an admin."""
    from tenants.accounts.users import get_or_create_user
    from tenants.models import Membership
    from tenants.provisioning import provision_tenant

    assert len(LONG_SLUG) == 63
    with django_db_blocker.unblock():
        tenant = provision_tenant(
            slug=LONG_SLUG, name="Long Slug Ltd", admin_email=None, actor=ACTOR
        )
        # Made through the ORM: a new member through the services would be sent an invitation.
        admin = get_or_create_user(f"admin@{LONG_SLUG}.example")
        Membership.objects.create(tenant=tenant, user=admin, role=Role.ADMIN)
    return tenant


@pytest.fixture
def people(long_tenant, django_db_blocker) -> Iterator[Callable[..., Person]]:
    """`people(role)`: a new person, a member of the long tenant with that role, signed in.

    `tenants=` names further tenants (by slug) they are a member of with the same role. Everyone
    made here, their memberships and sessions are deleted afterwards.
    """
    from tenants.accounts.users import get_or_create_user
    from tenants.models import Membership, Tenant

    made, stores = [], []

    def make(role: str, *, tenants: tuple[str, ...] = ()) -> Person:
        email = f"{role}-{uuid.uuid4().hex[:8]}@{LONG_SLUG}.example"
        with django_db_blocker.unblock():
            user = get_or_create_user(email)
            made.append(user)
            for tenant in [long_tenant, *Tenant.objects.filter(schema_name__in=tenants)]:
                Membership.objects.create(tenant=tenant, user=user, role=role)
        stores.append(create_session(email, django_db_blocker))
        return Person(email=email, id=str(user.pk), cookie=cookie_of(stores[-1]))

    yield make
    delete_sessions(stores, django_db_blocker)
    with django_db_blocker.unblock():
        for user in made:
            user.delete()


@pytest.fixture
def admin(long_tenant, django_db_blocker) -> Iterator[Person]:
    """The long tenant's admin, signed in."""
    email = f"admin@{LONG_SLUG}.example"
    store = create_session(email, django_db_blocker)
    with django_db_blocker.unblock():
        pk = get_user_model().objects.get(email=email).pk
    yield Person(email=email, id=str(pk), cookie=cookie_of(store))
    delete_sessions([store], django_db_blocker)


def membership_id(tenant, person: Person):
    from tenants.models import Membership

    return Membership.objects.get(tenant=tenant, user_id=person.id).public_id


# --- Reading sockets -----------------------------------------------------------------------------


def viewers_in(message: dict) -> dict[str, str]:
    """Viewer id -> role of a presence message ({} for any other message)."""
    if message.get("type") != "presence":
        return {}
    return {v["id"]: v["role"] for v in message["viewers"]}


def presence_lists(ws: ClientConnection, *ids: str, absent: tuple[str, ...] = ()) -> dict:
    """The first presence update listing every one of `ids` and none of `absent`."""
    return wait_for_message(
        ws,
        lambda m: (seen := viewers_in(m)) and set(ids) <= set(seen) and not set(absent) & set(seen),
        f"presence listing {ids} without {absent}",
    )


def live_presence(server: str, person: Person, slug: str = LONG_SLUG):
    return open_socket(server, host_of(slug), "/ws/presence/", person.cookie)


def refused_status(server: str, host: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as refused, open_socket(server, host, **kwargs):
        pass
    return refused.value.response.status_code


# --- Group names ---------------------------------------------------------------------------------


def test_group_names_of_a_63_character_schema_stay_within_channels_limit(long_tenant):
    schema = long_tenant.schema_name
    layer = get_channel_layer()
    names = [
        tenant_group(schema, "presence"),
        tenant_wide_group(schema),
        member_group(schema, 2**63),
        member_group(schema, uuid.uuid4()),
        tenant_group(schema, PROBE_TOPIC),
        tenant_group(schema, f"dashboard.{uuid.uuid4()}.panel.{uuid.uuid4()}"),
        tenant_group(schema, "x" * 500),
    ]
    for name in names:
        assert len(name) <= GROUP_NAME_MAX < 100, name
        assert name.startswith(f"tenant.{schema}."), name
        assert layer.require_valid_group_name(name)
    assert len(set(names)) == len(names)
    # Shortened names stay apart even when all they differ in is cut off.
    first, second = (tenant_group(schema, f"{'t' * 90}.{uuid.uuid4()}") for _ in range(2))
    assert first != second
    # Short names are left as they read.
    assert tenant_group("acme", "presence") == "tenant.acme.presence"
    assert member_group("acme", 7) == "tenant.acme.member.7"


# --- Refusals end at once (in process, where the app instance can be watched) -------------------


class AuditProbe(TenantConsumer):
    """A live view that needs VIEW_AUDIT, which role changes can take away."""

    permission = Perm.VIEW_AUDIT

    def groups_for(self) -> list[str]:
        return [tenant_group(self.tenant.schema_name, PROBE_TOPIC)]

    async def on_connect(self) -> None:
        schema = await self.in_tenant(lambda: connection.schema_name)
        await self.send_json({"type": "hello", "schema": schema})

    async def on_access_changed(self) -> None:
        await self.send_json({"type": "access", "role": self.access.role})

    async def receive_json(self, content, **kwargs) -> None:
        await self.send_json({"type": "echo", "content": content})

    async def probe_message(self, event: dict) -> None:
        await self.send_json({"type": "probe", "text": event["text"]})


def probe_application():
    """The served WebSocket stack, routing to the probe."""
    return TenantFromHostMiddleware(
        AuthMiddlewareStack(URLRouter([path("ws/probe/", AuditProbe.as_asgi())]))
    )


def run(scenario, django_db_blocker):
    """Run the async `scenario` with database access (its ORM work commits for real)."""
    with django_db_blocker.unblock():
        return async_to_sync(scenario)()


REFUSALS = {
    "unknown host": ("initech.localhost", "/ws/presence/", {}),
    "the public site": ("localhost", "/ws/presence/", {}),
    "a host not allowed": ("acme.example.org", "/ws/presence/", {}),
    "an upper-case host": ("ACME.localhost", "/ws/presence/", {}),
    "a sibling tenant's page": (
        "acme.localhost",
        "/ws/presence/",
        {"origin": "http://globex.localhost"},
    ),
    "no Origin": ("acme.localhost", "/ws/presence/", {"origin": None}),
    "a path no consumer serves": ("acme.localhost", "/ws/nothing/", {}),
    "an anonymous visitor": ("acme.localhost", "/ws/presence/", {"cookie": None}),
    "a member of another tenant": (
        "acme.localhost",
        "/ws/presence/",
        {"who": "admin@globex.example"},
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_socket_ends_its_app_instance_at_once(case, django_db_setup, django_db_blocker):
    from portal.asgi import application

    host, ws_path, options = REFUSALS[case]
    options = dict(options)
    who = options.pop("who", "admin@acme.example")
    stores = [] if "cookie" in options else [create_session(who, django_db_blocker)]
    headers = {"cookie": cookie_of(stores[0]) if stores else None, **options}

    async def scenario() -> dict:
        socket_ = InProcessSocket(application, websocket_scope(host, ws_path, **headers))
        answer = await socket_.open()
        # No disconnect from the client: the refusal alone must end the instance.
        await socket_.ended_within(ENDS_WITHIN)
        return answer

    try:
        answer = run(scenario, django_db_blocker)
    finally:
        delete_sessions(stores, django_db_blocker)
    assert answer == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


def test_an_accepted_socket_ends_its_app_instance_when_the_client_leaves(
    django_db_setup, django_db_blocker
):
    from portal.asgi import application

    store = create_session("operator@acme.example", django_db_blocker)

    async def scenario() -> tuple[dict, dict]:
        scope = websocket_scope("acme.localhost", cookie=cookie_of(store))
        socket_ = InProcessSocket(application, scope)
        answer = await socket_.open()
        first = await socket_.receive()
        await socket_.hang_up(ENDS_WITHIN)
        return answer, first

    try:
        answer, first = run(scenario, django_db_blocker)
    finally:
        delete_sessions([store], django_db_blocker)
    assert answer["type"] == "websocket.accept"
    assert json.loads(first["text"])["type"] == "presence"


def test_malformed_messages_get_an_error_and_keep_the_socket(
    long_tenant, people, django_db_blocker
):
    security = people(Role.SECURITY)

    async def scenario() -> list[dict]:
        scope = websocket_scope(host_of(LONG_SLUG), "/ws/probe/", cookie=security.cookie)
        socket_ = InProcessSocket(probe_application(), scope)
        assert (await socket_.open())["type"] == "websocket.accept"
        replies = [json.loads((await socket_.receive())["text"])]
        for text in ("not json", '{"type": "ping"}'):
            await socket_.send_text(text)
            replies.append(json.loads((await socket_.receive())["text"]))
        await socket_.hang_up(ENDS_WITHIN)
        return replies

    hello, error, echo = run(scenario, django_db_blocker)
    # ORM work of a consumer runs inside its tenant's schema.
    assert hello == {"type": "hello", "schema": long_tenant.schema_name}
    assert error == {"type": "error", "error": "Send JSON text messages."}
    assert echo == {"type": "echo", "content": {"type": "ping"}}


def test_a_role_change_closes_the_socket_only_when_the_permission_goes(
    long_tenant, people, django_db_blocker
):
    """VIEW_AUDIT survives security -> admin and is lost with admin -> executive."""
    member = people(Role.SECURITY)
    with django_db_blocker.unblock():
        membership = membership_id(long_tenant, member)
    change_role = sync_to_async(services.change_role)

    async def scenario() -> dict:
        scope = websocket_scope(host_of(LONG_SLUG), "/ws/probe/", cookie=member.cookie)
        socket_ = InProcessSocket(probe_application(), scope)
        outcome = {"answer": await socket_.open(), "hello": await socket_.receive()}

        # Group names with a UUID in a 63-character tenant work on the real channel layer.
        group = tenant_group(long_tenant.schema_name, PROBE_TOPIC)
        await get_channel_layer().group_send(group, {"type": "probe.message", "text": "hi"})
        outcome["probe"] = await socket_.receive()

        await change_role(tenant=long_tenant, membership_id=membership, role="admin", actor=ACTOR)
        outcome["kept"] = await socket_.receive(timeout=REVOKED_WITHIN + MARGIN)

        started = time.monotonic()
        await change_role(
            tenant=long_tenant, membership_id=membership, role="executive", actor=ACTOR
        )
        outcome["lost"] = await socket_.receive(timeout=REVOKED_WITHIN + MARGIN)
        outcome["seconds"] = time.monotonic() - started
        # Closing ends the consumer: it does not wait for the client to answer the close.
        await socket_.ended_within(ENDS_WITHIN)
        return outcome

    outcome = run(scenario, django_db_blocker)
    assert outcome["answer"]["type"] == "websocket.accept"
    assert json.loads(outcome["hello"]["text"])["type"] == "hello"
    assert json.loads(outcome["probe"]["text"]) == {"type": "probe", "text": "hi"}
    assert json.loads(outcome["kept"]["text"]) == {"type": "access", "role": "admin"}
    assert outcome["lost"] == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert outcome["seconds"] < REVOKED_WITHIN


# --- The served app: host resolution ------------------------------------------------------------

# (how the Host is spelled, does it name acme's page)
HOST_SPELLINGS = [
    ("acme.localhost", True),
    ("www.acme.localhost", True),
    ("ACME.localhost", False),
    ("acme.LOCALHOST", False),
    ("acme.localhost.", False),
    ("acme.example.org", False),
]


@pytest.mark.parametrize(("host", "names_acme"), HOST_SPELLINGS)
def test_the_socket_resolves_the_host_exactly_as_the_page_does(
    live_server_url, django_db_blocker, host, names_acme
):
    store = create_session("operator@acme.example", django_db_blocker)
    cookie = cookie_of(store)
    port = live_server_url.rsplit(":", 1)[1]
    try:
        page = httpx.get(
            f"http://{live_server_url}/",
            headers={"Host": f"{host}:{port}", "Cookie": cookie},
            timeout=10,
        )
        try:
            with open_socket(live_server_url, host, cookie=cookie) as ws:
                opened = json.loads(ws.recv(timeout=10))["type"] == "presence"
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
            opened = False
    finally:
        delete_sessions([store], django_db_blocker)
    # What HTTP does: acme's home for acme's host (www. dropped), 404 for any other spelling:
    # the domain lookup is exact, and a host that is not allowed at all is no tenant either.
    assert page.status_code == (200 if names_acme else 404)
    if names_acme:
        assert b"Acme Corporation" in page.content
    assert opened is names_acme


# --- The served app: revocation, end to end in the 63-character tenant --------------------------


def test_a_member_of_a_63_character_tenant_sees_presence(live_server_url, admin, people):
    member = people(Role.OPERATOR)
    with live_presence(live_server_url, admin) as colleague:
        presence_lists(colleague, admin.id)
        with live_presence(live_server_url, member) as ws:
            seen = viewers_in(presence_lists(ws, admin.id, member.id))
    assert seen == {admin.id: "admin", member.id: "operator"}


def test_a_removed_member_is_closed_within_a_second_and_leaves_presence(
    live_server_url, long_tenant, admin, people, django_db_blocker
):
    member = people(Role.OPERATOR)
    with live_presence(live_server_url, admin) as colleague:
        with live_presence(live_server_url, member) as ws:
            presence_lists(ws, member.id, admin.id)
            presence_lists(colleague, admin.id, member.id)
            assert member.id in stored_viewer_ids(long_tenant.schema_name)

            started = time.monotonic()
            with django_db_blocker.unblock():
                services.remove_member(
                    tenant=long_tenant,
                    membership_id=membership_id(long_tenant, member),
                    actor=ACTOR,
                )
            code = close_code_within(ws, REVOKED_WITHIN + MARGIN)
            elapsed = time.monotonic() - started

        # The others hear at once that the removed member has gone.
        presence_lists(colleague, admin.id, absent=(member.id,))
        assert member.id not in stored_viewer_ids(long_tenant.schema_name)
    assert code == CLOSE_FORBIDDEN
    assert elapsed < REVOKED_WITHIN + MARGIN
    # And they cannot come back.
    assert refused_status(live_server_url, host_of(LONG_SLUG), cookie=member.cookie) == 403


def test_a_role_change_that_keeps_the_permission_keeps_the_socket_open(
    live_server_url, long_tenant, admin, people, django_db_blocker
):
    member = people(Role.OPERATOR)
    with (
        live_presence(live_server_url, admin) as colleague,
        live_presence(live_server_url, member) as ws,
    ):
        presence_lists(colleague, admin.id, member.id)
        with django_db_blocker.unblock():
            services.change_role(
                tenant=long_tenant,
                membership_id=membership_id(long_tenant, member),
                role=Role.SECURITY,
                actor=ACTOR,
            )
        # Everyone sees the new role, the member included...
        updated = wait_for_message(
            colleague,
            lambda m: viewers_in(m).get(member.id) == "security",
            "presence with the new role",
        )
        wait_for_message(ws, lambda m: viewers_in(m).get(member.id) == "security", "new role")
        # ...and the member's socket still answers.
        ws.send(json.dumps({"type": "ping"}))
        assert wait_for_message(ws, lambda m: m.get("type") == "pong", "pong") == {"type": "pong"}
    assert viewers_in(updated)[admin.id] == "admin"


def test_deactivating_a_person_closes_their_sockets_in_every_tenant(
    live_server_url, people, django_db_blocker
):
    member = people(Role.EXECUTIVE, tenants=("acme",))
    with (
        live_presence(live_server_url, member) as long_ws,
        live_presence(live_server_url, member, "acme") as acme_ws,
    ):
        presence_lists(long_ws, member.id)
        presence_lists(acme_ws, member.id)
        started = time.monotonic()
        with django_db_blocker.unblock(), transaction.atomic():
            user = get_user_model().objects.get(pk=member.id)
            user.is_active = False
            user.save(update_fields=["is_active"])
            lifecycle.send_on_commit(lifecycle.user_deactivated, type(user), user=user)
        codes = [close_code_within(ws, REVOKED_WITHIN + MARGIN) for ws in (long_ws, acme_ws)]
        elapsed = time.monotonic() - started
    assert codes == [CLOSE_FORBIDDEN, CLOSE_FORBIDDEN]
    assert elapsed < REVOKED_WITHIN + MARGIN


def test_deactivating_the_tenant_closes_every_socket_to_it(
    live_server_url, long_tenant, admin, people, django_db_blocker
):
    from tenants.models import Tenant

    member = people(Role.OPERATOR)

    def set_active(active: bool) -> None:
        with django_db_blocker.unblock(), transaction.atomic():
            Tenant.objects.filter(pk=long_tenant.pk).update(is_active=active)
            if not active:
                lifecycle.send_on_commit(lifecycle.tenant_deactivated, Tenant, tenant=long_tenant)

    try:
        with (
            live_presence(live_server_url, admin) as admin_ws,
            live_presence(live_server_url, member) as member_ws,
        ):
            presence_lists(admin_ws, admin.id, member.id)
            started = time.monotonic()
            set_active(False)
            codes = [close_code_within(ws, REVOKED_WITHIN + MARGIN) for ws in (admin_ws, member_ws)]
            elapsed = time.monotonic() - started
        refused = refused_status(live_server_url, host_of(LONG_SLUG), cookie=admin.cookie)
    finally:
        set_active(True)
    assert codes == [CLOSE_FORBIDDEN, CLOSE_FORBIDDEN]
    assert elapsed < REVOKED_WITHIN + MARGIN
    assert refused == 403


# --- The served app stops promptly ----------------------------------------------------------------


@pytest.fixture
def own_server(process_env, tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A served app of this test's own, so that the test can stop it: ("127.0.0.1:port", proc)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "portal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--log-level",
        "warning",
    ]
    env = dict(process_env, PORTAL_PORT=str(port), DEBUG="false")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited:\n{log.read_text()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=30, message="the server to listen")
        yield f"127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refused_sockets_do_not_hold_up_the_servers_shutdown(own_server, admin, people):
    server, proc = own_server
    stranger = people(Role.OPERATOR)
    host = host_of(LONG_SLUG)
    statuses = [
        refused_status(server, "initech.localhost"),
        refused_status(server, host, origin=None),
        refused_status(server, host, origin="http://acme.localhost"),
        refused_status(server, host),
        refused_status(server, host, path="/ws/nothing/", cookie=admin.cookie),
        refused_status(server, host_of("acme"), cookie=stranger.cookie),
    ]
    with open_socket(server, host, cookie=admin.cookie) as ws:
        presence_lists(ws, admin.id)
    assert statuses == [403] * len(statuses)

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server was still running {SHUTDOWN_WITHIN}s after SIGTERM")
    assert time.monotonic() - started < SHUTDOWN_WITHIN
