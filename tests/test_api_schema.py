"""The OpenAPI schema is generated without warnings and served to members."""

import json

import yaml
from django.core.management import call_command


def test_the_schema_generates_cleanly(tmp_path):
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
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    for path in ("/api/v1/members/", "/api/v1/tokens/{id}/rotate/", "/api/v1/audit-events/"):
        assert path in document["paths"], path
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


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
