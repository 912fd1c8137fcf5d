"""Rotating an API token: a new secret with the same name and scopes, the old one dead at once."""

import json
import re

from tenants import audit, services
from tenants.models import ApiToken, AuditEvent
from tests.helpers import bearer

SECRET_RE = re.compile(r"mpt_[A-Za-z0-9_\-]{20,}")


def _issue(acme, name="exporter", scopes=("read", "ingest")):
    return services.create_token(
        tenant=acme, name=name, scopes=list(scopes), actor=audit.Actor.system("test")
    )


def test_rotating_on_the_page_shows_a_new_secret_once_and_kills_the_old_one(client_for, acme):
    old = _issue(acme)
    admin = client_for("acme", "admin")

    response = admin.post(f"/tokens/{old.token.public_id}/rotate/")

    # Post/redirect/get: a portal page shows the new secret, once.
    assert response.status_code == 302 and response["Location"] == "/tokens/issued/"
    page = admin.get(response["Location"])
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert "application/json" not in page["Content-Type"]
    shown = set(SECRET_RE.findall(page.content.decode()))
    assert len(shown) == 1 and old.secret not in shown
    new_secret = shown.pop()
    live = ApiToken.objects.get(tenant=acme, name="exporter", revoked_at__isnull=True)
    assert live.scopes == ["ingest", "read"]
    assert client_for("acme").get("/api/v1/dashboards/", **bearer(new_secret)).status_code == 200
    assert client_for("acme").get("/api/v1/dashboards/", **bearer(old.secret)).status_code == 401
    actions = list(
        AuditEvent.objects.filter(tenant=acme, action__startswith="token.")
        .order_by("-seq")
        .values_list("action", flat=True)[:3]
    )
    assert actions == ["token.rotated", "token.revoked", "token.created"]
    reloaded = admin.get("/tokens/issued/")
    assert reloaded.status_code == 302 and reloaded["Location"] == "/tokens/"
    assert new_secret not in admin.get("/tokens/").content.decode()


def test_a_reload_after_rotating_changes_nothing_more(client_for, acme):
    old = _issue(acme)
    admin = client_for("acme", "admin")
    first = admin.post(f"/tokens/{old.token.public_id}/rotate/")
    tokens_before = ApiToken.objects.filter(tenant=acme).count()

    again = admin.post(f"/tokens/{old.token.public_id}/rotate/")

    assert first["Location"] == "/tokens/issued/"
    assert again.status_code == 302 and again["Location"] == "/tokens/"
    assert ApiToken.objects.filter(tenant=acme).count() == tokens_before
    assert "is revoked" in admin.get("/tokens/").content.decode()


def test_rotating_through_the_api_returns_the_new_secret(client_for, acme):
    old = _issue(acme, name="ci", scopes=["write"])
    response = client_for("acme", "admin").post(
        f"/api/v1/tokens/{old.token.public_id}/rotate/", content_type="application/json"
    )
    assert response.status_code == 201, response.content
    body = json.loads(response.content)
    assert body["name"] == "ci" and body["scopes"] == ["write"]
    assert SECRET_RE.fullmatch(body["secret"]) and body["secret"] != old.secret


def test_no_one_rotates_another_tenants_token_or_with_a_token(client_for, acme, globex):
    theirs = services.create_token(
        tenant=globex, name="theirs", scopes=["read"], actor=audit.Actor.system("test")
    )
    mine = _issue(acme, scopes=["read", "write"])

    cross = client_for("acme", "admin").post(f"/tokens/{theirs.token.public_id}/rotate/")
    by_token = client_for("acme").post(
        f"/api/v1/tokens/{mine.token.public_id}/rotate/", **bearer(mine.secret)
    )
    by_operator = client_for("acme", "operator").post(f"/tokens/{mine.token.public_id}/rotate/")

    assert cross.status_code == 404
    assert by_token.status_code == 403
    assert by_operator.status_code == 403
    assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is None
    assert ApiToken.objects.get(pk=mine.token.pk).revoked_at is None
