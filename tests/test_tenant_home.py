"""The tenant home and the public site: who lands where."""

import pytest

from tests.conftest import PASSWORD


def test_it_shows_the_tenant_home_to_a_member(client_for):
    response = client_for("acme", "executive").get("/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content
    assert b'id="presence"' in response.content


def test_it_returns_404_for_an_unknown_host(client_for):
    response = client_for("initech").get("/")
    assert response.status_code == 404
    assert b"tenant picker" not in response.content.lower()


def test_it_redirects_anonymous_visitors_of_a_tenant_to_sign_in(client_for):
    response = client_for("acme").get("/dashboards/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/dashboards/")


@pytest.mark.parametrize("path", ["/", "/dashboards/", "/members/", "/admin/", "/audit/"])
def test_it_forbids_non_members_every_tenant_page(client_for, path):
    response = client_for("globex", email="admin@acme.example").get(path)
    assert response.status_code == 403


def test_the_picker_lists_only_the_users_tenants(client_for):
    response = client_for(None, email="operator@acme.example").get("/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content
    assert b"Globex" not in response.content


def test_signing_in_on_the_public_site_then_entering_a_tenant(client_for):
    from django.test import Client

    public = Client(HTTP_HOST="localhost")
    response = public.post(
        "/accounts/login/", {"username": "security@acme.example", "password": PASSWORD}
    )
    assert response.status_code == 302
    response = public.post("/go/acme/")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("http://acme.localhost:")
    path = location.split(":", 2)[2].split("/", 1)[1]
    tenant = Client(HTTP_HOST="acme.localhost")
    landed = tenant.get("/" + path)
    assert landed.status_code == 302 and landed["Location"] == "/"
    assert b"Security" in tenant.get("/").content
    # The ticket is single-use.
    again = Client(HTTP_HOST="acme.localhost").get("/" + path)
    assert again["Location"].startswith("/accounts/login/")


def test_the_picker_refuses_to_enter_a_tenant_the_user_is_not_in(client_for):
    response = client_for(None, email="operator@acme.example").post("/go/globex/")
    assert response.status_code == 403
