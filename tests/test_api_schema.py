"""The API's contract: the OpenAPI schema, the index, JSON-only answers, permissions per action,
UUID lookups, the error shapes, and the decision that a `write` token does not read."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django_tenants.utils import tenant_context

from tests.conftest import host_of
from tests.helpers import bearer

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _json(client: Client, method: str, path: str, data=None, **extra):
    body = data if isinstance(data, str) else json.dumps(data if data is not None else {})
    return getattr(client, method)(path, body, content_type="application/json", **extra)


@pytest.fixture
def token_with(acme):
    """`token_with("write")`: the secret of a new token of acme with those scopes."""
    from tenants import audit, services

    def make(*scopes: str) -> str:
        actor = audit.Actor.system("tests")
        issued = services.create_token(
            tenant=acme, name="-".join(scopes), scopes=list(scopes), actor=actor
        )
        return issued.secret

    return make


def _schema_document(tmp_path) -> dict:
    target = tmp_path / "schema.yml"
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--urlconf",
        "portal.urls_tenant",
        "--file",
        str(target),
    )
    return yaml.safe_load(target.read_text())


# --- The schema --------------------------------------------------------------------------------


def test_the_schema_generates_cleanly(tmp_path):
    document = _schema_document(tmp_path)
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/", "/api/v1/members/", "/api/v1/tokens/{id}/rotate/"):
        assert path in document["paths"], path
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_documents_its_error_statuses(tmp_path):
    document = _schema_document(tmp_path)
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) >= 14
    for path, method, operation in operations:
        responses = operation["responses"]
        assert {"401", "403"} <= set(responses), (method, path)
        if "{id}" in path:
            assert "404" in responses, (method, path)
        if method in ("post", "patch", "delete") or any(
            p["in"] == "query" for p in operation.get("parameters", [])
        ):
            assert "400" in responses, (method, path)
        for status in {"400", "401", "403", "404"} & set(responses):
            body = responses[status].get("content", {}).get("application/json", {})
            assert "schema" in body, ("undocumented error body", status, method, path)
    schemas = document["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["detail"]
    for path, method in [("/api/v1/dashboards/", "post"), ("/api/v1/members/{id}/", "patch")]:
        shape = document["paths"][path][method]["responses"]["400"]["content"]
        assert shape["application/json"]["schema"]["$ref"].endswith("/ValidationErrorResponse")


def test_a_role_change_documents_role_as_optional_and_an_empty_patch_changes_nothing(
    tmp_path, client_for, acme
):
    from tenants.models import Membership

    document = _schema_document(tmp_path)
    patch = document["paths"]["/api/v1/members/{id}/"]["patch"]
    ref = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "role" in body_schema["properties"]
    assert "role" not in body_schema.get("required", [])

    executive = Membership.objects.get(tenant=acme, user__email="executive@acme.example")
    response = _json(
        client_for("acme", "admin"), "patch", f"/api/v1/members/{executive.public_id}/"
    )
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "executive"
    executive.refresh_from_db()
    assert executive.role == "executive"


def test_a_member_is_served_the_openapi_document(client_for):
    response = client_for("acme", "executive").get("/api/schema/?format=json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {"/api/v1/members/", "/api/v1/dashboards/"}
    assert "get" in document["paths"]["/api/v1/members/"]


def test_the_docs_are_for_members_only(client_for):
    assert client_for("acme", "executive").get("/api/schema/").status_code == 200
    assert client_for("acme", "executive").get("/api/docs/").status_code == 200
    assert client_for("acme").get("/api/schema/").status_code in (401, 403)
    assert client_for("acme", email="admin@globex.example").get("/api/docs/").status_code == 403


# --- The index, JSON only, not found -----------------------------------------------------------


def test_the_api_root_is_an_index_of_its_resources(client_for):
    response = client_for("acme", "executive").get("/api/v1/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    base = f"http://{host_of('acme')}"
    assert body["resources"]["members"] == f"{base}/api/v1/members/"
    assert body["resources"]["dashboards"] == f"{base}/api/v1/dashboards/"
    assert body["resources"]["audit-events"] == f"{base}/api/v1/audit-events/"
    assert (body["schema"], body["docs"]) == (f"{base}/api/schema/", f"{base}/api/docs/")


def test_the_index_is_for_the_tenants_members_and_read_tokens(client_for, token_with):
    assert client_for("acme").get("/api/v1/").status_code == 401
    outsider = client_for("acme", email="admin@globex.example").get("/api/v1/")
    assert outsider.status_code == 403
    assert outsider.json() == {"detail": "You do not have access to this in this tenant."}
    reader = client_for("acme").get("/api/v1/", **bearer(token_with("read")))
    assert reader.status_code == 200


def test_no_browsable_html_is_ever_served(client_for):
    client = client_for("acme", "operator")
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for path in ("/api/v1/", "/api/v1/dashboards/", f"/api/v1/dashboards/{UNKNOWN_ID}/"):
        response = client.get(path, HTTP_ACCEPT=browser_accept)
        assert response["Content-Type"] == "application/json", path
    assert client.get("/api/v1/dashboards/?format=api").status_code == 404


def test_an_unknown_path_under_the_api_is_a_json_404(client_for):
    client = client_for("acme", "operator")
    response = client.get("/api/v1/no-such-thing/")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    posted = client.post("/api/v1/no-such-thing/", "{}", content_type="application/json")
    assert posted.status_code == 404 and posted["Content-Type"] == "application/json"
    hint = client.get("/api/v1/dashboards").json()["detail"]
    assert hint.endswith("/api/v1/dashboards/")


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/dashboards/{UNKNOWN_ID}/",
        "/api/v1/dashboards/not-a-uuid/",
        "/api/v1/dashboards/1/",
        "/api/v1/dashboards/0.5/",
        "/api/v1/members/not-a-uuid/",
        "/api/v1/audit-events/%00/",
    ],
)
def test_an_absent_or_malformed_id_is_the_same_404(client_for, path):
    response = client_for("acme", "admin").get(path)
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


@pytest.mark.parametrize("action", ["rotate", "invite-again"])
def test_an_action_on_a_malformed_id_is_a_404(client_for, action):
    resource = "tokens" if action == "rotate" else "members"
    response = client_for("acme", "admin").post(f"/api/v1/{resource}/nope/{action}/")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


def test_a_method_a_resource_does_not_have_is_a_405_with_allow(client_for):
    client = client_for("acme", "admin")
    response = client.put("/api/v1/dashboards/", "{}", content_type="application/json")
    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert client.options("/api/v1/members/").status_code == 405


# --- Permissions per action --------------------------------------------------------------------


def _request_for(tenant, user):
    return SimpleNamespace(tenant=tenant, user=user, auth=None, method="POST")


def test_an_action_missing_from_action_permissions_is_refused(acme):
    from django.contrib.auth import get_user_model

    from tenants.api.permissions import TenantPermission
    from tenants.roles import Perm

    admin = get_user_model().objects.get(email="admin@acme.example")
    view = SimpleNamespace(
        action_map={"post": "create"},
        action_permissions={"list": Perm.VIEW_TENANT, "create": Perm.VIEW_TENANT},
        metadata_class=None,
    )
    permission = TenantPermission()
    view.action = "create"
    assert permission.has_permission(_request_for(acme, admin), view) is True
    view.action = "acknowledge"  # routed, but declared nowhere
    assert permission.has_permission(_request_for(acme, admin), view) is False


def test_each_action_asks_for_its_own_permission(acme):
    from django.contrib.auth import get_user_model

    from tenants.api.permissions import TenantPermission
    from tenants.roles import Perm

    security = get_user_model().objects.get(email="security@acme.example")
    view = SimpleNamespace(
        action_map={"get": "list", "post": "acknowledge"},
        # Operators see incidents but not security ones: the two actions split them.
        action_permissions={
            "list": Perm.VIEW_INCIDENTS,
            "acknowledge": Perm.VIEW_SECURITY_INCIDENTS,
        },
        metadata_class=None,
    )
    operator = get_user_model().objects.get(email="operator@acme.example")
    permission = TenantPermission()
    view.action = "acknowledge"
    assert permission.has_permission(_request_for(acme, security), view) is True
    assert permission.has_permission(_request_for(acme, operator), view) is False
    view.action = "list"
    assert permission.has_permission(_request_for(acme, operator), view) is True


def test_a_tenant_schema_resource_refuses_to_read_another_tenants_schema(acme, globex):
    from rest_framework.test import APIRequestFactory

    from dashboards.api.views import DashboardViewSet

    view = DashboardViewSet()
    view.request = APIRequestFactory().get("/api/v1/dashboards/")
    view.request.tenant = globex
    view.kwargs, view.format_kwarg = {}, None
    with tenant_context(acme), pytest.raises(RuntimeError, match="globex"):
        view.get_queryset()


# --- Tokens: `write` does not imply read -------------------------------------------------------


def test_a_write_token_writes_and_sees_what_it_wrote_but_reads_nothing(acme, token_with):
    from dashboards.models import Dashboard

    api, auth = Client(HTTP_HOST=host_of("acme")), bearer(token_with("write"))
    created = _json(api, "post", "/api/v1/dashboards/", {"title": "Pushed by CI"}, **auth)
    assert created.status_code == 201
    assert created.json()["title"] == "Pushed by CI"
    path = f"/api/v1/dashboards/{created.json()['id']}/"
    changed = _json(api, "patch", path, {"description": "from the pipeline"}, **auth)
    assert changed.status_code == 200
    assert changed.json()["description"] == "from the pipeline"
    assert api.get("/api/v1/dashboards/", **auth).status_code == 403
    assert api.get(path, **auth).status_code == 403
    assert api.get("/api/v1/", **auth).status_code == 403
    with tenant_context(acme):
        assert Dashboard.objects.filter(title="Pushed by CI").count() == 1


def test_a_read_and_write_token_reads_back_what_it_wrote(token_with):
    api, auth = Client(HTTP_HOST=host_of("acme")), bearer(token_with("read", "write"))
    created = _json(api, "post", "/api/v1/dashboards/", {"title": "Read back"}, **auth)
    assert created.status_code == 201
    fetched = api.get(f"/api/v1/dashboards/{created.json()['id']}/", **auth)
    assert (fetched.status_code, fetched.json()["title"]) == (200, "Read back")


def test_a_read_token_cannot_write(token_with):
    api, auth = Client(HTTP_HOST=host_of("acme")), bearer(token_with("read"))
    refused = _json(api, "post", "/api/v1/dashboards/", {"title": "Nope"}, **auth)
    assert refused.status_code == 403


# --- Bad input: a 400 naming the parameter, never a 500 ------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("action=token.%00", "action"),
        ("actor=" + "x" * 101, "actor"),
        ("text=%00", "text"),
        ("date_from=yesterday", "date_from"),
        ("date_to=2026-02-30", "date_to"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=99999999999999999999", "offset"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(client_for, query, parameter):
    response = client_for("acme", "admin").get(f"/api/v1/audit-events/?{query}")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [parameter]
    assert all(isinstance(reason, str) for reason in response.json()[parameter])


def test_filters_within_limits_narrow_the_trail(client_for, acme, token_with):
    token_with("read")  # records a token.created event
    client = client_for("acme", "admin")
    rows = client.get("/api/v1/audit-events/?action=token.&actor=%20tests%20").json()["results"]
    assert rows and {row["action"] for row in rows} == {"token.created"}
    later = client.get("/api/v1/audit-events/?date_from=2999-01-01").json()
    assert later["count"] == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "JSON parse error"),
        ('{"title": "\\ud800"}', "unpaired surrogate"),
    ],
)
def test_an_unreadable_body_is_a_400_with_the_reason(client_for, body, expected):
    response = _json(client_for("acme", "operator"), "post", "/api/v1/dashboards/", body)
    assert response.status_code == 400
    assert expected in response.json()["detail"]


def test_null_for_a_field_that_is_not_nullable_is_refused(client_for):
    body = {"title": "Kept", "description": None}
    response = _json(client_for("acme", "operator"), "post", "/api/v1/dashboards/", body)
    assert response.status_code == 400
    assert response.json() == {"description": ["This field may not be null."]}


def test_validation_errors_come_as_field_lists_or_one_detail():
    from tenants.api.errors import validation_body

    assert validation_body({"scopes": {1: ["Unknown scope."]}}) == {
        "scopes": ["Item 1: Unknown scope."]
    }
    assert validation_body({"title": ["Too long.", "Has a tab."]}) == {
        "title": ["Too long.", "Has a tab."]
    }
    assert validation_body(["Send a JSON object."]) == {"detail": "Send a JSON object."}
    assert validation_body({"detail": ["Malformed."]}) == {"detail": "Malformed."}


def test_a_service_refusal_is_a_400_in_the_documented_shape(client_for, acme):
    from tenants.models import Membership

    admin = Membership.objects.get(tenant=acme, user__email="admin@acme.example")
    client = client_for("acme", "admin")
    response = _json(client, "patch", f"/api/v1/members/{admin.public_id}/", {"role": "security"})
    assert response.status_code == 400
    assert response.json() == {"role": ["A tenant needs at least one admin."]}


def test_removing_a_member_can_rotate_and_revoke_their_tokens_in_one_step(client_for, acme):
    from django.contrib.auth import get_user_model

    from tenants import audit, services
    from tenants.models import ApiToken, Membership

    operator = get_user_model().objects.get(email="operator@acme.example")
    system = audit.Actor.system("tests")

    def token_by_operator(name: str) -> ApiToken:
        issued = services.create_token(
            tenant=acme, name=name, scopes=["read"], actor=system, created_by=operator
        )
        return issued.token

    kept, revoked = token_by_operator("exporter"), token_by_operator("old-script")
    membership = Membership.objects.get(tenant=acme, user=operator)
    body = {"rotate_tokens": [str(kept.public_id)], "revoke_tokens": [str(revoked.public_id)]}
    client = client_for("acme", "admin")
    response = _json(client, "post", f"/api/v1/members/{membership.public_id}/remove/", body)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    answer = response.json()
    assert answer["member"]["email"] == "operator@acme.example"
    assert [token["id"] for token in answer["revoked"]] == [str(revoked.public_id)]
    (replacement,) = answer["rotated"]
    assert replacement["name"] == "exporter" and replacement["secret"]
    assert not Membership.objects.filter(pk=membership.pk).exists()
    kept.refresh_from_db()
    revoked.refresh_from_db()
    assert kept.revoked_at is not None and revoked.revoked_at is not None
    fresh = Client(HTTP_HOST=host_of("acme"))
    assert fresh.get("/api/v1/", **bearer(replacement["secret"])).status_code == 200


def test_removal_refuses_tokens_the_member_did_not_create_and_changes_nothing(client_for, acme):
    from tenants.models import Membership

    membership = Membership.objects.get(tenant=acme, user__email="operator@acme.example")
    body = {"revoke_tokens": [UNKNOWN_ID]}
    client = client_for("acme", "admin")
    response = _json(client, "post", f"/api/v1/members/{membership.public_id}/remove/", body)
    assert response.status_code == 400
    assert list(response.json()) == ["revoke_tokens"]
    assert Membership.objects.filter(pk=membership.pk).exists()
