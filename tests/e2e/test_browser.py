"""What people do in a real browser: sign in, pick a tenant and confirm the hand-over, see presence
live, get turned away, get locked out after too many wrong passwords (however the address is
spelt), and create an API token whose secret shows once."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocket, expect

from tests.e2e.conftest import Browsing, committed, submit_login_form

# Each test runs in a rolled-back transaction of its own. What the server itself commits is removed
# after each test: the sessions behind the session cookies of the test's browser contexts and the
# django-axes access-log rows of those sessions (`forget_sign_ins`); the committed `lockme` user
# with its membership and sign-in attempts (`lockme`); the token the token test creates and the
# audit events about that token (`token_name`).
pytestmark = pytest.mark.django_db

TENANT_LINKS = ["Dashboards", "Alert rules", "Incidents", "Compliance"]


def user_id(email: str) -> str:
    from django.contrib.auth import get_user_model

    return str(get_user_model().objects.get(email=email).pk)


def viewer(page: Page, pk: str):
    return page.locator(f'#presence .viewer[data-viewer-id="{pk}"]')


def wait_until_live(page: Page) -> None:
    expect(page.locator("#presence")).to_have_attribute("data-state", "live")


def _session_keys(browsing: Browsing) -> set[str]:
    from django.conf import settings

    keys: set[str] = set()
    for context in browsing.contexts:
        for cookie in context.cookies():
            if cookie["name"] == settings.SESSION_COOKIE_NAME:
                keys.add(cookie["value"])
    return keys


@pytest.fixture(autouse=True)
def forget_sign_ins(browsing: Browsing, django_db_blocker) -> Iterator[None]:
    """Delete the sessions the server committed for this test's browsers, and their access logs.

    Signing in rotates the session key, and django-axes logs each successful sign-in with the
    SHA-256 of the session key it ends up with: the key in the browser's cookie.
    """
    yield
    keys = _session_keys(browsing)

    def forget() -> None:
        from axes.models import AccessLog
        from django.contrib.sessions.models import Session

        hashes = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
        AccessLog.objects.filter(session_hash__in=hashes).delete()
        Session.objects.filter(session_key__in=keys).delete()

    with django_db_blocker.unblock():
        committed(forget)


@pytest.fixture
def ids(django_db_blocker) -> dict[str, str]:
    emails = [
        "operator@acme.example",
        "executive@acme.example",
        "security@acme.example",
        "admin@globex.example",
        "operator@globex.example",
    ]
    with django_db_blocker.unblock():
        return committed(lambda: {email: user_id(email) for email in emails})


def test_signing_in_on_the_public_site_and_entering_a_tenant_shows_it_live(
    browsing: Browsing, ids: dict[str, str], artifacts_dir: Path
):
    site = browsing.site
    page = browsing.new_page()
    browsing.sign_in(page, None, "operator@acme.example")

    expect(page).to_have_url(site.url(None, "/"))
    expect(page.get_by_role("heading", name="Your tenants")).to_be_visible()
    tenants = page.locator(".tenant-list button")
    expect(tenants).to_have_count(1)
    expect(tenants).to_contain_text("Acme Corporation")
    expect(page.locator("main")).not_to_contain_text("Globex")

    # The picker hands over to the tenant's host, which asks before signing anyone in.
    with page.expect_navigation(url=re.compile(re.escape(site.url("acme", "/accounts/handoff/")))):
        tenants.filter(has_text="Acme Corporation").click()
    expect(page.get_by_role("heading", name="Continue to Acme Corporation")).to_be_visible()
    expect(page.locator(".who")).not_to_contain_text("operator@acme.example")  # not yet
    with page.expect_navigation(url=site.url("acme", "/")):
        page.get_by_role("button", name="Continue as operator@acme.example").click()

    expect(page.get_by_role("heading", name="Acme Corporation", level=1)).to_be_visible()
    expect(page.locator("main")).to_contain_text("You are signed in as Operator.")
    nav = page.locator("nav.mainnav")
    for name in TENANT_LINKS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    wait_until_live(page)
    me = viewer(page, ids["operator@acme.example"])
    expect(me).to_have_text("Operator Acme (operator)")
    expect(page.locator("#presence .viewer")).to_have_count(1)

    page.screenshot(path=artifacts_dir / "tenant-home.png", full_page=True)


def test_presence_is_live_and_stays_within_the_tenant(browsing: Browsing, ids: dict[str, str]):
    site = browsing.site
    executive, security = ids["executive@acme.example"], ids["security@acme.example"]
    globex_admin, globex_operator = ids["admin@globex.example"], ids["operator@globex.example"]

    a = browsing.new_page()
    browsing.sign_in(a, "acme", "executive@acme.example")
    expect(a).to_have_url(site.url("acme", "/"))
    wait_until_live(a)
    expect(viewer(a, executive)).to_be_visible()

    # Everything the globex page hears on its presence socket, from its first frame on.
    heard_by_c: list[dict] = []

    def listen(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: heard_by_c.append(json.loads(payload)))

    c = browsing.new_page()
    c.on("websocket", listen)
    browsing.sign_in(c, "globex", "admin@globex.example")
    expect(c).to_have_url(site.url("globex", "/"))
    wait_until_live(c)
    expect(viewer(c, globex_admin)).to_be_visible()

    b = browsing.new_page()
    browsing.sign_in(b, "acme", "security@acme.example")
    expect(b).to_have_url(site.url("acme", "/"))
    wait_until_live(b)
    expect(viewer(b, executive)).to_be_visible()
    expect(viewer(b, security)).to_be_visible()

    # A learns of B without reloading.
    expect(viewer(a, security)).to_be_visible()
    expect(a.locator("#presence .viewer")).to_have_count(2)

    # C, on another tenant, must not. Frames on one socket arrive in order, and B's join was
    # broadcast before D (a globex member) connects, so D's arrival on C is a sentinel: a leaked
    # frame about B would have reached C before it.
    d = browsing.new_page()
    browsing.sign_in(d, "globex", "operator@globex.example")
    expect(d).to_have_url(site.url("globex", "/"))
    wait_until_live(d)
    expect(viewer(c, globex_operator)).to_be_visible()
    expect(c.locator("#presence .viewer")).to_have_count(2)

    # The same for B leaving: A sees it, then D leaves, and C's news of that comes after.
    b.close()
    expect(viewer(a, security)).to_have_count(0)
    expect(viewer(a, executive)).to_be_visible()
    d.close()
    expect(viewer(c, globex_operator)).to_have_count(0)
    expect(c.locator("#presence .viewer")).to_have_count(1)
    expect(viewer(c, globex_admin)).to_be_visible()

    seen_by_c = {
        person["id"]
        for frame in heard_by_c
        if frame.get("type") == "presence"
        for person in frame["viewers"]
    }
    assert seen_by_c == {globex_admin, globex_operator}


def test_a_member_of_another_tenant_gets_403_and_an_unknown_host_404(browsing: Browsing):
    site = browsing.site
    page = browsing.new_page()
    browsing.sign_in(page, "globex", "admin@globex.example")
    expect(page).to_have_url(site.url("globex", "/"))
    wait_until_live(page)

    # Sessions are per host: on acme's host the globex admin signs in again, and is refused.
    acme_home = site.url("acme", "/")
    browsing.expect_http_error(acme_home, 403)
    page.goto(acme_home)
    expect(page).to_have_url(site.url("acme", "/accounts/login/?next=/"))
    with page.expect_response(acme_home) as landed:
        submit_login_form(page, "admin@globex.example", "demo")
    assert landed.value.status == 403
    expect(page.get_by_role("heading", name="403 — not for you")).to_be_visible()
    expect(page.locator("main")).to_contain_text("You are not a member of this tenant.")
    for name in TENANT_LINKS:
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    expect(page.locator("#presence")).to_have_count(0)

    unknown = site.url("nope", "/")
    browsing.expect_http_error(unknown, 404)
    # Nothing exists on a host that is no tenant, not even the icon Chromium asks for.
    browsing.expect_http_error(site.url("nope", "/favicon.ico"), 404)
    response = page.goto(unknown)
    assert response is not None and response.status == 404
    # The development server shows Django's technical 404 page, production the portal's own.
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("not found", re.I))
    expect(page.get_by_label("Password")).to_have_count(0)
    expect(page.locator(".tenant-list")).to_have_count(0)


LOCKME = "lockme@acme.example"
LOCKME_PASSWORD = "correct-horse-battery-staple"


def _forget_lockme() -> None:
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.auth import get_user_model

    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        model.objects.filter(username__iexact=LOCKME).delete()
    get_user_model().objects.filter(email__iexact=LOCKME).delete()


@pytest.fixture
def lockme(django_db_blocker) -> Iterator[str]:
    """A committed acme executive of its own, so locking it out leaves the demo users alone."""

    def create() -> None:
        from django.contrib.auth import get_user_model

        from tenants.models import Membership, Tenant
        from tenants.roles import Role

        _forget_lockme()
        user = get_user_model().objects.create_user(LOCKME, LOCKME, LOCKME_PASSWORD)
        Membership.objects.create(
            tenant=Tenant.objects.get(schema_name="acme"), user=user, role=Role.EXECUTIVE
        )

    with django_db_blocker.unblock():
        committed(create)
    try:
        yield LOCKME
    finally:
        with django_db_blocker.unblock():
            committed(_forget_lockme)


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    browsing: Browsing, lockme: str
):
    site = browsing.site
    login_url = site.url("acme", "/accounts/login/")
    page = browsing.new_page()
    # Sign-in ignores the case of the e-mail address, so the lockout counts all spellings.
    spellings = [lockme, lockme.upper(), lockme.title(), f" {lockme} "]
    for attempt, spelling in enumerate(spellings, start=1):
        page.goto(login_url)
        submit_login_form(page, spelling, f"wrong-{attempt}")
        expect(page.get_by_role("alert")).to_contain_text("correct")

    # django-axes answers a locked-out sign-in with 429 Too Many Requests.
    browsing.expect_http_error(login_url, 429)
    page.goto(login_url)
    submit_login_form(page, lockme, "wrong-5")

    page.goto(login_url)
    with page.expect_response(login_url) as right:
        submit_login_form(page, lockme, LOCKME_PASSWORD)
    assert right.value.status == 429
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    expect(page.get_by_label("Password")).to_have_count(0)

    # Not signed in: the tenant home still sends the visitor to the sign-in page.
    page.goto(site.url("acme", "/"))
    expect(page).to_have_url(site.url("acme", "/accounts/login/?next=/"))


@pytest.fixture
def token_name(django_db_blocker) -> Iterator[str]:
    """A unique name for the token the test creates through the page.

    The product never deletes a token (it revokes it and keeps the row), so this is clean-up of
    the test's own data, not a product operation: afterwards the tokens by that name are deleted
    (committed). The audit trail keeps its events about them: it is append-only.
    """
    name = f"browser-check-{uuid.uuid4().hex[:8]}"
    yield name

    def delete() -> None:
        from tenants.models import ApiToken

        created = ApiToken.objects.filter(name=name)
        created.delete()

    with django_db_blocker.unblock():
        committed(delete)


def test_an_admin_creates_a_token_whose_secret_is_shown_only_once(
    browsing: Browsing, token_name: str
):
    site = browsing.site
    page = browsing.new_page()
    browsing.sign_in(page, "acme", "admin@acme.example")
    expect(page).to_have_url(site.url("acme", "/"))
    page.goto(site.url("acme", "/tokens/"))

    page.get_by_label("Name").fill(token_name)
    page.locator('input[name="scopes"][value="read"]').check()
    with page.expect_navigation():
        page.get_by_role("button", name="Create token").click()

    expect(page.get_by_role("status")).to_contain_text(f"Token “{token_name}” created")
    secret_box = page.locator("code.secret")
    expect(secret_box).to_have_count(1)
    secret = secret_box.inner_text().strip()
    assert len(secret) >= 20
    row = page.locator("tbody tr", has_text=token_name)
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("read")
    prefix = row.locator("td").nth(1).inner_text().rstrip("…")
    assert prefix and secret.startswith(prefix)

    # Reloading the page must neither show the secret again nor issue another token.
    page.reload()
    expect(
        page.locator("tbody tr", has_text=token_name),
        "reloading the token page issued another token",
    ).to_have_count(1)
    expect(page.locator("code.secret"), "a secret is shown again after reload").to_have_count(0)
    assert secret not in page.content()
