"""The audit trail: every write is recorded (who, what, before/after), one chain per tenant."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Max
from django_tenants.utils import schema_exists, tenant_context

from tenants import audit, services
from tenants.models import AuditEvent, Membership, Tenant
from tenants.provisioning import provision_tenant
from tests.conftest import submit_token_form


def _json(client, method: str, path: str, data: dict, **extra):
    return getattr(client, method)(path, json.dumps(data), content_type="application/json", **extra)


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
    created = _json(admin, "post", "/api/v1/tokens/", {"name": "exporter", "scopes": ["ingest"]})
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
    response = _json(
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
    created = _json(client, "post", "/api/v1/dashboards/", {"title": "Latency", "description": ""})
    assert created.status_code == 201
    path = f"/api/v1/dashboards/{created.json()['id']}/"

    changed = _json(client, "patch", path, {"title": "Latency p95"})
    assert changed.status_code == 200 and changed.json()["title"] == "Latency p95"
    event = _latest(acme, "dashboard.updated")
    assert event.actor_label == "operator@acme.example"
    assert event.object_id == created.json()["id"]
    assert event.before == {"title": "Latency", "description": ""}
    assert event.after == {"title": "Latency p95", "description": ""}

    seq = _last_seq(acme)
    unchanged = _json(client, "patch", path, {"title": "Latency p95", "description": ""})
    assert unchanged.status_code == 200 and unchanged.json()["title"] == "Latency p95"
    assert _last_seq(acme) == seq  # nothing changed: nothing recorded


def test_a_token_is_recorded_as_a_token(client_for, acme):
    issued = services.create_token(
        tenant=acme, name="grafana sync", scopes=["write"], actor=audit.Actor.system("audit test")
    )
    response = _json(
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
    acme_before = _assert_contiguous(acme)
    globex_before = _assert_contiguous(globex)
    platform_before = _assert_contiguous(None)

    admin = client_for("acme", "admin")
    statuses = [
        admin.post("/members/", {"email": "chain1@example.com", "role": "executive"}).status_code,
        admin.post("/members/", {"email": "chain2@example.com", "role": "operator"}).status_code,
        _json(admin, "post", "/api/v1/tokens/", {"name": "chain", "scopes": ["read"]}).status_code,
        _json(admin, "post", "/api/v1/dashboards/", {"title": "Chain"}).status_code,
        client_for("globex", "admin")
        .post("/members/", {"email": "g@example.com", "role": "executive"})
        .status_code,
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
    response = client_for("acme", "security").get("/audit/")
    assert response.status_code == 200
    html = response.content.decode()
    assert marker not in html
    assert "globex.example" not in html
    assert "acme.example" in html
    assert "member.added" in html


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
    before = AuditEvent.objects.count()
    client = client_for("acme", "admin")
    event = AuditEvent.objects.filter(tenant=acme).first()
    posted = _json(client, "post", "/api/v1/audit-events/", {"action": "forged"})
    patched = _json(client, "patch", f"/api/v1/audit-events/{event.public_id}/", {"action": "x"})
    deleted = client.delete(f"/api/v1/audit-events/{event.public_id}/")
    assert {posted.status_code, patched.status_code, deleted.status_code} <= {403, 405}
    assert AuditEvent.objects.count() == before
    event.refresh_from_db()
    assert event.action != "x"


# ---- failed writes -----------------------------------------------------------------------------


def test_a_failed_write_records_nothing(client_for, acme):
    before = AuditEvent.objects.count()
    admin = client_for("acme", "admin")
    me = _member(acme, "admin@acme.example")

    responses = [
        admin.post("/members/", {"email": "x@example.com", "role": "root"}),
        admin.post("/members/", {"email": "operator@acme.example", "role": "admin"}),
        _json(admin, "post", "/api/v1/members/", {"email": "not-an-email", "role": "admin"}),
        submit_token_form(admin, {"name": "bad", "scopes": ["root"]}),
        _json(admin, "post", "/api/v1/tokens/", {"name": "", "scopes": ["read"]}),
        admin.post("/dashboards/", {"title": "   "}),
        _json(admin, "post", "/api/v1/dashboards/", {"title": ""}),
        _json(admin, "patch", f"/api/v1/members/{me.public_id}/", {"role": "operator"}),
    ]

    assert [r.status_code for r in responses] == [400] * len(responses)
    assert AuditEvent.objects.count() == before


def test_a_refused_last_admin_change_on_the_page_records_nothing(client_for, acme):
    before = AuditEvent.objects.count()
    me = _member(acme, "admin@acme.example")
    client_for("acme", "admin").post(f"/members/{me.public_id}/remove/")
    assert AuditEvent.objects.count() == before
