"""The tenant home and the public site: who lands where, and the hand-over from the picker."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import MembershipFactory, TenantFactory
from tests.helpers import PASSWORD, client_on, is_signed_in


def _member(tenant, role: str = "executive"):
    """A new person who belongs to `tenant` (and to no other tenant) with `role`."""
    return MembershipFactory(tenant=tenant, role=role).user


def test_it_shows_the_tenant_home_to_a_member(acme):
    response = client_on("acme", _member(acme)).get("/")
    assert response.status_code == 200
    assert acme.name.encode() in response.content
    assert b'id="presence"' in response.content


def test_it_returns_404_for_an_unknown_host(db):
    response = client_on("initech").get("/")
    assert response.status_code == 404
    assert b"tenant picker" not in response.content.lower()


def test_it_redirects_anonymous_visitors_of_a_tenant_to_sign_in(db):
    response = client_on("acme").get("/dashboards/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/dashboards/")


@pytest.mark.parametrize("path", ["/", "/dashboards/", "/members/", "/admin/", "/audit/"])
def test_it_forbids_non_members_every_tenant_page(acme, path):
    response = client_on("globex", _member(acme, "admin")).get(path)
    assert response.status_code == 403


def test_the_picker_lists_only_the_users_tenants(acme, globex):
    person = _member(acme, "operator")
    other = MembershipFactory(tenant=TenantFactory(name="Initrode"), user=person).tenant
    response = client_on(None, person).get("/")
    assert response.status_code == 200
    assert acme.name.encode() in response.content
    assert other.name.encode() in response.content
    assert globex.name.encode() not in response.content


def _handoff_path(email: str, slug: str = "acme") -> str:
    """Sign in on the public site, pick `slug`; the path (with its ticket) on the tenant host."""
    public = Client(HTTP_HOST="localhost")
    response = public.post("/accounts/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 302
    response = public.post(f"/go/{slug}/")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.scheme == "http"
    assert location.hostname == f"{slug}.localhost"
    assert location.port == settings.PORTAL_PORT
    assert location.path == "/accounts/handoff/"
    assert parse_qs(location.query)["ticket"]
    return f"{location.path}?{location.query}"


def _confirmation_form(html: str) -> tuple[str | None, dict[str, str]]:
    """The action and the named fields of the confirmation page's POST form."""
    form = re.search(r'<form method="post"(?: action="([^"]*)")?>(.*?)</form>', html, re.S)
    assert form, html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[2]))
    return form[1], fields


def test_signing_in_on_the_public_site_then_entering_a_tenant(acme):
    person = _member(acme, "security")
    path = _handoff_path(person.email)
    tenant = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)

    # Following the link asks for confirmation; it signs no one in.
    page = tenant.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Continue to {acme.name}" in html
    assert re.search(rf"<button[^>]*>Continue as {re.escape(person.email)}</button>", html)
    assert not is_signed_in(tenant)
    assert tenant.get("/")["Location"].startswith("/accounts/login/")

    # The button POSTs the ticket back to the hand-over URL: that signs in, once.
    action, fields = _confirmation_form(html)
    assert action is None  # the page's own URL, /accounts/handoff/?ticket=...
    assert fields["ticket"] == parse_qs(urlsplit(path).query)["ticket"][0]
    landed = tenant.post(path, fields)
    assert landed.status_code == 302 and landed["Location"] == "/"
    assert is_signed_in(tenant)
    home = tenant.get("/")
    assert home.status_code == 200
    assert b"Security" in home.content

    # The ticket is single-use.
    again = Client(HTTP_HOST="acme.localhost")
    replayed = again.post("/accounts/handoff/", {"ticket": fields["ticket"]})
    assert replayed["Location"].startswith("/accounts/login/")
    assert not is_signed_in(again)


def test_a_hand_over_link_opened_by_someone_else_signs_nobody_in(acme):
    """A member could send a colleague their link: opening it must not sign the colleague in
    as the sender, and the page names whose account it is."""
    sender = _member(acme, "operator")
    path = _handoff_path(sender.email)
    colleague = Client(HTTP_HOST="acme.localhost")

    for _ in range(2):  # a GET, however often, never signs in nor uses up the ticket
        page = colleague.get(path)
        assert page.status_code == 200
        assert f"Continue as {sender.email}".encode() in page.content
        assert not is_signed_in(colleague)
    assert colleague.get("/dashboards/")["Location"].startswith("/accounts/login/")

    # The ticket was not used up: its owner, confirming, is signed in.
    owner = Client(HTTP_HOST="acme.localhost")
    ticket = parse_qs(urlsplit(path).query)["ticket"][0]
    redeemed = owner.post("/accounts/handoff/", {"ticket": ticket})
    assert redeemed.status_code == 302 and redeemed["Location"] == "/"
    assert sender.email.encode() in owner.get("/").content
    assert not is_signed_in(colleague)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_hand_over_ticket_for_one_tenant_is_refused_on_another(acme, method):
    ticket = parse_qs(urlsplit(_handoff_path(_member(acme, "admin").email)).query)["ticket"][0]
    client = Client(HTTP_HOST="globex.localhost")
    response = getattr(client, method)("/accounts/handoff/", {"ticket": ticket})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not is_signed_in(client)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_forged_hand_over_ticket_is_refused(db, method):
    client = Client(HTTP_HOST="acme.localhost")
    response = getattr(client, method)("/accounts/handoff/", {"ticket": "forged"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not is_signed_in(client)


def test_the_picker_refuses_to_enter_a_tenant_the_user_is_not_in(acme):
    response = client_on(None, _member(acme, "operator")).post("/go/globex/")
    assert response.status_code == 403
