"""Bad input on every member, token, settings and dashboard write: a 400 naming the field, on the
page (by its label) and in the API (by its name), and nothing written. Unusual but valid input
(long e-mail addresses, any script in a name) is accepted."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django_tenants.utils import schema_context

from dashboards.models import Dashboard
from tenants import audit, services
from tenants.accounts.users import username_for
from tenants.api.serializers import MemberRemovalSerializer
from tenants.models import ApiToken, AuditEvent, Membership, Tenant
from tests.conftest import submit_token_form
from tests.helpers import send_json

# A valid address of 160 characters: longer than the username column (150), within RFC limits
# (local part <= 64, labels <= 63, address <= 254).
LONG_EMAIL = f"{'a' * 60}@{'b' * 60}.{'c' * 30}.example"
assert len(LONG_EMAIL) == 160

TEXT = {
    "nul": "bad\x00name",
    "10000 chars": "x" * 10_000,
    "control U+0001": "bad\x01name",
    "delete U+007F": "bad\x7fname",
    "right-to-left override": "invoice\u202egpj.exe",
}
CHOICE = {
    "nul": "ad\x00min",
    "10000 chars": "a" * 10_000,
    "control U+0001": "\x01admin",
    "delete U+007F": "admin\x7f",
    "Cyrillic look-alike": "\u0430dmin",  # "аdmin": the first letter is Cyrillic
}
EMAIL = {
    "nul": "new\x00person@example.com",
    "10000 chars": "a" * 10_000 + "@example.com",
    "over 254 chars": f"{'a' * 60}@{'b' * 60}.{'c' * 60}.{'d' * 60}.{'e' * 60}.example",
    "control U+0001": "new\x01person@example.com",
    "delete U+007F": "new.person\x7f@example.com",
    "Cyrillic look-alike before @": "\u0430dmin@example.com",
    "Cyrillic letter in the domain": "admin@\u0430cme.example",
    "not an address": "not-an-email",
}
SCOPE = {**CHOICE, "Cyrillic look-alike": "r\u0435ad"}  # "rеad": a Cyrillic "е"


def _member(tenant, email: str) -> Membership:
    return Membership.objects.select_related("user").get(tenant=tenant, user__email=email)


def _dashboard_id(slug: str = "acme") -> str:
    with schema_context(slug):
        return str(Dashboard.objects.order_by("pk").first().public_id)


def _state(tenant) -> tuple:
    """Everything a refused write must leave as it was."""
    with schema_context(tenant.schema_name):
        dashboards = sorted(Dashboard.objects.values_list("title", "description"))
    return (
        get_user_model().objects.count(),
        sorted(Membership.objects.filter(tenant=tenant).values_list("user__email", "role")),
        sorted(ApiToken.objects.filter(tenant=tenant).values_list("name", "revoked_at")),
        AuditEvent.objects.count(),
        Tenant.objects.get(pk=tenant.pk).name,
        dashboards,
    )


# ---- one sender per write: (client, field, value) -> response --------------------------------

Sender = Callable[[Client, str, object], object]


def _invite_page(client, field, value):
    return client.post(
        "/members/", {"email": "ok.person@example.com", "role": "operator", field: value}
    )


def _invite_api(client, field, value):
    data = {"email": "ok.person@example.com", "role": "operator", field: value}
    return send_json(client, "post", "/api/v1/members/", data)


def _executive() -> Membership:
    return Membership.objects.get(tenant__schema_name="acme", user__email="executive@acme.example")


def _role_page(client, field, value):
    return client.post(f"/members/{_executive().public_id}/role/", {field: value})


def _role_api(client, field, value):
    return send_json(client, "patch", f"/api/v1/members/{_executive().public_id}/", {field: value})


def _remove_page(client, field, value):
    return client.post(f"/members/{_executive().public_id}/remove/", {field: [value]})


def _settings_page(client, field, value):
    return client.post("/settings/", {field: value})


def _token_page(client, field, value):
    data = {"name": "ok", "scopes": ["read"]}
    data[field] = [value] if field == "scopes" else value
    return submit_token_form(client, data)


def _token_api(client, field, value):
    data = {"name": "ok", "scopes": ["read"]}
    data[field] = [value] if field == "scopes" else value
    return send_json(client, "post", "/api/v1/tokens/", data)


def _dashboard_create_page(client, field, value):
    return client.post("/dashboards/", {"title": "ok", "description": "", field: value})


def _dashboard_edit_page(client, field, value):
    data = {"title": "ok", "description": "", field: value}
    return client.post(f"/dashboards/{_dashboard_id()}/", data)


def _dashboard_create_api(client, field, value):
    return send_json(client, "post", "/api/v1/dashboards/", {"title": "ok", field: value})


def _dashboard_edit_api(client, field, value):
    return send_json(client, "patch", f"/api/v1/dashboards/{_dashboard_id()}/", {field: value})


def _cases(sender: Sender, field: str, label: str | None, values: dict[str, object]):
    """pytest params: `label` None means an API sender (errors keyed by `field`)."""
    return [
        pytest.param(sender, field, label, value, id=f"{sender.__name__[1:]}-{field}-{name}")
        for name, value in values.items()
    ]


BAD_WRITES = [
    *_cases(_invite_page, "email", "E-mail", EMAIL),
    *_cases(_invite_page, "role", "Role", CHOICE),
    *_cases(_invite_api, "email", None, EMAIL),
    *_cases(_invite_api, "role", None, CHOICE),
    *_cases(_role_page, "role", "Role", CHOICE),
    *_cases(_role_api, "role", None, CHOICE),
    *_cases(_remove_page, "rotate_tokens", "Rotate", CHOICE),
    *_cases(_remove_page, "revoke_tokens", "Revoke", CHOICE),
    *_cases(_settings_page, "name", "Name", TEXT),
    *_cases(_token_page, "name", "Name", TEXT),
    *_cases(_token_page, "scopes", "Scopes", SCOPE),
    *_cases(_token_api, "name", None, TEXT),
    *_cases(_token_api, "scopes", None, SCOPE),
    *_cases(_dashboard_create_page, "title", "Title", TEXT),
    *_cases(_dashboard_create_page, "description", "Description", TEXT),
    *_cases(_dashboard_edit_page, "title", "Title", TEXT),
    *_cases(_dashboard_edit_page, "description", "Description", TEXT),
    *_cases(_dashboard_create_api, "title", None, TEXT),
    *_cases(_dashboard_create_api, "description", None, TEXT),
    *_cases(_dashboard_edit_api, "title", None, TEXT),
    *_cases(_dashboard_edit_api, "description", None, TEXT),
]


_ALERT_RE = re.compile(r'<p class="error" role="alert"[^>]*>(.*?)</p>', re.S)


@pytest.mark.parametrize(("send", "field", "label", "value"), BAD_WRITES)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    client_for, acme, send, field, label, value
):
    admin = client_for("acme", "admin")
    before = _state(acme)

    response = send(admin, field, value)

    assert response.status_code == 400, response.content[:300]
    body = response.content.decode()
    if label is None:
        errors = response.json()
        assert list(errors) == [field], errors
        assert all(isinstance(message, str) and message for message in errors[field])
        reasons = " ".join(errors[field])
    else:
        reasons = " ".join(_ALERT_RE.findall(body))
        assert f"{label}: " in reasons
    # The reason never repeats the input: no control characters, no 10,000-character echo.
    assert not re.search(r"[\x00-\x1f\x7f]", reasons)
    assert "x" * 300 not in reasons and "a" * 300 not in reasons
    assert _state(acme) == before


@pytest.mark.parametrize(
    ("send", "field"),
    [
        (_invite_api, "email"),
        (_token_api, "name"),
        (_dashboard_create_api, "title"),
        (_dashboard_edit_api, "description"),
    ],
)
def test_a_lone_surrogate_in_json_is_a_400_not_a_server_error(client_for, acme, send, field):
    admin = client_for("acme", "admin")
    before = _state(acme)
    # JSON may escape a UTF-16 half ("\ud800") that no UTF-8 column can store; the parser
    # refuses the body before any field is read.
    response = send(admin, field, "bad\ud800")
    assert response.status_code == 400
    assert "surrogate" in response.json()["detail"]
    assert _state(acme) == before


@pytest.mark.parametrize(
    ("send", "field", "value"),
    [
        (_invite_api, "email", ["a@example.com"]),
        (_invite_api, "role", 5),
        (_token_api, "name", {"text": "x"}),
        (_token_api, "scopes", "read"),
        (_dashboard_create_api, "title", True),
    ],
)
def test_json_values_of_the_wrong_type_are_a_400_naming_the_field(
    client_for, acme, send, field, value
):
    admin = client_for("acme", "admin")
    before = _state(acme)
    data = {"email": "ok@example.com", "role": "operator", "name": "ok", "scopes": ["read"]}
    data["title"] = "ok"
    data[field] = value
    path, method = {
        _invite_api: ("/api/v1/members/", "post"),
        _token_api: ("/api/v1/tokens/", "post"),
        _dashboard_create_api: ("/api/v1/dashboards/", "post"),
    }[send]
    response = send_json(admin, method, path, data)
    assert response.status_code == 400
    assert field in response.json()
    assert _state(acme) == before


def test_a_body_that_is_not_an_object_is_a_400(client_for, acme):
    admin = client_for("acme", "admin")
    before = _state(acme)
    for path in ("/api/v1/members/", "/api/v1/tokens/", "/api/v1/dashboards/"):
        response = send_json(admin, "post", path, ["email", "role"])
        assert response.status_code == 400, path
    assert _state(acme) == before


def test_json_nested_beyond_the_parser_is_a_400_not_a_server_error(client_for, acme):
    admin = client_for("acme", "admin")
    before = _state(acme)
    body = "[" * 100_000 + "]" * 100_000
    # Endpoints that read the body: each app's API parses it the same way.
    for path in ("/api/v1/dashboards/", "/api/v1/rule-groups/"):
        response = admin.post(path, body, content_type="application/json")
        assert response.status_code == 400, path
        assert "nested too deeply" in response.json()["detail"]
    assert _state(acme) == before


# ---- the removal form's API shape -------------------------------------------------------------


def test_the_removal_serializer_refuses_what_the_page_refuses(acme):
    tokens = [
        services.create_token(
            tenant=acme, name=name, scopes=["read"], actor=audit.Actor.system("test")
        ).token
        for name in ("one", "two")
    ]
    ok = str(tokens[0].public_id)

    def check(data):
        serializer = MemberRemovalSerializer(data=data, context={"form_kwargs": {"tokens": tokens}})
        serializer.is_valid()
        return serializer

    assert check({"rotate_tokens": [ok]}).validated_data == {
        "rotate_tokens": [ok],
        "revoke_tokens": [],
    }
    assert set(check({"rotate_tokens": [ok], "revoke_tokens": [ok]}).errors) == {"revoke_tokens"}
    for bad in CHOICE.values():
        assert set(check({"revoke_tokens": [bad]}).errors) == {"revoke_tokens"}
    assert set(check({"rotate_tokens": ok}).errors) == {"rotate_tokens"}  # not a list


# ---- unusual but valid input is accepted ------------------------------------------------------


def test_a_160_character_address_is_invited_on_the_page_and_can_sign_in(client_for, acme):
    admin = client_for("acme", "admin")

    response = admin.post("/members/", {"email": LONG_EMAIL, "role": "operator"})

    assert response.status_code == 302, response.content[:500]
    membership = _member(acme, LONG_EMAIL)
    user = membership.user
    assert user.email == LONG_EMAIL
    assert len(user.username) <= 150 and user.username == username_for(LONG_EMAIL)
    assert LONG_EMAIL in admin.get("/members/").content.decode()
    # Sign-in finds accounts by e-mail, so the shortened username never matters to the person.
    user.set_password("Long-Address-Pass-42")
    user.save()
    signed_in = Client(HTTP_HOST="acme.localhost").post(
        "/accounts/login/", {"username": LONG_EMAIL.upper(), "password": "Long-Address-Pass-42"}
    )
    assert signed_in.status_code == 302


def test_a_160_character_address_is_invited_through_the_api(client_for, acme):
    response = send_json(
        client_for("acme", "admin"),
        "post",
        "/api/v1/members/",
        {"email": LONG_EMAIL, "role": "executive"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["email"] == LONG_EMAIL
    assert _member(acme, LONG_EMAIL).role == "executive"


def test_a_160_character_address_is_added_in_the_tenant_admin(client_for, acme):
    response = client_for("acme", "admin").post(
        "/admin/tenants/membership/add/", {"email": LONG_EMAIL, "role": "security"}
    )
    assert response.status_code == 302, response.content[:500]
    assert _member(acme, LONG_EMAIL).role == "security"


def test_two_long_addresses_that_differ_only_at_the_end_get_two_accounts(client_for, acme):
    admin = client_for("acme", "admin")
    first, second = LONG_EMAIL, LONG_EMAIL.replace("c.example", "d.example")
    assert first[:150] == second[:150]

    for email in (first, second):
        assert admin.post("/members/", {"email": email, "role": "operator"}).status_code == 302

    users = get_user_model().objects.filter(email__in=[first, second])
    assert len({user.username for user in users}) == 2


def test_addresses_are_stored_trimmed_and_in_lower_case(client_for, acme):
    response = client_for("acme", "admin").post(
        "/members/", {"email": "  Mixed.Case@Example.COM ", "role": "executive"}
    )
    assert response.status_code == 302
    assert _member(acme, "mixed.case@example.com").role == "executive"


def test_names_in_any_script_are_accepted_and_stored_in_nfc(client_for, acme):
    admin = client_for("acme", "admin")
    decomposed = "De\u0301ploiement \U0001f680 \u6771\u4eac"  # "Déploiement 🚀 東京", é as e + ´

    token = submit_token_form(admin, {"name": decomposed, "scopes": ["read"]})
    renamed = admin.post(
        "/settings/", {"name": "\u0410\u043a\u043c\u0435 \u041a\u043e\u0440\u043f"}
    )
    dashboard = send_json(
        admin,
        "post",
        "/api/v1/dashboards/",
        {"title": "\u00e9quipe \u0430dmin", "description": "line one\r\nline two\ttabbed"},
    )

    assert token.status_code == 302
    stored = ApiToken.objects.get(tenant=acme, name__startswith="D").name
    assert stored == unicodedata.normalize("NFC", decomposed) and "\u0301" not in stored
    assert renamed.status_code == 302
    assert (
        Tenant.objects.get(pk=acme.pk).name == "\u0410\u043a\u043c\u0435 \u041a\u043e\u0440\u043f"
    )
    assert dashboard.status_code == 201, dashboard.content
    assert dashboard.json()["title"] == "\u00e9quipe \u0430dmin"
    assert dashboard.json()["description"] == "line one\nline two\ttabbed"


def test_a_refused_page_shows_labels_not_field_names(client_for, acme):
    admin = client_for("acme", "admin")
    html = admin.post("/members/", {"email": "nope", "role": "root"}).content.decode()
    assert "E-mail: Enter a valid e-mail address" in html
    assert "Role: Choose one of: executive, operator, security, admin." in html
    assert not re.search(r"\bemail: ", html) and "role: " not in html


def test_forms_and_services_refuse_a_lone_surrogate_from_any_caller(acme):
    from tenants.forms import TokenForm

    form = TokenForm(data={"name": "bad\ud800", "scopes": ["read"]})
    assert not form.is_valid() and list(form.errors) == ["name"]
    with pytest.raises(ValidationError) as refused:
        services.create_token(
            tenant=acme, name="bad\ud800", scopes=["read"], actor=audit.Actor.system("test")
        )
    assert list(refused.value.message_dict) == ["name"]


# ---- dashboard pages ---------------------------------------------------------------------------


def test_an_editor_changes_a_dashboard_on_its_page_and_lands_back_on_it(client_for, acme):
    operator = client_for("acme", "operator")
    dashboard_id = _dashboard_id()
    path = f"/dashboards/{dashboard_id}/"

    response = operator.post(path, {"title": "  Checkout  ", "description": "p95\r\nlatency"})

    assert response.status_code == 302 and response["Location"] == path
    page = operator.get(path).content.decode()
    assert "Dashboard saved." in page and "Checkout" in page
    with schema_context("acme"):
        saved = Dashboard.objects.get(public_id=dashboard_id)
    assert (saved.title, saved.description) == ("Checkout", "p95\nlatency")
    event = AuditEvent.objects.filter(tenant=acme, action="dashboard.updated").order_by("-seq")
    assert event.first().after == {"title": "Checkout", "description": "p95\nlatency"}


def test_an_executive_sees_no_edit_form_and_cannot_post_one(client_for, acme):
    executive = client_for("acme", "executive")
    path = f"/dashboards/{_dashboard_id()}/"
    before = _state(acme)

    page = executive.get(path)
    refused = executive.post(path, {"title": "Hijacked", "description": ""})
    created = executive.post("/dashboards/", {"title": "Hijacked", "description": ""})

    assert page.status_code == 200 and 'name="title"' not in page.content.decode()
    assert (refused.status_code, created.status_code) == (403, 403)
    assert _state(acme) == before
