"""The audit trail: every write and sign-in is recorded (who, what, before/after), one chain per
tenant plus the platform's; declared actions only, secrets redacted; read page by page, filtered,
and exported as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Max
from django.http import StreamingHttpResponse
from django.test import Client, RequestFactory
from django.test.client import AsyncClientHandler
from django.utils import timezone
from django_tenants.utils import schema_exists, tenant_context

from tenants import audit, services
from tenants.actions import AuditAction
from tenants.models import AuditEvent, Membership, Tenant
from tenants.pages.audit import EXPORT_COLUMNS, PAGE_SIZE
from tenants.provisioning import provision_tenant
from tests.conftest import BASE_DIR, PASSWORD, host_of, submit_token_form
from tests.helpers import send_json


def _latest(tenant, action: str) -> AuditEvent:
    event = AuditEvent.objects.filter(tenant=tenant, action=action).order_by("-seq").first()
    assert event is not None, f"no {action} event in {tenant}"
    return event


def _last_seq(tenant) -> int:
    return AuditEvent.objects.filter(tenant=tenant).aggregate(m=Max("seq"))["m"] or 0


def _user_id(email: str) -> str:
    return str(get_user_model().objects.get(email=email).pk)


def _member(tenant, email: str) -> Membership:
    return Membership.objects.select_related("user").get(tenant=tenant, user__email=email)


def _assert_by_acme_admin(event: AuditEvent) -> None:
    assert event.actor_kind == AuditEvent.ActorKind.USER
    assert event.actor_label == "admin@acme.example"
    assert event.actor_id == _user_id("admin@acme.example")


# ---- members and tokens ------------------------------------------------------------------------


def test_adding_a_member_is_recorded(client_for, acme):
    response = client_for("acme", "admin").post(
        "/members/", {"email": "audited@example.com", "role": "operator"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/members/"
    membership = _member(acme, "audited@example.com")

    event = _latest(acme, "member.added")
    _assert_by_acme_admin(event)
    assert event.object_type == "tenants.membership"
    assert event.object_id == str(membership.public_id)
    assert event.before is None
    assert event.after == {"email": "audited@example.com", "role": "operator"}
    assert event.remote_addr == "127.0.0.1"


def test_changing_a_role_is_recorded_with_before_and_after(client_for, acme):
    operator = _member(acme, "operator@acme.example")
    client_for("acme", "admin").post(f"/members/{operator.public_id}/role/", {"role": "security"})

    event = _latest(acme, "member.role_changed")
    _assert_by_acme_admin(event)
    assert event.object_id == str(operator.public_id)
    assert event.before == {"email": "operator@acme.example", "role": "operator"}
    assert event.after == {"email": "operator@acme.example", "role": "security"}


def test_removing_a_member_is_recorded(client_for, acme):
    executive = _member(acme, "executive@acme.example")
    response = client_for("acme", "admin").delete(f"/api/v1/members/{executive.public_id}/")
    assert response.status_code == 204

    event = _latest(acme, "member.removed")
    _assert_by_acme_admin(event)
    assert event.object_id == str(executive.public_id)
    assert event.before == {"email": "executive@acme.example", "role": "executive"}
    assert event.after is None


def test_creating_and_revoking_a_token_is_recorded(client_for, acme):
    admin = client_for("acme", "admin")
    created = send_json(
        admin, "post", "/api/v1/tokens/", {"name": "exporter", "scopes": ["ingest"]}
    )
    assert created.status_code == 201
    body = created.json()

    event = _latest(acme, "token.created")
    _assert_by_acme_admin(event)
    assert event.object_type == "tenants.apitoken"
    assert event.object_id == body["id"]
    assert event.after["name"] == "exporter"
    assert event.after["scopes"] == ["ingest"]
    assert event.after["prefix"] == body["prefix"]
    assert body["secret"] not in json.dumps(event.after)

    assert admin.delete(f"/api/v1/tokens/{body['id']}/").status_code == 200
    revoked = _latest(acme, "token.revoked")
    _assert_by_acme_admin(revoked)
    assert revoked.object_id == body["id"]
    assert revoked.before == {"revoked_at": None}
    assert revoked.after["revoked_at"]
    assert revoked.seq == event.seq + 1


def test_revoking_twice_records_one_event(client_for, acme):
    issued = services.create_token(
        tenant=acme, name="twice", scopes=["read"], actor=audit.Actor.system("audit test")
    )
    admin = client_for("acme", "admin")
    admin.post(f"/tokens/{issued.token.public_id}/revoke/")
    admin.post(f"/tokens/{issued.token.public_id}/revoke/")
    assert (
        AuditEvent.objects.filter(
            tenant=acme, action="token.revoked", object_id=str(issued.token.public_id)
        ).count()
        == 1
    )


# ---- dashboards --------------------------------------------------------------------------------


def test_creating_a_dashboard_on_the_page_is_recorded_in_the_tenants_chain(client_for, acme):
    globex_seq = _last_seq(Tenant.objects.get(schema_name="globex"))
    response = client_for("acme", "operator").post(
        "/dashboards/", {"title": "Checkout latency", "description": "p95"}
    )
    assert response.status_code == 302

    event = _latest(acme, "dashboard.created")
    assert event.actor_kind == AuditEvent.ActorKind.USER
    assert event.actor_label == "operator@acme.example"
    assert event.object_type == "dashboards.dashboard"
    assert event.after == {"title": "Checkout latency", "description": "p95"}
    with tenant_context(acme):
        from dashboards.models import Dashboard

        assert event.object_id == str(Dashboard.objects.get(title="Checkout latency").public_id)
    assert _last_seq(Tenant.objects.get(schema_name="globex")) == globex_seq


def test_creating_a_dashboard_through_the_api_is_recorded(client_for, acme):
    response = send_json(
        client_for("acme", "admin"), "post", "/api/v1/dashboards/", {"title": "Revenue"}
    )
    assert response.status_code == 201

    event = _latest(acme, "dashboard.created")
    _assert_by_acme_admin(event)
    assert event.object_id == response.json()["id"]
    assert event.after["title"] == "Revenue"


def test_updating_a_dashboard_records_before_and_after_and_an_unchanged_update_nothing(
    client_for, acme
):
    client = client_for("acme", "operator")
    created = send_json(
        client, "post", "/api/v1/dashboards/", {"title": "Latency", "description": ""}
    )
    assert created.status_code == 201
    path = f"/api/v1/dashboards/{created.json()['id']}/"

    changed = send_json(client, "patch", path, {"title": "Latency p95"})
    assert changed.status_code == 200 and changed.json()["title"] == "Latency p95"
    event = _latest(acme, "dashboard.updated")
    assert event.actor_label == "operator@acme.example"
    assert event.object_id == created.json()["id"]
    assert event.before == {"title": "Latency", "description": ""}
    assert event.after == {"title": "Latency p95", "description": ""}

    seq = _last_seq(acme)
    unchanged = send_json(client, "patch", path, {"title": "Latency p95", "description": ""})
    assert unchanged.status_code == 200 and unchanged.json()["title"] == "Latency p95"
    assert _last_seq(acme) == seq  # nothing changed: nothing recorded


def test_a_token_is_recorded_as_a_token(client_for, acme):
    issued = services.create_token(
        tenant=acme, name="grafana sync", scopes=["write"], actor=audit.Actor.system("audit test")
    )
    response = send_json(
        client_for("acme"),
        "post",
        "/api/v1/dashboards/",
        {"title": "Made by a script"},
        HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
    )
    assert response.status_code == 201

    event = _latest(acme, "dashboard.created")
    assert event.actor_kind == AuditEvent.ActorKind.TOKEN
    assert event.actor_id == str(issued.token.public_id)
    assert "grafana sync" in event.actor_label
    assert issued.secret not in event.actor_label
    assert event.after["title"] == "Made by a script"


# ---- provisioning ------------------------------------------------------------------------------


def test_provisioning_is_recorded_in_the_platform_chain_and_the_new_tenants_chain(db):
    connection.set_schema_to_public()  # as on the public site, where tenants are provisioned
    platform_seq = _last_seq(None)
    tenant = provision_tenant(
        slug="audited-co",
        name="Audited Co",
        admin_email="boss@audited.example",
        actor=audit.Actor.system("audit test"),
    )
    # The slug names the host; its schema has the hyphen as an underscore.
    assert (tenant.slug, tenant.schema_name) == ("audited-co", "audited_co")
    assert schema_exists("audited_co")

    platform = AuditEvent.objects.get(tenant=None, seq=platform_seq + 1)
    assert platform.action == "tenant.provisioned"
    assert platform.actor_kind == AuditEvent.ActorKind.SYSTEM
    assert platform.object_type == "tenants.tenant"
    assert platform.object_id == str(tenant.public_id)
    assert platform.after == {
        "slug": "audited-co",
        "name": "Audited Co",
        "domain": "audited-co.localhost",
    }

    chain = list(AuditEvent.objects.filter(tenant=tenant).order_by("seq"))
    assert [(e.seq, e.action) for e in chain] == [(1, "tenant.provisioned"), (2, "member.added")]
    assert chain[0].after == platform.after
    assert chain[1].after == {"email": "boss@audited.example", "role": "admin"}


# ---- chains ------------------------------------------------------------------------------------


def _assert_contiguous(tenant) -> list[int]:
    seqs = list(
        AuditEvent.objects.filter(tenant=tenant).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, len(seqs) + 1)), f"chain of {tenant} has gaps: {seqs}"
    return seqs


def test_sequence_numbers_are_contiguous_per_tenant_and_independent(client_for, acme, globex):
    # Signing the clients in is recorded on the platform chain: done before counting.
    admin = client_for("acme", "admin")
    globex_admin = client_for("globex", "admin")
    acme_before = _assert_contiguous(acme)
    globex_before = _assert_contiguous(globex)
    platform_before = _assert_contiguous(None)

    statuses = [
        admin.post("/members/", {"email": "chain1@example.com", "role": "executive"}).status_code,
        admin.post("/members/", {"email": "chain2@example.com", "role": "operator"}).status_code,
        send_json(
            admin, "post", "/api/v1/tokens/", {"name": "chain", "scopes": ["read"]}
        ).status_code,
        send_json(admin, "post", "/api/v1/dashboards/", {"title": "Chain"}).status_code,
        globex_admin.post("/members/", {"email": "g@example.com", "role": "executive"}).status_code,
    ]
    assert statuses == [302, 302, 201, 201, 302]

    acme_after = _assert_contiguous(acme)
    globex_after = _assert_contiguous(globex)
    assert len(acme_after) == len(acme_before) + 4
    assert len(globex_after) == len(globex_before) + 1
    # Writes to tenants never touch the platform chain.
    assert _assert_contiguous(None) == platform_before


def test_the_seeded_tenants_each_start_their_chain_at_one(acme, globex):
    for tenant in (acme, globex):
        first = AuditEvent.objects.filter(tenant=tenant).order_by("seq").first()
        assert first.seq == 1
        assert first.action == "tenant.provisioned"


# ---- reading the trail -------------------------------------------------------------------------


def _globex_marker(globex) -> str:
    marker = "Globex-only merger plan"
    with tenant_context(globex):
        from dashboards.services import create_dashboard

        create_dashboard(title=marker, actor=audit.Actor.system("audit test"))
    assert AuditEvent.objects.filter(tenant=globex, object_repr=marker).exists()
    return marker


def test_the_audit_page_shows_only_the_tenants_own_events(client_for, acme, globex):
    marker = _globex_marker(globex)
    security = client_for("acme", "security")
    response = security.get("/audit/")
    assert response.status_code == 200
    assert marker not in response.content.decode()

    members = security.get("/audit/?action=member.").content.decode()
    assert "acme.example" in members and "member.added" in members
    assert "globex.example" not in members
    searched = security.get("/audit/?text=Globex-only").content.decode()
    assert "No event matches these filters." in searched and marker not in searched


def test_the_audit_page_says_when_the_chain_was_last_verified_and_how(client_for, acme):
    from compliance.models import ChainVerification

    security = client_for("acme", "security")
    with tenant_context(acme):
        ChainVerification.objects.all().delete()
    assert "not verified yet" in security.get("/audit/").content.decode()

    with tenant_context(acme):
        ChainVerification.objects.create(checked_at=timezone.now(), ok=True, rows=42, last_seq=42)
    page = security.get("/audit/").content.decode()
    assert "Hash chain verified at" in page and "42 events intact" in page

    with tenant_context(acme):
        ChainVerification.objects.create(
            checked_at=timezone.now(), ok=False, rows=6, bad_seq=7, problem="broken link"
        )
    page = security.get("/audit/").content.decode()
    assert "verification FAILED" in page and "event 7: broken link" in page


def test_the_audit_api_returns_only_the_tenants_own_events(client_for, acme, globex):
    marker = _globex_marker(globex)
    response = client_for("acme", "admin").get("/api/v1/audit-events/?limit=1000")
    assert response.status_code == 200
    body = response.json()
    assert marker not in response.content.decode()
    ids = {row["id"] for row in body["results"]}
    acme_ids = {
        str(i) for i in AuditEvent.objects.filter(tenant=acme).values_list("public_id", flat=True)
    }
    assert ids == acme_ids
    assert body["count"] == len(acme_ids)
    seqs = [row["seq"] for row in body["results"]]
    assert seqs == sorted(seqs, reverse=True)  # newest first


def test_another_tenants_event_is_a_404_in_the_api(client_for, globex):
    event = AuditEvent.objects.filter(tenant=globex).first()
    response = client_for("acme", "admin").get(f"/api/v1/audit-events/{event.public_id}/")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("role", "expected"),
    [("executive", 403), ("operator", 403), ("security", 200), ("admin", 200)],
)
def test_only_admin_and_security_read_the_trail(client_for, role, expected):
    client = client_for("acme", role)
    assert client.get("/audit/").status_code == expected
    assert client.get("/api/v1/audit-events/").status_code == expected


def test_the_audit_trail_has_no_write_api(client_for, acme):
    client = client_for("acme", "admin")
    before = AuditEvent.objects.count()
    event = AuditEvent.objects.filter(tenant=acme).first()
    posted = send_json(client, "post", "/api/v1/audit-events/", {"action": "forged"})
    patched = send_json(
        client, "patch", f"/api/v1/audit-events/{event.public_id}/", {"action": "x"}
    )
    deleted = client.delete(f"/api/v1/audit-events/{event.public_id}/")
    assert {posted.status_code, patched.status_code, deleted.status_code} <= {403, 405}
    assert AuditEvent.objects.count() == before
    event.refresh_from_db()
    assert event.action != "x"


# ---- failed writes -----------------------------------------------------------------------------


def test_a_failed_write_records_nothing(client_for, acme):
    admin = client_for("acme", "admin")
    before = AuditEvent.objects.count()
    me = _member(acme, "admin@acme.example")

    responses = [
        admin.post("/members/", {"email": "x@example.com", "role": "root"}),
        admin.post("/members/", {"email": "operator@acme.example", "role": "admin"}),
        send_json(admin, "post", "/api/v1/members/", {"email": "not-an-email", "role": "admin"}),
        submit_token_form(admin, {"name": "bad", "scopes": ["root"]}),
        send_json(admin, "post", "/api/v1/tokens/", {"name": "", "scopes": ["read"]}),
        admin.post("/dashboards/", {"title": "   "}),
        send_json(admin, "post", "/api/v1/dashboards/", {"title": ""}),
        send_json(admin, "patch", f"/api/v1/members/{me.public_id}/", {"role": "operator"}),
    ]

    assert [r.status_code for r in responses] == [400] * len(responses)
    assert AuditEvent.objects.count() == before


def test_a_refused_last_admin_change_on_the_page_records_nothing(client_for, acme):
    admin = client_for("acme", "admin")
    before = AuditEvent.objects.count()
    me = _member(acme, "admin@acme.example")
    admin.post(f"/members/{me.public_id}/remove/")
    assert AuditEvent.objects.count() == before


# ---- sign-in -----------------------------------------------------------------------------------

CLIENT_IP = "203.0.113.77"
FAILURE_LIMIT = 5


def _chains_now(*tenants) -> dict:
    """The last seq of the platform chain and of each tenant's chain."""
    return {None: _last_seq(None), **{tenant: _last_seq(tenant) for tenant in tenants}}


def _since(marks: dict, tenant, action: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(tenant=tenant, seq__gt=marks[tenant]).order_by("seq")
    return list(events.filter(action=action) if action else events)


def _sign_in(slug: str | None, username: str, password: str) -> tuple[Client, object]:
    client = Client(HTTP_HOST=host_of(slug), REMOTE_ADDR=CLIENT_IP)
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def _everything_about(events: list[AuditEvent]) -> str:
    return json.dumps(
        [[e.actor_label, e.actor_id, e.object_repr, e.object_id, e.before, e.after] for e in events]
    )


def test_signing_in_on_a_tenant_host_is_recorded_on_the_platform_and_tenant_chains(acme, globex):
    marks = _chains_now(acme, globex)
    client, response = _sign_in("acme", "operator@acme.example", PASSWORD)
    assert response.status_code == 302
    operator_id = _user_id("operator@acme.example")

    for chain in (None, acme):
        [event] = _since(marks, chain, "auth.signed_in")
        assert event.actor_kind == AuditEvent.ActorKind.USER
        assert (event.actor_label, event.actor_id) == ("operator@acme.example", operator_id)
        assert (event.object_type, event.object_id) == ("auth.user", operator_id)
        assert event.remote_addr == CLIENT_IP
    assert _since(marks, globex) == []
    assert PASSWORD not in _everything_about(_since(marks, None) + _since(marks, acme))


def test_signing_in_on_the_public_site_is_recorded_on_the_platform_chain_only(acme, globex):
    marks = _chains_now(acme, globex)
    _, response = _sign_in(None, "security@acme.example", PASSWORD)
    assert response.status_code == 302

    [event] = _since(marks, None, "auth.signed_in")
    assert event.actor_label == "security@acme.example"
    assert _since(marks, acme) == [] and _since(marks, globex) == []


def test_signing_out_is_recorded_on_both_chains(client_for, acme):
    client = client_for("acme", "security")
    marks = _chains_now(acme)
    response = client.post("/accounts/logout/", REMOTE_ADDR=CLIENT_IP)
    assert response.status_code in (200, 302)

    for chain in (None, acme):
        [event] = _since(marks, chain, "auth.signed_out")
        assert event.actor_label == "security@acme.example"
        assert event.actor_id == _user_id("security@acme.example")
        assert event.remote_addr == CLIENT_IP


def test_a_failed_sign_in_is_recorded_under_the_typed_name_without_the_password(acme, globex):
    marks = _chains_now(acme, globex)
    _, response = _sign_in("acme", "Operator@Acme.example", "not-the-password-x1")
    assert response.status_code == 200  # the form again, with its error

    for chain in (None, acme):
        [event] = _since(marks, chain, "auth.sign_in_failed")
        assert event.actor_kind == AuditEvent.ActorKind.SYSTEM
        assert event.actor_label == "Operator@Acme.example"
        assert event.actor_id == ""
        assert event.remote_addr == CLIENT_IP
        assert event.after == {"reason": "credentials not accepted"}
    assert _since(marks, globex) == []
    assert "not-the-password-x1" not in _everything_about(_since(marks, None) + _since(marks, acme))


def test_a_failed_sign_in_with_a_huge_name_and_nul_is_recorded_cut_short(acme):
    typed = "evil\x00\u202e" + "x" * 3000
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=CLIENT_IP)
    request.tenant = acme
    marks = _chains_now(acme)

    assert authenticate(request, username=typed, password="secret-guess-1") is None

    # The name reaches no member of acme: the platform records it, acme's trail stays clear of
    # names that are not its people.
    assert _since(marks, acme, "auth.sign_in_failed") == []
    for chain in (None,):
        [event] = _since(marks, chain, "auth.sign_in_failed")
        assert len(event.actor_label) == audit.LABEL_MAX
        assert event.actor_label.startswith("evilxxx")  # NUL and the bidi override are gone
        assert event.actor_label.endswith("…")
        assert "\x00" not in event.object_repr and "secret-guess-1" not in _everything_about(
            [event]
        )


def test_a_non_member_signing_in_on_a_tenant_host_stays_out_of_that_tenants_trail(acme, globex):
    marks = _chains_now(acme, globex)
    _sign_in("acme", "admin@globex.example", "demo")
    _sign_in("acme", "nobody@elsewhere.example", "guess-guess-1")
    assert _since(marks, acme) == []
    assert {e.action for e in _since(marks, None)} >= {"auth.signed_in", "auth.sign_in_failed"}


def test_a_huge_name_with_nul_on_the_sign_in_page_is_no_server_error(acme):
    marks = _chains_now(acme)
    client, response = _sign_in("acme", "x\x00" + "y" * 3000, "whatever")
    assert response.status_code == 200  # the form again: refused before any account is looked up
    assert "_auth_user_id" not in client.session
    assert _since(marks, acme, "auth.signed_in") == []


def test_a_failed_sign_in_without_a_request_goes_to_the_platform_chain(acme):
    marks = _chains_now(acme)
    user_login_failed.send(
        sender=__name__, credentials={"username": "script@example.com", "password": "****"}
    )
    [event] = _since(marks, None, "auth.sign_in_failed")
    assert (event.actor_label, event.remote_addr) == ("script@example.com", None)
    assert _since(marks, acme) == []


def test_a_lockout_is_recorded_once_and_later_attempts_as_refused(acme):
    marks = _chains_now(acme)
    for attempt in range(FAILURE_LIMIT):
        _sign_in("acme", "executive@acme.example", f"wrong-{attempt}")

    for chain in (None, acme):
        [locked] = _since(marks, chain, "auth.locked_out")
        assert locked.actor_label == "executive@acme.example"
        assert locked.remote_addr == CLIENT_IP
        assert locked.after == {"failures": FAILURE_LIMIT}
        failed = _since(marks, chain, "auth.sign_in_failed")
        assert len(failed) == FAILURE_LIMIT

    # Even the right password is refused now: a failed sign-in, not a second lockout.
    marks = _chains_now(acme)
    _, response = _sign_in("acme", "executive@acme.example", PASSWORD)
    assert response.status_code == 429
    for chain in (None, acme):
        assert _since(marks, chain, "auth.locked_out") == []
        [refused] = _since(marks, chain, "auth.sign_in_failed")
        assert refused.after == {"reason": "locked out"}
        assert _since(marks, chain, "auth.signed_in") == []


# ---- declared actions --------------------------------------------------------------------------


def test_recording_an_undeclared_action_is_refused_and_writes_nothing(acme):
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="undeclared audit action 'member.teleported'"):
        audit.record(actor=audit.Actor.system("t"), action="member.teleported", tenant=acme)
    assert AuditEvent.objects.count() == before


def test_an_enum_member_is_recorded_as_its_value(acme):
    event = audit.record(
        actor=audit.Actor.system("t"), action=AuditAction.TOKEN_ROTATED, tenant=acme
    )
    event.refresh_from_db()
    assert event.action == "token.rotated"
    assert type(event.action) is str


def test_an_action_cannot_be_declared_twice_or_misnamed():
    class Clash(StrEnum):
        MEMBER_ADDED = "member.added"

    class Misnamed(StrEnum):
        SHOUTING = "Member Added"

    with pytest.raises(ImproperlyConfigured, match="already declared"):
        audit.register_actions(Clash)
    with pytest.raises(ImproperlyConfigured, match="no action name"):
        audit.register_actions(Misnamed)
    assert audit.register_actions(AuditAction) is AuditAction  # the same enum again is fine


_ASSIGNS_ACTION = re.compile(r"\baction\s*=")
_DOTTED_LITERAL = re.compile(r"""["']([a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*)["']""")


def test_every_action_the_code_records_is_declared():
    """A record() with an undeclared action fails at run time: find them all now, in every line
    that sets an `action` (`action="x.y"`, `action = "a.b" if ... else "c.d"`)."""
    used = {
        (literal, str(path.relative_to(BASE_DIR)))
        for app in ("tenants", "dashboards", "alerts", "compliance", "portal")
        for path in (BASE_DIR / app).rglob("*.py")
        if "migrations" not in path.parts
        for line in path.read_text().splitlines()
        if _ASSIGNS_ACTION.search(line)
        for literal in _DOTTED_LITERAL.findall(line)
    }
    assert "member.added" in {literal for literal, _ in used}  # the scan does find them
    declared = set(audit.declared_actions())
    assert sorted(item for item in used if item[0] not in declared) == []


# ---- redaction ---------------------------------------------------------------------------------


def test_secrets_are_redacted_from_before_and_after_at_any_depth(acme):
    event = audit.record(
        actor=audit.Actor.system("redaction test"),
        action="tenant.updated",
        tenant=acme,
        before={"password": "hunter2", "name": "Acme", "smtp-password": ""},
        after={
            "name": "Acme Corporation",
            "secret_hash": "abc123hash",
            "receivers": [
                {
                    "kind": "pagerduty",
                    "routing_key": "R0UT1NGKEY",
                    "webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                    "headers": {"Authorization": "Bearer sk-live-HEADER"},
                    "phone": "+15550001111",
                    "apiKey": "CAMELKEY",
                },
            ],
            "credentials": {"user": "svc", "pass": "NESTEDPASS"},
            "backend": "https://svc:URLPASS@prometheus.internal:9090/api",
            "note": "moved from smtp://mailer:NOTEPASS@mail.example/ yesterday",
        },
    )
    event.refresh_from_db()
    stored = json.dumps([event.before, event.after])
    for secret in (
        "hunter2",
        "abc123hash",
        "R0UT1NGKEY",
        "XXXXSECRET",
        "sk-live-HEADER",
        "+15550001111",
        "CAMELKEY",
        "NESTEDPASS",
        "URLPASS",
        "NOTEPASS",
    ):
        assert secret not in stored, secret
    assert event.before == {"password": "[redacted]", "name": "Acme", "smtp-password": ""}
    receiver = event.after["receivers"][0]
    assert receiver["kind"] == "pagerduty"
    assert receiver["webhook_url"] == "https://hooks.slack.com/[redacted]"
    assert receiver["headers"] == {"Authorization": "[redacted]"}
    assert event.after["credentials"] == "[redacted]"
    assert event.after["backend"] == "https://[redacted]@prometheus.internal:9090/api"
    assert event.after["note"] == "moved from smtp://[redacted]@mail.example/ yesterday"
    assert event.after["name"] == "Acme Corporation"


def test_an_app_can_declare_more_secret_field_names(acme):
    audit.register_secret_fields("pager_pin")
    audit.register_secret_fields("callback", url=True)
    event = audit.record(
        actor=audit.Actor.system("t"),
        action="tenant.updated",
        tenant=acme,
        after={"pager_pin": "4242", "callback": "https://cb.example/hook/SIGNED", "pin": "1"},
    )
    assert event.after == {
        "pager_pin": "[redacted]",
        "callback": "https://cb.example/[redacted]",
        "pin": "1",
    }


# ---- the trail page ----------------------------------------------------------------------------


def _record_many(tenant, label: str, count: int) -> None:
    for i in range(count):
        audit.record(
            actor=audit.Actor.system(label),
            action="tenant.updated",
            tenant=tenant,
            object_type="tenants.tenant",
            object_repr=f"{label} item {i:03d}",
        )


def _shown_items(html: str, label: str) -> list[str]:
    return re.findall(rf"{label} item (\d{{3}})", html)


def test_the_trail_is_paged_fifty_at_a_time_and_the_links_keep_the_filters(client_for, acme):
    _record_many(acme, "pager-check", PAGE_SIZE + 10)
    security = client_for("acme", "security")

    first = security.get("/audit/?actor=pager-check")
    html = first.content.decode()
    assert first.status_code == 200
    assert "page 1 of 2" in html
    assert _shown_items(html, "pager-check") == [f"{i:03d}" for i in range(59, 9, -1)]
    older = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    assert "actor=pager-check" in older and "page=2" in older

    second = security.get(f"/audit/{older}").content.decode()
    assert "page 2 of 2" in second
    assert _shown_items(second, "pager-check") == [f"{i:03d}" for i in range(9, -1, -1)]
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert "actor=pager-check" in newer and "page=1" in newer

    beyond = security.get("/audit/?actor=pager-check&page=99").content.decode()
    assert "page 2 of 2" in beyond


def _at(moment: datetime):
    return lambda: moment


def test_the_date_filters_take_whole_days_both_included(client_for, acme, monkeypatch):
    for moment, name in [
        (datetime(2021, 3, 1, 23, 59, 59, tzinfo=UTC), "first"),
        (datetime(2021, 3, 2, 0, 0, 0, tzinfo=UTC), "second"),
        (datetime(2021, 3, 2, 23, 59, 59, 999999, tzinfo=UTC), "third"),
        (datetime(2021, 3, 3, 0, 0, 0, tzinfo=UTC), "fourth"),
    ]:
        with monkeypatch.context() as patched:
            patched.setattr(audit.timezone, "now", _at(moment))
            audit.record(
                actor=audit.Actor.system("date-check"),
                action="tenant.updated",
                tenant=acme,
                object_type="tenants.tenant",
                object_repr=f"date-check {name}",
            )
    security = client_for("acme", "security")

    def shown(query: str) -> list[str]:
        response = security.get(f"/audit/?actor=date-check&{query}")
        assert response.status_code == 200
        return re.findall(r"date-check (first|second|third|fourth)", response.content.decode())

    assert shown("date_from=2021-03-02&date_to=2021-03-02") == ["third", "second"]
    assert shown("date_from=2021-03-02") == ["fourth", "third", "second"]
    assert shown("date_to=2021-03-01") == ["first"]
    assert shown("date_from=2021-03-01&date_to=2021-03-03") == [
        "fourth",
        "third",
        "second",
        "first",
    ]


def test_filters_that_match_nothing_say_so(client_for):
    security = client_for("acme", "security")
    html = security.get("/audit/?date_from=2001-01-01&date_to=2001-01-31").content.decode()
    assert "No event matches these filters." in html
    assert "Nothing recorded yet." not in html
    assert "0 events matching" in html


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("action=token%00", "Action", "Null characters are not allowed"),
        ("actor=%00", "Who", "Null characters are not allowed"),
        ("text=a%00b", "Object", "Null characters are not allowed"),
        ("actor=" + "a" * 101, "Who", "at most 100 characters"),
        ("text=line%0Abreak", "Object", "Control characters"),
        ("action=token.%07", "Action", "Control characters"),
        ("action=Token%20created", "Action", "lower-case letters"),
        ("date_from=2024-05-02&date_to=2024-05-01", "To (UTC)", "on or after the From date"),
        ("date_from=2024-13-01", "From (UTC)", "YYYY-MM-DD"),
        ("date_to=yesterday", "To (UTC)", "YYYY-MM-DD"),
        ("date_to=9999-12-31", "To (UTC)", "9999-12-30"),
        ("page=0", "Page", "greater than or equal to 1"),
        ("page=two", "Page", "whole number"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(client_for, query, field, reason):
    security = client_for("acme", "security")
    for path in ("/audit/", "/audit/export.csv"):
        response = security.get(f"{path}?{query}")
        assert response.status_code == 400, path
        html = response.content.decode()
        assert re.search(rf"{re.escape(field)}: [^<]*{re.escape(reason)}", html), html
        assert "\x00" not in html
        assert "<table" not in html  # nothing listed on a refused filter


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=token%00", "action"),
        ("actor=" + "a" * 101, "actor"),
        ("text=%00", "text"),
        ("date_from=2024-05-02&date_to=2024-05-01", "date_to"),
        ("date_from=not-a-date", "date_from"),
    ],
)
def test_a_bad_filter_in_the_api_is_a_400_naming_the_field(client_for, query, field):
    response = client_for("acme", "security").get(f"/api/v1/audit-events/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_long_values_are_folded_and_capped(client_for, acme):
    long_text = "L" * 5000
    audit.record(
        actor=audit.Actor.system("fold-check"),
        action="tenant.updated",
        tenant=acme,
        object_type="tenants.tenant",
        after={"description": long_text, "tags": {"team": "checkout"}, "short": "ok"},
    )
    html = client_for("acme", "security").get("/audit/?actor=fold-check").content.decode()
    assert '<div class="table-scroll">' in html
    folded = re.search(r"<details><summary>(L+…)</summary><pre>(L+)</pre></details>", html)
    assert folded, "a long value is not folded into <details>"
    assert len(folded.group(1)) <= 80 and folded.group(2) == long_text
    assert "<dd>ok</dd>" in html
    assert "{&quot;team&quot;: &quot;checkout&quot;}" in html


# ---- CSV export --------------------------------------------------------------------------------


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


def _export(client, query: str = "") -> tuple[StreamingHttpResponse, list[list[str]]]:
    response = client.get(f"/audit/export.csv{query}")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    return response, _rows(b"".join(response.streaming_content))


def test_the_export_is_a_streamed_csv_of_the_filtered_trail(client_for, acme):
    _record_many(acme, "export-check", 3)
    response, rows = _export(client_for("acme", "security"), "?actor=export-check&page=7")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-acme-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    assert not response.has_header("Content-Length")
    assert rows[0] == EXPORT_COLUMNS
    expected = list(audit.events_for(acme, actor="export-check"))
    assert [row[0] for row in rows[1:]] == [str(e.seq) for e in expected]
    assert [row[8] for row in rows[1:]] == [f"export-check item {i:03d}" for i in (2, 1, 0)]
    first = dict(zip(EXPORT_COLUMNS, rows[1], strict=True))
    assert first["action"] == "tenant.updated" and first["actor_kind"] == "system"
    assert datetime.fromisoformat(first["occurred_at"]).utcoffset() == timedelta(0)


def test_the_export_covers_the_whole_trail_not_one_page(client_for, acme):
    _record_many(acme, "bulk-check", PAGE_SIZE * 2 + 1)
    _, rows = _export(client_for("acme", "admin"), "?actor=bulk-check")
    assert len(rows) == 1 + PAGE_SIZE * 2 + 1


def test_the_export_neutralises_spreadsheet_formulas(client_for, acme):
    for label in ("=HYPERLINK(1)", "+cmd", "-2+3", "@SUM(A1)", "plain"):
        audit.record(
            actor=audit.Actor.system(label),
            action="tenant.updated",
            tenant=acme,
            object_type="tenants.tenant",
            object_repr=f"{label} formula-check",
            after={"value": "=1+1"},
        )
    _, rows = _export(client_for("acme", "security"), "?text=formula-check")
    labels = sorted(row[4] for row in rows[1:])
    assert labels == sorted(["'=HYPERLINK(1)", "'+cmd", "'-2+3", "'@SUM(A1)", "plain"])
    assert {row[8][0] for row in rows[1:]} <= {"'", "p"}
    assert all(json.loads(row[10]) == {"value": "=1+1"} for row in rows[1:])


def test_the_export_never_contains_another_tenants_events(client_for, acme, globex):
    marker = _globex_marker(globex)
    _, rows = _export(client_for("acme", "admin"))
    body = json.dumps(rows)
    assert marker not in body and "globex.example" not in body
    acme_seqs = sorted(
        AuditEvent.objects.filter(tenant=acme).values_list("seq", flat=True), reverse=True
    )
    assert [int(row[0]) for row in rows[1:]] == acme_seqs


@pytest.mark.parametrize(
    ("role", "expected"),
    [("executive", 403), ("operator", 403), ("security", 200), ("admin", 200)],
)
def test_only_admin_and_security_may_export(client_for, role, expected):
    assert client_for("acme", role).get("/audit/export.csv").status_code == expected


def test_the_export_is_refused_to_someone_signed_out(db):
    response = Client(HTTP_HOST=host_of("acme")).get("/audit/export.csv")
    assert response.status_code in (302, 403)
    assert not isinstance(response, StreamingHttpResponse)


def test_under_asgi_the_export_is_sent_piece_by_piece(client_for, acme):
    """An ASGI server sends an asynchronous body as it comes, but reads a synchronous one to its
    end first: the export is asynchronous under ASGI, in pieces of at most 500 rows."""
    _record_many(acme, "asgi-check", 1200)
    signed_in = client_for("acme", "security")
    cookie = (
        f"{settings.SESSION_COOKIE_NAME}={signed_in.cookies[settings.SESSION_COOKIE_NAME].value}"
    )
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/audit/export.csv",
        "query_string": b"actor=asgi-check",
        "headers": [(b"host", host_of("acme").encode()), (b"cookie", cookie.encode())],
        "client": [CLIENT_IP, 50000],
        "server": (host_of("acme"), 80),
    }
    response = async_to_sync(AsyncClientHandler(enforce_csrf_checks=False))(scope)
    assert response.status_code == 200
    assert response.is_async

    async def pieces() -> list[bytes]:
        return [piece async for piece in response.streaming_content]

    received = async_to_sync(pieces)()
    assert len(received) == 3  # header + 500 rows, 500 rows, 200 rows
    rows = _rows(b"".join(received))
    assert len(rows) == 1 + 1200
    assert rows[1][8] == "asgi-check item 1199" and rows[-1][8] == "asgi-check item 000"


def test_the_filter_form_reads_dates_as_iso_days():
    from tenants.audit_filters import AuditFilterForm

    form = AuditFilterForm({"date_from": "2024-02-29", "date_to": "2024-03-01", "action": "TOKEN."})
    assert form.is_valid(), form.errors
    assert form.validated_filters() == {
        "action": "token.",
        "actor": "",
        "text": "",
        "date_from": date(2024, 2, 29),
        "date_to": date(2024, 3, 1),
    }
