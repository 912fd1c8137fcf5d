"""The OpenAPI schema is generated without warnings and served to members."""

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
    text = target.read_text()
    for path in ("/api/v1/members/", "/api/v1/tokens/{id}/rotate/", "/api/v1/audit-events/"):
        assert path in text
    assert "bearerAuth" in text


def test_the_docs_are_for_members_only(client_for):
    assert client_for("acme", "executive").get("/api/schema/").status_code == 200
    assert client_for("acme", "executive").get("/api/docs/").status_code == 200
    assert client_for("acme").get("/api/schema/").status_code in (401, 403)
    assert client_for("acme", email="admin@globex.example").get("/api/docs/").status_code == 403
