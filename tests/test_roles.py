"""Who may open which page and call which API: the role matrix and the token scopes.

The expectations are written out as tables here, on purpose, instead of being derived from
`tenants.roles.ROLE_PERMS`: a change to the roles must show up as a failing test.
"""

from __future__ import annotations

import json

import pytest
from django_tenants.utils import tenant_context

from tenants import audit, services
from tenants.models import ApiToken

ROLES = ["executive", "operator", "security", "admin"]

# page -> the roles that get 200; every other role gets 403.
PAGE_ACCESS: dict[str, set[str]] = {
    "/": {"executive", "operator", "security", "admin"},
    "/dashboards/": {"executive", "operator", "security", "admin"},
    "/alerts/rules/": {"operator", "security", "admin"},
    "/incidents/": {"operator", "security", "admin"},
    "/compliance/": {"executive", "operator", "security", "admin"},
    "/audit/": {"security", "admin"},
    "/members/": {"admin"},
    "/tokens/": {"admin"},
    "/admin/": {"admin"},
}

# (method, API path) -> the roles that succeed; every other role gets 403.
API_ACCESS: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/members/"): {"admin"},
    ("GET", "/api/v1/tokens/"): {"admin"},
    ("GET", "/api/v1/audit-events/"): {"security", "admin"},
    ("GET", "/api/v1/dashboards/"): {"executive", "operator", "security", "admin"},
    ("POST", "/api/v1/dashboards/"): {"operator", "admin"},
}

# Links on the tenant home page (navigation and tiles) -> the roles that see them.
HOME_LINKS: dict[str, set[str]] = {
    "/dashboards/": {"executive", "operator", "security", "admin"},
    "/alerts/rules/": {"operator", "security", "admin"},
    "/incidents/": {"operator", "security", "admin"},
    "/compliance/": {"executive", "operator", "security", "admin"},
    "/audit/": {"security", "admin"},
    "/members/": {"admin"},
    "/tokens/": {"admin"},
    "/admin/": {"admin"},
}

PAGE_CASES = [(role, page) for page in PAGE_ACCESS for role in ROLES]
API_CASES = [(role, method, path) for (method, path) in API_ACCESS for role in ROLES]


def _probe_dashboards(tenant) -> int:
    from dashboards.models import Dashboard

    with tenant_context(tenant):
        return Dashboard.objects.filter(title="Role matrix probe").count()


def _call(client, method: str, path: str, **headers):
    if method == "GET":
        return client.get(path, **headers)
    body = json.dumps({"title": "Role matrix probe", "description": "created by a role test"})
    return client.post(path, body, content_type="application/json", **headers)


@pytest.mark.parametrize(("role", "page"), PAGE_CASES)
def test_each_role_opens_exactly_the_pages_its_role_allows(client_for, role, page):
    response = client_for("acme", role).get(page)
    expected = 200 if role in PAGE_ACCESS[page] else 403
    assert response.status_code == expected, (
        f"{role} on {page}: got {response.status_code}, expected {expected}"
        f" (Location: {response.get('Location')})"
    )


@pytest.mark.parametrize(("role", "method", "path"), API_CASES)
def test_each_role_calls_exactly_the_api_its_role_allows(client_for, acme, role, method, path):
    response = _call(client_for("acme", role), method, path)
    allowed = role in API_ACCESS[(method, path)]
    expected = (201 if method == "POST" else 200) if allowed else 403
    assert response.status_code == expected, (
        f"{role} {method} {path}: got {response.status_code}, expected {expected}:"
        f" {response.content[:300]!r}"
    )
    if method == "POST":
        assert _probe_dashboards(acme) == (1 if allowed else 0)


@pytest.mark.parametrize("role", ROLES)
def test_the_home_page_shows_only_the_links_the_role_may_use(client_for, role):
    response = client_for("acme", role).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for href, roles in HOME_LINKS.items():
        present = f'href="{href}"' in html
        assert present == (role in roles), f"{role}: link to {href} present={present}"


def test_an_executive_sees_no_alert_rules_link(client_for):
    html = client_for("acme", "executive").get("/").content.decode()
    assert "Alert rules" not in html
    assert "Dashboards" in html


def test_an_operator_sees_the_alert_rules_link(client_for):
    html = client_for("acme", "operator").get("/").content.decode()
    assert "Alert rules" in html
    assert 'href="/members/"' not in html


# ---- tokens ------------------------------------------------------------------------------------


def _token(tenant, scopes: list[str]) -> str:
    issued = services.create_token(
        tenant=tenant,
        name=f"probe {'+'.join(scopes)}",
        scopes=scopes,
        actor=audit.Actor.system("role test"),
    )
    return issued.secret


def _bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


# (scopes, method, path) -> expected status.
TOKEN_ACCESS: list[tuple[list[str], str, str, int]] = [
    (["read"], "GET", "/api/v1/dashboards/", 200),
    (["read"], "GET", "/api/v1/members/", 200),
    (["read"], "GET", "/api/v1/audit-events/", 200),
    (["read"], "POST", "/api/v1/dashboards/", 403),
    (["write"], "GET", "/api/v1/dashboards/", 403),
    (["write"], "GET", "/api/v1/members/", 403),
    (["write"], "GET", "/api/v1/audit-events/", 403),
    (["write"], "POST", "/api/v1/dashboards/", 201),
    (["ingest"], "GET", "/api/v1/dashboards/", 403),
    (["webhook"], "GET", "/api/v1/dashboards/", 403),
]


@pytest.mark.parametrize(("scopes", "method", "path", "expected"), TOKEN_ACCESS)
def test_a_token_may_do_exactly_what_its_scopes_allow(
    client_for, acme, scopes, method, path, expected
):
    secret = _token(acme, scopes)
    response = _call(client_for("acme"), method, path, **_bearer(secret))
    assert response.status_code == expected, (
        f"{scopes} {method} {path}: got {response.status_code}: {response.content[:300]!r}"
    )
    if method == "POST":
        assert _probe_dashboards(acme) == (1 if expected == 201 else 0)


ALL_SCOPES = ["read", "write", "ingest", "webhook"]


@pytest.mark.parametrize("scopes", [["read"], ["write"], ALL_SCOPES])
def test_no_token_can_list_or_create_tokens(client_for, acme, scopes):
    client = client_for("acme")
    headers = _bearer(_token(acme, scopes))
    before = ApiToken.objects.filter(tenant=acme).count()
    assert client.get("/api/v1/tokens/", **headers).status_code == 403
    created = client.post(
        "/api/v1/tokens/",
        json.dumps({"name": "minted by a token", "scopes": ["read"]}),
        content_type="application/json",
        **headers,
    )
    assert created.status_code == 403
    assert ApiToken.objects.filter(tenant=acme).count() == before


def test_no_token_can_revoke_a_token(client_for, acme):
    victim = services.create_token(
        tenant=acme, name="victim", scopes=["read"], actor=audit.Actor.system("role test")
    ).token
    headers = _bearer(_token(acme, ALL_SCOPES))
    response = client_for("acme").delete(f"/api/v1/tokens/{victim.public_id}/", **headers)
    assert response.status_code == 403
    victim.refresh_from_db()
    assert victim.revoked_at is None


@pytest.mark.parametrize("scopes", [["read"], ["write"], ALL_SCOPES])
def test_no_token_can_manage_members(client_for, acme, scopes):
    from tenants.models import Membership

    client = client_for("acme")
    headers = _bearer(_token(acme, scopes))
    operator = Membership.objects.get(tenant=acme, user__email="operator@acme.example")

    invite = client.post(
        "/api/v1/members/",
        json.dumps({"email": "token-invited@example.com", "role": "admin"}),
        content_type="application/json",
        **headers,
    )
    promote = client.patch(
        f"/api/v1/members/{operator.public_id}/",
        json.dumps({"role": "admin"}),
        content_type="application/json",
        **headers,
    )
    remove = client.delete(f"/api/v1/members/{operator.public_id}/", **headers)

    assert (invite.status_code, promote.status_code, remove.status_code) == (403, 403, 403)
    operator.refresh_from_db()
    assert operator.role == "operator"
    assert not Membership.objects.filter(user__email="token-invited@example.com").exists()
