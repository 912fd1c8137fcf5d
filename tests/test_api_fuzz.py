"""The API answers generated requests as its OpenAPI schema says (a seeded schemathesis run).

Every operation of the served schema gets valid and invalid requests, and every answer is
checked: no server error, only documented statuses and content types, bodies matching their
schemas, invalid input refused and valid input not refused for its shape. Requests run in-process
inside the test's transaction, so whatever the run creates or removes is rolled back and no
e-mail is sent. A read+write token makes every call a token may make; a signed-in admin manages
members and tokens (no token can). Half of the valid requests that name an object name a real
one (the last admin, a member who joined, one who has not, a spare token...), so refusals of the
services are exercised too, not only "not found".
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.conftest import host_of

BASE_URL = f"http://{host_of('acme')}"
SEED = 20_260_101
# Random draws per operation, on top of the coverage phase's systematic cases (boundaries, each
# field made invalid, undeclared methods): about 2,600 requests, some 30 s of CPU in all.
EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
]
# Services check what no schema can say: valid PromQL, a date range that does not end before it
# starts, a tenant that keeps its last admin, an expiry in the future... Those refusals are
# documented 400s, so in general a request of a valid shape may get one. The operations listed
# here have a schema that states every rule of their input: for them, a request the schema calls
# valid must never be refused as bad input. (Add an operation once its schema says it all.)
SCHEMA_STATES_EVERY_RULE = [
    "GET /api/v1/",
    "GET /api/v1/audit-events/{id}/",
    "GET /api/v1/dashboards/",
    "POST /api/v1/dashboards/",
    "GET /api/v1/dashboards/{id}/",
    "PATCH /api/v1/dashboards/{id}/",
    "GET /api/v1/members/",
    "GET /api/v1/members/{id}/",
    "GET /api/v1/tokens/",
]
VALID_SHAPE_ANSWERS = ["2xx", "401", "403", "404", "409"]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
            # Credentials are the test's own (a token, or a session), never generated ones.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": [*VALID_SHAPE_ANSWERS, "400"]}
        },
        "operations": [
            {
                "include-name": SCHEMA_STATES_EVERY_RULE,
                "checks": {"positive_data_acceptance": {"expected-statuses": VALID_SHAPE_ANSWERS}},
            }
        ],
    }
)


class InTestTransaction:
    """Django's WSGI application, keeping the test's connection (and its transaction) open.

    Django closes "old" connections around each request; inside a test transaction that would
    end the transaction. Django's test client does the same disconnecting.
    """

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


def generated_schema() -> dict[str, Any]:
    """The OpenAPI document of a tenant host, as /api/schema/ serves it (checked below)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator(urlconf="portal.urls_tenant").get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(generated_schema(), config=CONFIG)
schema.app = InTestTransaction()


def test_the_fuzzed_schema_is_the_served_one(client_for):
    response = client_for("acme", "executive").get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json() == generated_schema()


def _bearer(secret: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {secret}"}}


def _signed_in(client) -> dict[str, Any]:
    """A browser session on the tenant host: its cookies, and the CSRF header DRF asks for."""
    from werkzeug import Client

    csrf = secrets.token_hex(16)  # 32 characters: an unmasked CSRF secret
    browser = Client(schema.app)
    browser.set_cookie("sessionid", client.cookies["sessionid"].value, domain=host_of("acme"))
    browser.set_cookie("csrftoken", csrf, domain=host_of("acme"))
    return {"headers": {"X-CSRFToken": csrf}, "session": browser}


@pytest.fixture
def world(acme, client_for) -> dict[str, Any]:
    """Who calls, and the real objects valid requests may name (ids by path template)."""
    from django_tenants.utils import tenant_context

    from dashboards.models import Dashboard
    from tenants import audit, services
    from tenants.models import AuditEvent, Membership
    from tenants.roles import TokenScope

    system = audit.Actor.system("tests")
    caller = services.create_token(
        tenant=acme, name="fuzz", scopes=[TokenScope.READ, TokenScope.WRITE], actor=system
    )
    spare = services.create_token(tenant=acme, name="spare", scopes=["read"], actor=system)
    invited = services.add_member(
        tenant=acme, email="not.joined.yet@example.com", role="operator", actor=system
    )
    members = Membership.objects.filter(tenant=acme)
    member_ids = [
        members.get(user__email="admin@acme.example").public_id,  # the only admin
        members.get(user__email="executive@acme.example").public_id,
        invited.public_id,
    ]
    with tenant_context(acme):  # dashboards and incidents live in the tenant's schema
        dashboard_ids = [Dashboard.objects.values_list("public_id", flat=True).first()]
        incident_ids = _incidents()
    event_ids = [AuditEvent.objects.filter(tenant=acme).values_list("public_id", flat=True)[0]]
    return {
        "token": _bearer(caller.secret),
        "admin": _signed_in(client_for("acme", "admin")),
        "ids": {
            "/api/v1/members/{id}/": member_ids,
            "/api/v1/members/{id}/invite-again/": member_ids,
            "/api/v1/members/{id}/remove/": member_ids,
            "/api/v1/tokens/{id}/": [spare.token.public_id],
            "/api/v1/tokens/{id}/rotate/": [spare.token.public_id],
            "/api/v1/dashboards/{id}/": dashboard_ids,
            "/api/v1/audit-events/{id}/": event_ids,
            **{
                f"/api/v1/incidents/{{id}}/{action}": incident_ids
                for action in (
                    "",
                    "acknowledge/",
                    "assign/",
                    "notes/",
                    "silence/",
                    "resolve/",
                    "reopen/",
                )
            },
        },
    }


def _incidents() -> list:
    """One open and one resolved incident, through the intake as Alertmanager delivers them."""
    import json as _json

    from alerts.incident_intake import apply_notification
    from alerts.intake import parse_notification

    def alert(fingerprint: str, status: str) -> dict:
        return {
            "status": status,
            "labels": {"alertname": "FuzzTarget", "tenant": "acme", "severity": "P1"},
            "annotations": {"summary": "an incident the fuzzer may act on"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2026-01-01T00:05:00Z" if status == "resolved" else "",
            "fingerprint": fingerprint,
        }

    body = {
        "version": "4",
        "status": "firing",
        "alerts": [alert("fuzz-open", "firing"), alert("fuzz-resolved", "resolved")],
    }
    result = apply_notification(parse_notification(_json.dumps(body).encode(), schema="acme"))
    return [incident.public_id for incident in result.opened]


def _principal_for(case) -> str:
    """The token wherever a token may act; the signed-in admin to manage members and tokens."""
    manages = case.path.startswith("/api/v1/tokens/") or (
        case.path.startswith("/api/v1/members/") and case.method != "GET"
    )
    return "admin" if manages else "token"


def _name_a_real_object(case, ids: dict[str, list]) -> None:
    """For half of the valid requests naming an object, name a real one (chosen by the draw)."""
    choices = ids.get(case.path)
    meta = case.meta
    if not choices or meta is None or not meta.generation.mode.is_positive:
        return
    drawn = str(case.path_parameters.get("id", ""))
    digest = hashlib.sha256(drawn.encode()).digest()
    if digest[0] % 2 == 0:
        case.path_parameters = {
            **case.path_parameters,
            "id": str(choices[digest[1] % len(choices)]),
        }


@schema.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_schema(case, world):
    _name_a_real_object(case, world["ids"])
    case.call_and_validate(base_url=BASE_URL, checks=CHECKS, **world[_principal_for(case)])
