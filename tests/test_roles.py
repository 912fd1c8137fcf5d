"""Who may open which page and call which API: the role matrix and the token scopes.

The expectations are written out as tables here, on purpose, instead of being derived from
`tenants.roles.ROLE_PERMS`: a change to the roles must show up as a failing test.
"""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from tenants.models import ApiToken, Membership
from tests.factories import ApiTokenFactory, MembershipFactory
from tests.helpers import bearer, client_on, send_json

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

# Links on the tenant home page (navigation and tiles) -> the roles that see them: a role sees a
# link exactly when it may open the page.
HOME_LINKS: dict[str, set[str]] = {page: who for page, who in PAGE_ACCESS.items() if page != "/"}

PAGE_CASES = [(role, page) for page in PAGE_ACCESS for role in ROLES]
API_CASES = [(role, method, path) for (method, path) in API_ACCESS for role in ROLES]


def _probe_dashboards(tenant) -> int:
    from dashboards.models import Dashboard

    with tenant_context(tenant):
        return Dashboard.objects.filter(title="Role matrix probe").count()


def _call(client, method: str, path: str, **headers):
    if method == "GET":
        return client.get(path, **headers)
    probe = {"title": "Role matrix probe", "description": "created by a role test"}
    return send_json(client, "post", path, probe, **headers)


@pytest.mark.parametrize(("role", "page"), PAGE_CASES)
def test_each_role_opens_exactly_the_pages_its_role_allows(member_client, acme, role, page):
    response = member_client(acme, role).get(page)
    expected = 200 if role in PAGE_ACCESS[page] else 403
    assert response.status_code == expected, (
        f"{role} on {page}: got {response.status_code}, expected {expected}"
        f" (Location: {response.get('Location')})"
    )


@pytest.mark.parametrize(("role", "method", "path"), API_CASES)
def test_each_role_calls_exactly_the_api_its_role_allows(member_client, acme, role, method, path):
    response = _call(member_client(acme, role), method, path)
    allowed = role in API_ACCESS[(method, path)]
    expected = (201 if method == "POST" else 200) if allowed else 403
    assert response.status_code == expected, (
        f"{role} {method} {path}: got {response.status_code}, expected {expected}:"
        f" {response.content[:300]!r}"
    )
    if method == "POST":
        assert _probe_dashboards(acme) == (1 if allowed else 0)


@pytest.mark.parametrize("role", ROLES)
def test_the_home_page_shows_only_the_links_the_role_may_use(member_client, acme, role):
    response = member_client(acme, role).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for href, roles in HOME_LINKS.items():
        present = f'href="{href}"' in html
        assert present == (role in roles), f"{role}: link to {href} present={present}"


def test_an_executive_sees_no_alert_rules_link(member_client, acme):
    html = member_client(acme, "executive").get("/").content.decode()
    assert "Alert rules" not in html
    assert "Dashboards" in html


def test_an_operator_sees_the_alert_rules_link(member_client, acme):
    html = member_client(acme, "operator").get("/").content.decode()
    assert "Alert rules" in html
    assert 'href="/members/"' not in html


# ---- tokens ------------------------------------------------------------------------------------


def _secret(tenant, scopes: list[str]) -> str:
    _, secret = ApiTokenFactory(tenant=tenant, scopes=scopes)
    return secret


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
def test_a_token_may_do_exactly_what_its_scopes_allow(acme, scopes, method, path, expected):
    response = _call(client_on("acme"), method, path, **bearer(_secret(acme, scopes)))
    assert response.status_code == expected, (
        f"{scopes} {method} {path}: got {response.status_code}: {response.content[:300]!r}"
    )
    if method == "POST":
        assert _probe_dashboards(acme) == (1 if expected == 201 else 0)


ALL_SCOPES = ["read", "write", "ingest", "webhook"]


@pytest.mark.parametrize("scopes", [["read"], ["write"], ALL_SCOPES])
def test_no_token_can_list_or_create_tokens(acme, scopes):
    client = client_on("acme")
    headers = bearer(_secret(acme, scopes))
    before = ApiToken.objects.filter(tenant=acme).count()
    assert client.get("/api/v1/tokens/", **headers).status_code == 403
    minted = {"name": "minted by a token", "scopes": ["read"]}
    created = send_json(client, "post", "/api/v1/tokens/", minted, **headers)
    assert created.status_code == 403
    assert ApiToken.objects.filter(tenant=acme).count() == before


def test_no_token_can_revoke_a_token(acme):
    victim, _ = ApiTokenFactory(tenant=acme, name="victim")
    headers = bearer(_secret(acme, ALL_SCOPES))
    response = client_on("acme").delete(f"/api/v1/tokens/{victim.public_id}/", **headers)
    assert response.status_code == 403
    victim.refresh_from_db()
    assert victim.revoked_at is None


@pytest.mark.parametrize("scopes", [["read"], ["write"], ALL_SCOPES])
def test_no_token_can_manage_members(acme, scopes):
    client = client_on("acme")
    headers = bearer(_secret(acme, scopes))
    operator = MembershipFactory(tenant=acme, role="operator")

    invite = send_json(
        client,
        "post",
        "/api/v1/members/",
        {"email": "token-invited@example.com", "role": "admin"},
        **headers,
    )
    member_path = f"/api/v1/members/{operator.public_id}/"
    promote = send_json(client, "patch", member_path, {"role": "admin"}, **headers)
    remove = client.delete(member_path, **headers)

    assert (invite.status_code, promote.status_code, remove.status_code) == (403, 403, 403)
    operator.refresh_from_db()
    assert operator.role == "operator"
    assert not Membership.objects.filter(user__email="token-invited@example.com").exists()
