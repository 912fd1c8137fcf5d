"""Members and API tokens, through the pages and the API: invitations by e-mail, roles, secrets,
revocation."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from tenants import audit, services
from tenants.models import ApiToken, AuditEvent, Membership
from tests.conftest import psycopg_params, submit_token_form, wait_for

NEW_PASSWORD = "Correct-Horse-9-Battery!"
SECRET_RE = re.compile(r"mpt_[A-Za-z0-9_\-]{20,}")
INVITE_RE = re.compile(r"https?://[^\s<\"]+/accounts/reset/[^\s<\"]+/")


def _json(client: Client, method: str, path: str, data: dict | None = None, **extra):
    return getattr(client, method)(
        path, json.dumps(data or {}), content_type="application/json", **extra
    )


def _bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _member(tenant, email: str) -> Membership:
    return Membership.objects.select_related("user").get(tenant=tenant, user__email=email)


def _counts(tenant) -> tuple[int, int, int, int]:
    """Rows a failed write must leave alone."""
    return (
        get_user_model().objects.count(),
        Membership.objects.filter(tenant=tenant).count(),
        ApiToken.objects.filter(tenant=tenant).count(),
        AuditEvent.objects.count(),
    )


def _issue(tenant, scopes=("read",), **kwargs) -> services.IssuedToken:
    return services.create_token(
        tenant=tenant,
        name=kwargs.pop("name", "script"),
        scopes=list(scopes),
        actor=audit.Actor.system("members test"),
        **kwargs,
    )


# ---- inviting ----------------------------------------------------------------------------------


class Inviter:
    """`invite(email, role, api=False)`: acme's admin (`invite.admin`, one signed-in client)
    invites someone. The commit is simulated, so the queued invitation task runs; returns the
    response and the on-commit callbacks."""

    def __init__(self, admin: Client, capture) -> None:
        self.admin = admin
        self._capture = capture

    def __call__(self, email: str, role: str, *, api: bool = False):
        data = {"email": email, "role": role}
        with self._capture(execute=True) as callbacks:
            if api:
                response = _json(self.admin, "post", "/api/v1/members/", data)
            else:
                response = self.admin.post("/members/", data)
        return response, callbacks


@pytest.fixture
def invite(client_for, django_capture_on_commit_callbacks, eager_tasks) -> Inviter:
    return Inviter(client_for("acme", "admin"), django_capture_on_commit_callbacks)


def _acme_home() -> str:
    return f"{settings.PORTAL_SCHEME}://acme.{settings.PORTAL_BASE_DOMAIN}:{settings.PORTAL_PORT}/"


def test_inviting_a_new_colleague_creates_an_account_and_e_mails_them_a_set_password_link(
    acme, invite, mailoutbox
):
    email = "new.colleague@example.com"

    response, callbacks = invite(email, "operator")

    assert response.status_code == 302
    assert response["Location"] == "/members/"
    user = get_user_model().objects.get(email=email)
    assert not user.has_usable_password()
    assert _member(acme, email).role == "operator"
    assert len(callbacks) == 1  # the e-mail is queued once, when the membership is committed
    # The inviter is told the person was added, and never sees a set-password link.
    page = invite.admin.get("/members/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{email} added and told by e-mail." in html
    assert "/accounts/reset/" not in html
    # The link goes to the invitee's mailbox, and nowhere else.
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [email]
    assert mail.subject == "You have been added to Acme Corporation"
    assert "You have been given the role Operator in Acme Corporation." in mail.body
    assert f"The tenant: {_acme_home()}" in mail.body
    links = INVITE_RE.findall(mail.body)
    assert len(links) == 1, mail.body
    link = urlsplit(links[0])
    assert link.hostname == settings.PORTAL_BASE_DOMAIN  # the public site, not the tenant host


def test_the_e_mailed_link_works_once_on_the_public_host_and_the_person_can_sign_in(
    invite, mailoutbox
):
    email = "invitee@example.com"
    response, _ = invite(email, "security")
    assert response.status_code == 302
    assert [mail.to for mail in mailoutbox] == [[email]]
    link = urlsplit(INVITE_RE.findall(mailoutbox[0].body)[0])

    public = Client(HTTP_HOST=link.hostname)
    opened = public.get(link.path, follow=True)
    assert opened.status_code == 200
    assert b'name="new_password1"' in opened.content
    form_path = opened.redirect_chain[-1][0] if opened.redirect_chain else link.path
    done = public.post(form_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302, done.content[:500]
    assert done["Location"] == "/accounts/reset/done/"
    assert get_user_model().objects.get(email=email).check_password(NEW_PASSWORD)

    # The link is spent.
    reused = Client(HTTP_HOST=link.hostname).get(link.path, follow=True)
    assert b'name="new_password1"' not in reused.content
    assert b"invalid" in reused.content

    # The person signs in on the public site, and directly on the tenant's host.
    signed_in = Client(HTTP_HOST=link.hostname).post(
        "/accounts/login/", {"username": email, "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 302
    tenant_client = Client(HTTP_HOST="acme.localhost")
    assert (
        tenant_client.post(
            "/accounts/login/", {"username": email, "password": NEW_PASSWORD}
        ).status_code
        == 302
    )
    home = tenant_client.get("/")
    assert home.status_code == 200
    assert b"Security" in home.content


def test_inviting_an_existing_user_adds_the_membership_and_e_mails_no_set_password_link(
    acme, invite, mailoutbox
):
    email = "operator@globex.example"
    user = get_user_model().objects.get(email=email)
    password_hash = user.password

    response, _ = invite(email, "executive")

    assert response.status_code == 302
    assert response["Location"] == "/members/"
    assert _member(acme, email).role == "executive"
    user.refresh_from_db()
    assert user.password == password_hash
    assert get_user_model().objects.filter(email__iexact=email).count() == 1
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [email]
    assert "You have been given the role Executive in Acme Corporation." in mail.body
    assert f"The tenant: {_acme_home()}" in mail.body
    assert "/accounts/reset/" not in mail.body
    assert "password" not in mail.body.lower()


def test_inviting_through_the_api_creates_the_membership(client_for, acme):
    email = "api.invitee@example.com"
    response = _json(
        client_for("acme", "admin"),
        "post",
        "/api/v1/members/",
        {"email": email, "role": "security"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == email and body["role"] == "security"
    membership = _member(acme, email)
    assert str(membership.public_id) == body["id"]
    assert not membership.user.has_usable_password()


def test_inviting_a_new_person_through_the_api_returns_the_membership_and_mails_the_link(
    acme, invite, mailoutbox
):
    email = "api.newcomer@example.com"

    response, callbacks = invite(email, "operator", api=True)

    assert response.status_code == 201, response.content
    body = response.json()
    membership = _member(acme, email)
    assert body == {
        "id": str(membership.public_id),
        "email": email,
        "name": "",
        "role": "operator",
        "created_at": body["created_at"],
    }
    # The API caller never gets the link; the new account gets it by e-mail.
    assert "/accounts/reset/" not in response.content.decode()
    assert len(callbacks) == 1
    assert [mail.to for mail in mailoutbox] == [[email]]
    assert len(INVITE_RE.findall(mailoutbox[0].body)) == 1


@pytest.mark.parametrize("email", ["operator@acme.example", "OPERATOR@Acme.Example"])
def test_a_duplicate_invite_on_the_page_is_a_400_naming_email_and_writes_nothing(
    acme, invite, mailoutbox, email
):
    before = _counts(acme)
    response, callbacks = invite(email, "admin")
    assert response.status_code == 400
    assert "email: " in response.content.decode()
    assert "already a member" in response.content.decode()
    assert _counts(acme) == before
    assert (callbacks, mailoutbox) == ([], [])
    assert _member(acme, "operator@acme.example").role == "operator"


def test_a_duplicate_invite_through_the_api_is_a_400_naming_email_and_writes_nothing(
    acme, invite, mailoutbox
):
    before = _counts(acme)
    response, callbacks = invite("security@acme.example", "admin", api=True)
    assert response.status_code == 400
    assert "email" in response.json()
    assert _counts(acme) == before
    assert (callbacks, mailoutbox) == ([], [])
    assert _member(acme, "security@acme.example").role == "security"


def test_a_bad_role_on_the_page_is_a_400_naming_role_and_writes_nothing(acme, invite, mailoutbox):
    email = "would.be.root@example.com"
    before = _counts(acme)
    response, callbacks = invite(email, "root")
    assert response.status_code == 400
    assert "role: " in response.content.decode()
    assert _counts(acme) == before
    assert (callbacks, mailoutbox) == ([], [])
    assert not get_user_model().objects.filter(email=email).exists()


def test_a_bad_role_through_the_api_is_a_400_naming_role_and_writes_nothing(
    acme, invite, mailoutbox
):
    email = "would.be.root@example.com"
    before = _counts(acme)
    response, callbacks = invite(email, "root", api=True)
    assert response.status_code == 400
    assert "role" in response.json()
    assert _counts(acme) == before
    assert (callbacks, mailoutbox) == ([], [])
    assert not get_user_model().objects.filter(email=email).exists()


# ---- roles -------------------------------------------------------------------------------------


def test_an_admin_changes_a_role_on_the_page(client_for, acme):
    operator = _member(acme, "operator@acme.example")
    response = client_for("acme", "admin").post(
        f"/members/{operator.public_id}/role/", {"role": "security"}
    )
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.role == "security"
    assert client_for("acme", "operator").get("/audit/").status_code == 200


def test_an_admin_changes_a_role_through_the_api(client_for, acme):
    executive = _member(acme, "executive@acme.example")
    response = _json(
        client_for("acme", "admin"),
        "patch",
        f"/api/v1/members/{executive.public_id}/",
        {"role": "operator"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "operator"
    executive.refresh_from_db()
    assert executive.role == "operator"


def test_a_bad_role_in_a_role_change_is_a_400_and_changes_nothing(client_for, acme):
    executive = _member(acme, "executive@acme.example")
    before = _counts(acme)
    response = _json(
        client_for("acme", "admin"),
        "patch",
        f"/api/v1/members/{executive.public_id}/",
        {"role": "owner"},
    )
    assert response.status_code == 400
    assert "role" in response.json()
    executive.refresh_from_db()
    assert executive.role == "executive"
    assert _counts(acme) == before


def test_the_last_admin_cannot_be_demoted_on_the_page(client_for, acme):
    admin_membership = _member(acme, "admin@acme.example")
    before = _counts(acme)
    response = client_for("acme", "admin").post(
        f"/members/{admin_membership.public_id}/role/", {"role": "operator"}, follow=True
    )
    assert response.status_code == 200
    assert "A tenant needs at least one admin." in response.content.decode()
    admin_membership.refresh_from_db()
    assert admin_membership.role == "admin"
    assert _counts(acme) == before


def test_the_last_admin_cannot_be_removed_on_the_page(client_for, acme):
    admin_membership = _member(acme, "admin@acme.example")
    before = _counts(acme)
    response = client_for("acme", "admin").post(
        f"/members/{admin_membership.public_id}/remove/", follow=True
    )
    assert response.status_code == 200
    assert "A tenant needs at least one admin." in response.content.decode()
    assert Membership.objects.filter(pk=admin_membership.pk, role="admin").exists()
    assert _counts(acme) == before


def test_the_last_admin_cannot_be_demoted_or_removed_through_the_api(client_for, acme):
    admin_membership = _member(acme, "admin@acme.example")
    client = client_for("acme", "admin")
    before = _counts(acme)

    demote = _json(
        client, "patch", f"/api/v1/members/{admin_membership.public_id}/", {"role": "security"}
    )
    remove = client.delete(f"/api/v1/members/{admin_membership.public_id}/")

    assert demote.status_code == 400 and "admin" in json.dumps(demote.json())
    assert remove.status_code == 400 and "admin" in json.dumps(remove.json())
    assert Membership.objects.filter(pk=admin_membership.pk, role="admin").exists()
    assert _counts(acme) == before


def test_an_admin_can_step_down_once_another_admin_exists(client_for, acme):
    client = client_for("acme", "admin")
    security = _member(acme, "security@acme.example")
    assert client.post(f"/members/{security.public_id}/role/", {"role": "admin"}).status_code == 302
    me = _member(acme, "admin@acme.example")
    assert client.post(f"/members/{me.public_id}/role/", {"role": "operator"}).status_code == 302
    me.refresh_from_db()
    assert me.role == "operator"


def test_an_admin_removes_a_member(client_for, acme):
    executive = _member(acme, "executive@acme.example")
    response = client_for("acme", "admin").post(f"/members/{executive.public_id}/remove/")
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=executive.pk).exists()
    assert client_for("acme", email="executive@acme.example").get("/").status_code == 403


def test_an_admin_removes_a_member_through_the_api(client_for, acme):
    operator = _member(acme, "operator@acme.example")
    response = client_for("acme", "admin").delete(f"/api/v1/members/{operator.public_id}/")
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=operator.pk).exists()


# ---- tokens ------------------------------------------------------------------------------------


def _stored_rows_text(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') FROM {table} t")
        return cursor.fetchone()[0]


def _assert_secret_is_stored_only_as_its_hash(token_id: str, secret: str) -> None:
    token = ApiToken.objects.get(public_id=token_id)
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(token.prefix)
    for field in ApiToken._meta.concrete_fields:
        assert secret not in str(getattr(token, field.attname))
    assert secret not in _stored_rows_text("public.tenants_apitoken")
    assert secret not in _stored_rows_text("public.tenants_auditevent")


def test_a_token_created_on_the_page_shows_its_secret_once_and_stores_only_its_hash(
    client_for, acme
):
    admin = client_for("acme", "admin")
    response = submit_token_form(admin, {"name": "deploy bot", "scopes": ["read", "write"]})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secrets = set(SECRET_RE.findall(response.content.decode()))
    assert len(secrets) == 1
    secret = secrets.pop()
    token = ApiToken.objects.get(tenant=acme, name="deploy bot")
    assert token.scopes == ["read", "write"]
    assert token.created_by.email == "admin@acme.example"
    _assert_secret_is_stored_only_as_its_hash(str(token.public_id), secret)

    listed = admin.get("/tokens/").content.decode()
    assert "deploy bot" in listed and token.prefix in listed
    assert secret not in listed
    assert secret not in admin.get("/api/v1/tokens/").content.decode()
    # It works.
    used = client_for("acme").get("/api/v1/dashboards/", **_bearer(secret))
    assert used.status_code == 200


def test_re_sending_the_token_form_does_not_create_a_second_token(client_for, acme):
    admin = client_for("acme", "admin")
    page = admin.get("/tokens/").content.decode()
    nonce = re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)
    data = {"name": "reloaded", "scopes": ["read"], "form_nonce": nonce}

    first = admin.post("/tokens/", data)
    again = admin.post("/tokens/", data)  # what a browser reload of the result page sends

    assert first.status_code == 200 and SECRET_RE.search(first.content.decode())
    assert again.status_code == 302 and again["Location"] == "/tokens/"
    assert ApiToken.objects.filter(tenant=acme, name="reloaded").count() == 1
    assert admin.post("/tokens/", {"name": "no nonce", "scopes": ["read"]}).status_code == 302
    assert not ApiToken.objects.filter(tenant=acme, name="no nonce").exists()


def test_a_token_created_through_the_api_returns_its_secret_once(client_for, acme):
    admin = client_for("acme", "admin")
    response = _json(admin, "post", "/api/v1/tokens/", {"name": "ci", "scopes": ["read"]})

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    secret = body["secret"]
    assert SECRET_RE.fullmatch(secret)
    assert body["prefix"] == secret[: len(body["prefix"])]
    _assert_secret_is_stored_only_as_its_hash(body["id"], secret)

    listing = admin.get("/api/v1/tokens/")
    assert listing.status_code == 200
    assert secret not in listing.content.decode()
    rows = listing.json()["results"]
    assert [row for row in rows if row["id"] == body["id"]]
    assert all("secret" not in row and "secret_hash" not in row for row in rows)
    assert secret not in admin.get("/tokens/").content.decode()
    assert secret not in admin.get("/api/v1/audit-events/").content.decode()


@pytest.mark.parametrize("scopes", [["root"], [], ["read", "admin"]])
def test_bad_scopes_on_the_page_are_a_400_naming_scopes_and_write_nothing(client_for, acme, scopes):
    before = _counts(acme)
    response = submit_token_form(client_for("acme", "admin"), {"name": "bad", "scopes": scopes})
    assert response.status_code == 400
    assert "scopes: " in response.content.decode()
    assert not SECRET_RE.search(response.content.decode())
    assert _counts(acme) == before


@pytest.mark.parametrize("scopes", [["root"], [], ["read", "admin"], "read"])
def test_bad_scopes_through_the_api_are_a_400_naming_scopes_and_write_nothing(
    client_for, acme, scopes
):
    before = _counts(acme)
    response = _json(
        client_for("acme", "admin"), "post", "/api/v1/tokens/", {"name": "bad", "scopes": scopes}
    )
    assert response.status_code == 400
    assert "scopes" in response.json()
    assert "secret" not in response.json()
    assert _counts(acme) == before


def test_an_expiry_in_the_past_is_a_400_naming_expires_at(client_for, acme):
    before = _counts(acme)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = _json(
        client_for("acme", "admin"),
        "post",
        "/api/v1/tokens/",
        {"name": "stale", "scopes": ["read"], "expires_at": past},
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()
    assert _counts(acme) == before


def test_a_token_revoked_on_the_page_gets_401(client_for, acme):
    issued = _issue(acme)
    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 200

    response = client_for("acme", "admin").post(f"/tokens/{issued.token.public_id}/revoke/")

    assert response.status_code == 302
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert api.get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 401
    # Still listed, marked revoked.
    assert "revoked" in client_for("acme", "admin").get("/tokens/").content.decode()


def test_a_token_revoked_through_the_api_gets_401(client_for, acme):
    issued = _issue(acme)
    response = client_for("acme", "admin").delete(f"/api/v1/tokens/{issued.token.public_id}/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    denied = client_for("acme").get("/api/v1/members/", **_bearer(issued.secret))
    assert denied.status_code == 401


def test_an_expired_token_gets_401(client_for, acme):
    issued = _issue(acme, expires_at=timezone.now() + timedelta(hours=1))
    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 200

    ApiToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert api.get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 401


def test_an_unknown_or_malformed_token_gets_401(client_for):
    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **_bearer("mpt_not-a-real-token")).status_code == 401
    malformed = api.get("/api/v1/dashboards/", HTTP_AUTHORIZATION="Bearer two parts")
    assert malformed.status_code == 401


def test_using_a_token_sets_last_used_at(client_for, acme):
    issued = _issue(acme)
    assert issued.token.last_used_at is None
    started = timezone.now()

    response = client_for("acme").get("/api/v1/dashboards/", **_bearer(issued.secret))

    assert response.status_code == 200
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None
    assert started <= issued.token.last_used_at <= timezone.now()


def test_another_tenants_token_gets_401(client_for, globex):
    issued = _issue(globex)
    assert (
        client_for("globex").get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 200
    )
    assert (
        client_for("acme").get("/api/v1/dashboards/", **_bearer(issued.secret)).status_code == 401
    )


# ---- another tenant's objects ------------------------------------------------------------------


def test_another_tenants_membership_is_a_404_on_the_pages_and_unchanged(client_for, globex):
    target = _member(globex, "operator@globex.example")
    admin = client_for("acme", "admin")

    role = admin.post(f"/members/{target.public_id}/role/", {"role": "executive"})
    remove = admin.post(f"/members/{target.public_id}/remove/")

    assert (role.status_code, remove.status_code) == (404, 404)
    target.refresh_from_db()
    assert target.role == "operator"


def test_another_tenants_membership_is_a_404_in_the_api_and_unchanged(client_for, globex):
    target = _member(globex, "operator@globex.example")
    admin = client_for("acme", "admin")

    read = admin.get(f"/api/v1/members/{target.public_id}/")
    role = _json(admin, "patch", f"/api/v1/members/{target.public_id}/", {"role": "executive"})
    remove = admin.delete(f"/api/v1/members/{target.public_id}/")

    assert (read.status_code, role.status_code, remove.status_code) == (404, 404, 404)
    target.refresh_from_db()
    assert target.role == "operator"


def test_another_tenants_token_cannot_be_revoked_from_acme(client_for, globex):
    issued = _issue(globex, name="globex script")
    admin = client_for("acme", "admin")

    page = admin.post(f"/tokens/{issued.token.public_id}/revoke/")
    api = admin.delete(f"/api/v1/tokens/{issued.token.public_id}/")

    assert (page.status_code, api.status_code) == (404, 404)
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None
    assert "globex script" not in admin.get("/tokens/").content.decode()
    assert "globex script" not in admin.get("/api/v1/tokens/").content.decode()


# ---- two admins stepping down at the same moment -----------------------------------------------


def _in_thread(fn: Callable[[], object], timeout: float = 30) -> object:
    """Run `fn` on its own database connection (autocommit), as another request would."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the database call did not finish"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_two_admins_demoting_each_other_at_once_leave_an_admin(acme):
    """The one-admin rule must hold under concurrency, not only for one request at a time.

    Audit writes are held back (the audit table is locked) until both role changes have got as
    far as they can; then both are let go.
    """
    first = _member(acme, "admin@acme.example")
    second = _member(acme, "security@acme.example")
    actor_label = "concurrent demotion test"
    holder: psycopg.Connection | None = None
    watcher: psycopg.Connection | None = None
    outcomes: dict[str, object] = {}
    pids: dict[str, int] = {}
    threads: list[threading.Thread] = []

    def demote(name: str, membership: Membership) -> threading.Thread:
        def run() -> None:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[name] = cursor.fetchone()[0]
            try:
                services.change_role(
                    tenant=acme,
                    membership_id=membership.public_id,
                    role="operator",
                    actor=audit.Actor.system(actor_label),
                )
                outcomes[name] = "changed"
            except Exception as exc:
                outcomes[name] = exc
            finally:
                connections.close_all()

        return threading.Thread(target=run)

    try:
        # Everything that commits or opens a connection happens inside the `try`, so the
        # restore below runs whatever fails.
        _in_thread(lambda: Membership.objects.filter(pk=second.pk).update(role="admin"))
        holder = psycopg.connect(**psycopg_params())
        watcher = psycopg.connect(**psycopg_params(), autocommit=True)
        holder.execute("LOCK TABLE public.tenants_auditevent IN EXCLUSIVE MODE")
        for thread in (demote("first", first), demote("second", second)):
            threads.append(thread)
            thread.start()

        def both_waiting() -> bool:
            if len(pids) < 2:
                return False
            rows = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pid = ANY(%s) AND wait_event_type = 'Lock'",
                [list(pids.values())],
            ).fetchone()
            return rows[0] == 2

        wait_for(both_waiting, timeout=20, message="both role changes to wait on a lock")
        holder.rollback()  # let the audit writes through
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()

        admins = _in_thread(lambda: Membership.objects.filter(tenant=acme, role="admin").count())
        assert admins >= 1, f"both demotions went through, acme has no admin: {outcomes}"
        assert list(outcomes.values()).count("changed") == 1, outcomes
    finally:
        if holder is not None:
            holder.close()  # releases the table lock if it is still held
        if watcher is not None:
            watcher.close()
        for thread in threads:
            thread.join(30)

        def restore() -> None:
            Membership.objects.filter(pk=first.pk).update(role="admin")
            Membership.objects.filter(pk=second.pk).update(role="security")
            AuditEvent.objects.filter(tenant=acme, actor_label=actor_label).delete()

        _in_thread(restore)
