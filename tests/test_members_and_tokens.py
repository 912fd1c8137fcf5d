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
from tests.helpers import bearer, send_json

NEW_PASSWORD = "Correct-Horse-9-Battery!"
SECRET_RE = re.compile(r"mpt_[A-Za-z0-9_\-]{20,}")
INVITE_RE = re.compile(r"https?://[^\s<\"]+/accounts/reset/[^\s<\"]+/")


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
                response = send_json(self.admin, "post", "/api/v1/members/", data)
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
    response = send_json(
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
        "joined_at": None,
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
    assert "E-mail: " in response.content.decode()
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
    assert "Role: " in response.content.decode()
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
    response = send_json(
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
    admin = client_for("acme", "admin")
    before = _counts(acme)
    response = send_json(
        admin,
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
    admin = client_for("acme", "admin")
    before = _counts(acme)
    response = admin.post(f"/members/{admin_membership.public_id}/role/", {"role": "operator"})
    assert response.status_code == 400
    assert "A tenant needs at least one admin." in response.content.decode()
    admin_membership.refresh_from_db()
    assert admin_membership.role == "admin"
    assert _counts(acme) == before


def test_the_last_admin_cannot_be_removed_on_the_page(client_for, acme):
    admin_membership = _member(acme, "admin@acme.example")
    admin = client_for("acme", "admin")
    page = admin.get(f"/members/{admin_membership.public_id}/remove/")
    assert page.status_code == 200
    assert "only admin" in page.content.decode()
    assert re.search(r'<button type="submit" class="danger" disabled>', page.content.decode())
    before = _counts(acme)
    response = admin.post(f"/members/{admin_membership.public_id}/remove/")
    assert response.status_code == 400
    assert "A tenant needs at least one admin." in response.content.decode()
    assert Membership.objects.filter(pk=admin_membership.pk, role="admin").exists()
    assert _counts(acme) == before


def test_the_last_admin_cannot_be_demoted_or_removed_through_the_api(client_for, acme):
    admin_membership = _member(acme, "admin@acme.example")
    client = client_for("acme", "admin")
    before = _counts(acme)

    demote = send_json(
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

    # Post/redirect/get: the secret is on the page the POST redirects to, and only there.
    assert response.status_code == 302 and response["Location"] == "/tokens/issued/"
    assert not SECRET_RE.search(response.content.decode())
    # Until it is shown, it waits in the session, encrypted: the session table never holds it.
    token = ApiToken.objects.get(tenant=acme, name="deploy bot")
    assert token.prefix not in _stored_rows_text("public.django_session")
    shown = admin.get(response["Location"])
    assert shown.status_code == 200
    assert shown["Cache-Control"] == "no-store"
    secrets = set(SECRET_RE.findall(shown.content.decode()))
    assert len(secrets) == 1
    secret = secrets.pop()
    assert token.scopes == ["read", "write"]
    assert token.created_by.email == "admin@acme.example"
    _assert_secret_is_stored_only_as_its_hash(str(token.public_id), secret)
    assert secret not in _stored_rows_text("public.django_session")

    # Reloading the one-time page shows the secret no more.
    again = admin.get("/tokens/issued/")
    assert again.status_code == 302 and again["Location"] == "/tokens/"
    listed = admin.get("/tokens/").content.decode()
    assert "deploy bot" in listed and token.prefix in listed
    assert secret not in listed
    assert secret not in admin.get("/api/v1/tokens/").content.decode()
    # It works.
    used = client_for("acme").get("/api/v1/dashboards/", **bearer(secret))
    assert used.status_code == 200


def test_re_sending_the_token_form_does_not_create_a_second_token(client_for, acme):
    admin = client_for("acme", "admin")
    page = admin.get("/tokens/").content.decode()
    nonce = re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)
    data = {"name": "reloaded", "scopes": ["read"], "form_nonce": nonce}

    first = admin.post("/tokens/", data)
    again = admin.post("/tokens/", data)  # what the back button and "send again" send

    assert first.status_code == 302 and first["Location"] == "/tokens/issued/"
    assert again.status_code == 302 and again["Location"] == "/tokens/"
    assert ApiToken.objects.filter(tenant=acme, name="reloaded").count() == 1
    assert SECRET_RE.search(admin.get("/tokens/issued/").content.decode())
    assert admin.post("/tokens/", {"name": "no nonce", "scopes": ["read"]}).status_code == 302
    assert not ApiToken.objects.filter(tenant=acme, name="no nonce").exists()


def test_a_refused_token_form_can_be_corrected_and_sent_again(client_for, acme):
    admin = client_for("acme", "admin")
    page = admin.get("/tokens/").content.decode()
    nonce = re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)

    refused = admin.post("/tokens/", {"name": "", "scopes": ["read"], "form_nonce": nonce})
    fixed = admin.post("/tokens/", {"name": "fixed", "scopes": ["read"], "form_nonce": nonce})

    assert (
        refused.status_code == 400 and "Name: This field is required." in refused.content.decode()
    )
    assert fixed.status_code == 302 and fixed["Location"] == "/tokens/issued/"
    assert ApiToken.objects.filter(tenant=acme, name="fixed").count() == 1


def test_a_token_created_through_the_api_returns_its_secret_once(client_for, acme):
    admin = client_for("acme", "admin")
    response = send_json(admin, "post", "/api/v1/tokens/", {"name": "ci", "scopes": ["read"]})

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
    admin = client_for("acme", "admin")
    before = _counts(acme)
    response = submit_token_form(admin, {"name": "bad", "scopes": scopes})
    assert response.status_code == 400
    assert "Scopes: " in response.content.decode()
    assert not SECRET_RE.search(response.content.decode())
    assert _counts(acme) == before


@pytest.mark.parametrize("scopes", [["root"], [], ["read", "admin"], "read"])
def test_bad_scopes_through_the_api_are_a_400_naming_scopes_and_write_nothing(
    client_for, acme, scopes
):
    admin = client_for("acme", "admin")
    before = _counts(acme)
    response = send_json(admin, "post", "/api/v1/tokens/", {"name": "bad", "scopes": scopes})
    assert response.status_code == 400
    assert "scopes" in response.json()
    assert "secret" not in response.json()
    assert _counts(acme) == before


def test_an_expiry_in_the_past_is_a_400_naming_expires_at(client_for, acme):
    admin = client_for("acme", "admin")
    before = _counts(acme)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = send_json(
        admin,
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
    assert api.get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 200

    response = client_for("acme", "admin").post(f"/tokens/{issued.token.public_id}/revoke/")

    assert response.status_code == 302
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert api.get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 401
    # Still listed, marked revoked.
    assert "revoked" in client_for("acme", "admin").get("/tokens/").content.decode()


def test_a_token_revoked_through_the_api_gets_401(client_for, acme):
    issued = _issue(acme)
    response = client_for("acme", "admin").delete(f"/api/v1/tokens/{issued.token.public_id}/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    denied = client_for("acme").get("/api/v1/members/", **bearer(issued.secret))
    assert denied.status_code == 401


def test_an_expired_token_gets_401(client_for, acme):
    issued = _issue(acme, expires_at=timezone.now() + timedelta(hours=1))
    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 200

    ApiToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert api.get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 401


def test_an_unknown_or_malformed_token_gets_401(client_for):
    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **bearer("mpt_not-a-real-token")).status_code == 401
    malformed = api.get("/api/v1/dashboards/", HTTP_AUTHORIZATION="Bearer two parts")
    assert malformed.status_code == 401


def test_using_a_token_sets_last_used_at(client_for, acme):
    issued = _issue(acme)
    assert issued.token.last_used_at is None
    started = timezone.now()

    response = client_for("acme").get("/api/v1/dashboards/", **bearer(issued.secret))

    assert response.status_code == 200
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None
    assert started <= issued.token.last_used_at <= timezone.now()


def test_another_tenants_token_gets_401(client_for, globex):
    issued = _issue(globex)
    assert (
        client_for("globex").get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 200
    )
    assert client_for("acme").get("/api/v1/dashboards/", **bearer(issued.secret)).status_code == 401


# ---- what an invitation reveals ----------------------------------------------------------------

_ROW_RE = re.compile(r"<tr>\s*<td>.*?</tr>", re.S)
_CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _member_row(html: str, membership: Membership) -> str:
    """The members-page row of `membership`, with its e-mail, id and CSRF tokens (new on every
    page) replaced by placeholders."""
    rows = [row for row in _ROW_RE.findall(html) if str(membership.public_id) in row]
    assert len(rows) == 1, html
    row = _CSRF_RE.sub("CSRF", rows[0])
    return row.replace(membership.user.email, "EMAIL").replace(str(membership.public_id), "ID")


def test_inviting_another_tenants_person_looks_exactly_like_inviting_someone_new(
    acme, invite, mailoutbox
):
    existing, new = "operator@globex.example", "never.seen.before@example.com"
    assert get_user_model().objects.get(email=existing).has_usable_password()

    answers = {}
    for email in (existing, new):
        response, _ = invite(email, "security")
        page = invite.admin.get(response["Location"]).content.decode()
        membership = _member(acme, email)
        again = invite.admin.post(f"/members/{membership.public_id}/invite-again/", follow=True)
        api_page = invite.admin.get(f"/api/v1/members/{membership.public_id}/").json()
        answers[email] = {
            "status": response.status_code,
            "location": response["Location"],
            "message": f"{email} added and told by e-mail." in page,
            "row": _member_row(page, membership),
            "again": (
                again.status_code,
                f"Invitation sent again to {email}." in again.content.decode(),
            ),
            "api": {k: v for k, v in api_page.items() if k not in ("id", "email", "created_at")},
        }
        assert "Globex" not in page  # not the person's name from their other tenant

    assert answers[existing] == answers[new]
    assert answers[new]["api"] == {"name": "", "role": "security", "joined_at": None}
    assert "invited, not signed in yet" in answers[new]["row"]


def test_the_api_answer_to_an_invitation_is_the_same_for_an_existing_and_a_new_address(
    acme, invite
):
    bodies = []
    for email in ("admin@globex.example", "api.brand.new@example.com"):
        response, _ = invite(email, "executive", api=True)
        assert response.status_code == 201
        body = response.json()
        bodies.append({k: v for k, v in body.items() if k not in ("id", "email", "created_at")})
    assert bodies[0] == bodies[1] == {"name": "", "role": "executive", "joined_at": None}


def test_a_member_who_signs_in_here_is_shown_as_joined_with_their_name(client_for, acme, invite):
    email = "operator@globex.example"
    invite(email, "operator")
    membership = _member(acme, email)
    assert membership.joined_at is None

    signed_in = Client(HTTP_HOST="acme.localhost").post(
        "/accounts/login/", {"username": email, "password": "demo"}
    )

    assert signed_in.status_code == 302
    membership.refresh_from_db()
    assert membership.joined_at is not None
    page = invite.admin.get("/members/").content.decode()
    row = _member_row(page, membership)
    assert "Operator Globex" in row and "invited" not in row
    assert invite.admin.get(f"/api/v1/members/{membership.public_id}/").json()["name"] == (
        "Operator Globex"
    )
    # Someone who has joined needs no invitation any more.
    refused = invite.admin.post(f"/members/{membership.public_id}/invite-again/")
    assert refused.status_code == 400
    assert "has already signed in to this tenant" in refused.content.decode()


def test_signing_in_elsewhere_does_not_make_a_member_joined_here(client_for, acme, invite):
    email = "security@globex.example"
    invite(email, "executive")

    Client(HTTP_HOST="globex.localhost").post(
        "/accounts/login/", {"username": email, "password": "demo"}
    )
    Client(HTTP_HOST="localhost").post("/accounts/login/", {"username": email, "password": "demo"})

    assert _member(acme, email).joined_at is None


# ---- removing a member who created tokens ------------------------------------------------------


@pytest.fixture
def leaver(acme):
    """acme's operator with four tokens of their own, one revoked; and a token of someone else."""
    operator = _member(acme, "operator@acme.example")
    admin = get_user_model().objects.get(email="admin@acme.example")
    tokens = {
        name: _issue(acme, name=name, created_by=operator.user)
        for name in ("exporter", "backup", "kept", "gone")
    }
    services.revoke_token(
        tenant=acme, token_id=tokens["gone"].token.public_id, actor=audit.Actor.system("test")
    )
    tokens["admins"] = _issue(acme, name="admins", created_by=admin)
    return operator, tokens


def test_the_removal_page_lists_the_live_tokens_the_member_created(client_for, leaver):
    operator, tokens = leaver
    page = client_for("acme", "admin").get(f"/members/{operator.public_id}/remove/")

    assert page.status_code == 200
    html = page.content.decode()
    for name in ("exporter", "backup", "kept"):
        token = tokens[name].token
        assert f'name="rotate_tokens" value="{token.public_id}"' in html
        assert f'name="revoke_tokens" value="{token.public_id}"' in html
        assert token.prefix in html
    for name in ("gone", "admins"):
        assert str(tokens[name].token.public_id) not in html
    assert f'data-confirm="Really remove {operator.user.email} from this tenant?"' in html
    assert Membership.objects.filter(pk=operator.pk).exists()  # looking changes nothing


def test_removing_a_member_rotates_and_revokes_their_tokens_in_one_step(client_for, acme, leaver):
    operator, tokens = leaver
    admin = client_for("acme", "admin")
    rotate, revoke = tokens["exporter"].token, tokens["backup"].token

    response = admin.post(
        f"/members/{operator.public_id}/remove/",
        {"rotate_tokens": [str(rotate.public_id)], "revoke_tokens": [str(revoke.public_id)]},
    )

    assert response.status_code == 302 and response["Location"] == "/tokens/issued/"
    assert not Membership.objects.filter(pk=operator.pk).exists()
    page = admin.get("/tokens/issued/")
    assert page["Cache-Control"] == "no-store"
    html = page.content.decode()
    secrets = set(SECRET_RE.findall(html))
    assert len(secrets) == 1
    new_secret = secrets.pop()
    assert "operator@acme.example removed. Revoked: backup. Rotated: exporter." in html
    assert admin.get("/tokens/issued/")["Location"] == "/tokens/"  # shown once

    api = client_for("acme")
    assert api.get("/api/v1/dashboards/", **bearer(new_secret)).status_code == 200
    for gone in ("exporter", "backup"):
        assert api.get("/api/v1/dashboards/", **bearer(tokens[gone].secret)).status_code == 401
    # Tokens belong to the tenant: the one left alone still works.
    assert api.get("/api/v1/dashboards/", **bearer(tokens["kept"].secret)).status_code == 200
    replacement = ApiToken.objects.get(tenant=acme, name="exporter", revoked_at__isnull=True)
    assert replacement.created_by.email == "admin@acme.example"
    actions = list(
        AuditEvent.objects.filter(tenant=acme)
        .exclude(action__startswith="auth.")
        .order_by("-seq")
        .values_list("action", flat=True)[:5]
    )
    assert actions == [
        "token.rotated",
        "token.revoked",
        "token.created",
        "token.revoked",
        "member.removed",
    ]


def test_the_tokens_page_and_api_mark_tokens_whose_creator_was_removed(client_for, acme, leaver):
    operator, tokens = leaver
    admin = client_for("acme", "admin")
    assert "creator removed" not in admin.get("/tokens/").content.decode()

    assert admin.post(f"/members/{operator.public_id}/remove/").status_code == 302

    html = admin.get("/tokens/").content.decode()
    rows = {name: _token_row(html, tokens[name].token) for name in tokens}
    assert all("creator removed" in rows[name] for name in ("exporter", "backup", "kept"))
    assert "creator removed" not in rows["admins"]
    assert "creator removed" not in rows["gone"]  # revoked: nothing to act on
    listed = {row["name"]: row for row in admin.get("/api/v1/tokens/").json()["results"]}
    assert listed["kept"]["creator_removed"] is True
    assert listed["admins"]["creator_removed"] is False


def _token_row(html: str, token: ApiToken) -> str:
    rows = [row for row in re.findall(r"<tr.*?</tr>", html, re.S) if token.prefix in row]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("field", ["rotate_tokens", "revoke_tokens"])
def test_a_token_the_member_did_not_create_is_refused_and_nothing_is_removed(
    client_for, acme, globex, leaver, field
):
    operator, tokens = leaver
    foreign = _issue(globex, name="globex script")
    admin = client_for("acme", "admin")
    before = _counts(acme)

    for token in (tokens["admins"].token, tokens["gone"].token, foreign.token):
        response = admin.post(f"/members/{operator.public_id}/remove/", {field: [token.public_id]})
        assert response.status_code == 400
        label = "Rotate" if field == "rotate_tokens" else "Revoke"
        assert f"{label}: Choose among the live tokens this member created." in (
            response.content.decode()
        )

    assert _counts(acme) == before
    assert Membership.objects.filter(pk=operator.pk).exists()
    assert ApiToken.objects.get(pk=foreign.token.pk).revoked_at is None


def test_rotating_and_revoking_the_same_token_is_refused(client_for, acme, leaver):
    operator, tokens = leaver
    token_id = str(tokens["kept"].token.public_id)
    admin = client_for("acme", "admin")
    before = _counts(acme)

    response = admin.post(
        f"/members/{operator.public_id}/remove/",
        {"rotate_tokens": [token_id], "revoke_tokens": [token_id]},
    )

    assert response.status_code == 400
    assert "Revoke: Rotate or revoke a token, not both: kept." in response.content.decode()
    assert _counts(acme) == before


def test_a_failure_while_rotating_leaves_the_member_and_every_token_as_they_were(
    acme, leaver, monkeypatch
):
    operator, tokens = leaver
    before = _counts(acme)

    def broken_secret() -> str:
        raise RuntimeError("no randomness")

    monkeypatch.setattr(services.tokens, "new_secret", broken_secret)
    with pytest.raises(RuntimeError):
        services.remove_member(
            tenant=acme,
            membership_id=operator.public_id,
            actor=audit.Actor.system("test"),
            revoke_tokens=[tokens["backup"].token.public_id],
            rotate_tokens=[tokens["exporter"].token.public_id],
        )

    assert _counts(acme) == before
    assert Membership.objects.filter(pk=operator.pk).exists()
    for name in ("exporter", "backup"):
        assert ApiToken.objects.get(pk=tokens[name].token.pk).revoked_at is None


_LINK_RE = re.compile(r'(?:href|action)="([^"]*)"')


def test_portal_pages_link_and_post_only_to_portal_pages(client_for, acme, leaver):
    """No button or link of a page lands a person on an API (DRF) page."""
    operator, _ = leaver
    admin = client_for("acme", "admin")
    dashboard = admin.get("/dashboards/").content.decode()
    first_dashboard = re.search(r'href="(/dashboards/[0-9a-f-]{36}/)"', dashboard).group(1)
    pages = [
        "/members/",
        f"/members/{operator.public_id}/remove/",
        "/tokens/",
        "/settings/",
        "/dashboards/",
        first_dashboard,
    ]
    for path in pages:
        response = admin.get(path)
        assert response.status_code == 200, path
        targets = set(_LINK_RE.findall(response.content.decode()))
        assert targets, path
        assert not [t for t in targets if t.startswith("/api/v1/")], (path, targets)


def test_destructive_buttons_ask_first(client_for, acme):
    _issue(acme, name="asked")
    html = client_for("acme", "admin").get("/tokens/").content.decode()
    assert 'data-confirm="Revoke asked? Scripts using it stop working at once."' in html
    assert 'data-confirm="Rotate asked? Its current secret stops working at once."' in html


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
    role = send_json(admin, "patch", f"/api/v1/members/{target.public_id}/", {"role": "executive"})
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

        _in_thread(restore)


@pytest.mark.parametrize(
    "nonce",
    ["a\x00b" * 8, "n" * 100_000, "ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐ", "../../etc/passwd-xxxxxx"],
)
def test_a_form_nonce_the_page_did_not_make_creates_no_token(client_for, acme, nonce):
    admin = client_for("acme", "admin")
    response = admin.post("/tokens/", {"name": "forged", "scopes": ["read"], "form_nonce": nonce})
    assert response.status_code == 302 and response["Location"] == "/tokens/"
    assert not ApiToken.objects.filter(tenant=acme, name="forged").exists()
