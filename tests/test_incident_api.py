"""Incidents through the API and the tenant admin: who may list and act (per role and token
scope), the filters, security incidents hidden from tokens and operators, each action changing
the incident and writing its audit event, bad input refused with nothing written, other tenants'
ids unknown, and everything in the OpenAPI schema.

Incidents are made as Alertmanager makes them (`parse_notification` then `apply_notification`),
inside the test's transaction, each with a fingerprint and a service of its own.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client, RequestFactory
from django_tenants.utils import tenant_context

from alerts import services
from alerts.incident_intake import apply_notification
from alerts.intake import parse_notification
from alerts.models import Incident, IncidentEvent, Silence
from tenants import audit
from tenants import services as tenant_services
from tenants.models import AuditEvent, Membership
from tenants.roles import access_for_role
from tests.helpers import bearer, host_of, send_json, unique

SYSTEM = audit.Actor.system("incident api tests")
INCIDENTS = "/api/v1/incidents/"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def fire(
    tenant,
    *,
    name: str = "DiskFull",
    severity: str = "P2",
    category: str = "availability",
    service: str | None = None,
    starts: datetime | None = None,
    resolved: bool = False,
) -> Incident:
    """One alert occurrence of `tenant`, delivered as Alertmanager's webhook delivers it."""
    starts = starts or datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    labels = {
        "alertname": name,
        "tenant": tenant.schema_name,
        "severity": severity,
        "category": category,
        "service": service or unique("svc"),
        "instance": "db-1:9100",
    }
    alert = {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} on db-1", "runbook_url": "https://runbooks.example/d"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts + timedelta(minutes=30)).isoformat() if resolved else GO_ZERO_TIME,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": uuid.uuid4().hex[:16],
    }
    body = {
        "version": "4",
        "status": alert["status"],
        "receiver": f"{tenant.schema_name}__portal",
        "groupKey": "{}:{}",
        "alerts": [alert],
    }
    with tenant_context(tenant):
        notification = parse_notification(json.dumps(body).encode(), schema=tenant.schema_name)
        (incident,) = apply_notification(notification).opened
    return incident


def current(tenant, incident: Incident) -> Incident:
    with tenant_context(tenant):
        return Incident.objects.get(pk=incident.pk)


def timeline_kinds(tenant, incident: Incident) -> list[str]:
    with tenant_context(tenant):
        return list(incident.events.order_by("id").values_list("kind", flat=True))


def audited(tenant, incident: Incident) -> list[str]:
    """The audit actions recorded on `incident`, oldest first."""
    rows = AuditEvent.objects.filter(tenant=tenant, object_id=str(incident.public_id))
    return list(rows.order_by("seq").values_list("action", flat=True))


def token_client(tenant, *scopes: str) -> Client:
    issued = tenant_services.create_token(
        tenant=tenant, name=unique("incidents"), scopes=list(scopes), actor=SYSTEM
    )
    return Client(HTTP_HOST=host_of(tenant.schema_name), **bearer(issued.secret))


def act(client: Client, incident: Incident, action: str, body=None):
    return send_json(client, "post", f"{INCIDENTS}{incident.public_id}/{action}/", body)


def of_service(incident: Incident) -> str:
    """The list narrowed to `incident`'s own service (other tests' incidents stay out)."""
    return f"{INCIDENTS}?service={incident.service}"


def listed_ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def member_id(tenant, email: str) -> str:
    return str(Membership.objects.get(tenant=tenant, user__email=email).public_id)


# ---- who may ------------------------------------------------------------------------------------


def test_a_read_token_lists_and_reads_incidents_but_cannot_act(acme):
    incident = fire(acme)
    reader = token_client(acme, "read")
    assert listed_ids(reader.get(of_service(incident))) == {str(incident.public_id)}
    detail = reader.get(f"{INCIDENTS}{incident.public_id}/")
    assert detail.status_code == 200
    assert detail.json()["alertname"] == "DiskFull"
    for action, body in [("acknowledge", None), ("notes", {"text": "mine"}), ("resolve", None)]:
        assert act(reader, incident, action, body).status_code == 403, action
    assert current(acme, incident).status == Incident.Status.TRIGGERED
    assert timeline_kinds(acme, incident) == ["fired", "routed"]


def test_a_write_token_acts_and_gets_the_incident_back_but_cannot_list_or_read(acme):
    incident = fire(acme)
    writer = token_client(acme, "write")
    assert writer.get(INCIDENTS).status_code == 403
    assert writer.get(f"{INCIDENTS}{incident.public_id}/").status_code == 403
    response = act(writer, incident, "acknowledge")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "acknowledged"
    assert current(acme, incident).status == Incident.Status.ACKNOWLEDGED
    event = AuditEvent.objects.get(
        tenant=acme, action="incident.acknowledged", object_id=str(incident.public_id)
    )
    assert event.actor_kind == "token" and event.actor_label.startswith("token incidents_")


@pytest.mark.parametrize("scope", ["ingest", "webhook"])
def test_ingest_and_webhook_tokens_are_refused_incidents(acme, scope):
    incident = fire(acme)
    client = token_client(acme, scope)
    assert client.get(INCIDENTS).status_code == 403
    assert client.get(f"{INCIDENTS}{incident.public_id}/").status_code == 403
    assert act(client, incident, "acknowledge").status_code == 403
    assert current(acme, incident).status == Incident.Status.TRIGGERED


def test_an_executive_neither_lists_nor_acts(client_for, acme):
    incident = fire(acme)
    client = client_for("acme", "executive")
    assert client.get(INCIDENTS).status_code == 403
    assert client.get(f"{INCIDENTS}{incident.public_id}/").status_code == 403
    assert act(client, incident, "acknowledge").status_code == 403
    assert current(acme, incident).status == Incident.Status.TRIGGERED


@pytest.mark.parametrize("role", ["operator", "security", "admin"])
def test_operators_security_staff_and_admins_list_and_act(client_for, acme, role):
    incident = fire(acme)
    client = client_for("acme", role)
    assert listed_ids(client.get(of_service(incident))) == {str(incident.public_id)}
    response = act(client, incident, "acknowledge")
    assert response.status_code == 200, response.content
    assert response.json()["acknowledged_by"] == f"{role}@acme.example"
    event = AuditEvent.objects.get(
        tenant=acme, action="incident.acknowledged", object_id=str(incident.public_id)
    )
    assert (event.actor_kind, event.actor_label) == ("user", f"{role}@acme.example")


def test_anonymous_callers_and_another_tenants_members_are_refused(client_for, acme):
    incident = fire(acme)
    assert client_for("acme").get(INCIDENTS).status_code == 401
    outsider = client_for("acme", email="admin@globex.example")
    assert outsider.get(INCIDENTS).status_code == 403
    assert act(outsider, incident, "acknowledge").status_code == 403
    assert current(acme, incident).status == Incident.Status.TRIGGERED


# ---- security incidents -------------------------------------------------------------------------


def test_security_incidents_are_hidden_from_tokens_and_operators(client_for, acme):
    security = fire(acme, name="BruteForce", severity="P1", category="security")
    reader, writer = token_client(acme, "read"), token_client(acme, "read", "write")
    operator = client_for("acme", "operator")
    for client in (reader, operator):
        assert listed_ids(client.get(of_service(security))) == set()
        assert listed_ids(client.get(f"{INCIDENTS}?category=security&limit=1000")) == set()
        detail = client.get(f"{INCIDENTS}{security.public_id}/")
        assert (detail.status_code, detail.json()) == (404, {"detail": "Not found."})
    for client in (writer, operator):
        for action, body in [
            ("acknowledge", None),
            ("notes", {"text": "seen"}),
            ("assign", {"assignee": None}),
            ("resolve", {}),
        ]:
            assert act(client, security, action, body).status_code == 404, action
    assert current(acme, security).status == Incident.Status.TRIGGERED
    assert timeline_kinds(acme, security) == ["fired", "routed"]
    assert audited(acme, security) == []


@pytest.mark.parametrize("role", ["security", "admin"])
def test_security_staff_and_admins_see_security_incidents_with_their_breach_fields(
    client_for, acme, role
):
    security = fire(acme, name="BruteForce", category="security")
    with tenant_context(acme):
        services.flag_personal_data_breach(incident_id=security.public_id, actor=SYSTEM)
    client = client_for("acme", role)
    listed = client.get(f"{of_service(security)}&category=security")
    assert listed_ids(listed) == {str(security.public_id)}
    body = client.get(f"{INCIDENTS}{security.public_id}/").json()
    breach = body["breach"]
    flagged = datetime.fromisoformat(breach["flagged_at"])
    assert datetime.fromisoformat(breach["deadline"]) - flagged == timedelta(hours=72)
    assert breach["authority_notified_at"] is None
    assert body["timeline"][-1]["kind"] == "breach_flagged"


def test_other_incidents_have_no_breach_fields(client_for, acme):
    incident = fire(acme)
    body = client_for("acme", "admin").get(f"{INCIDENTS}{incident.public_id}/").json()
    assert body["breach"] is None


# ---- list, filters, detail ----------------------------------------------------------------------


def test_the_list_filters_by_each_field(client_for, acme):
    service = unique("checkout")
    early = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    p0 = fire(acme, name="Down", severity="P0", service=service, starts=early)
    p2 = fire(
        acme,
        name="Slow",
        severity="P2",
        category="performance",
        service=service,
        starts=early + timedelta(hours=2),
    )
    done = fire(
        acme,
        name="Gone",
        severity="P3",
        service=service,
        starts=early + timedelta(hours=4),
        resolved=True,
    )
    with tenant_context(acme):
        services.acknowledge_incident(incident_id=p2.public_id, actor=SYSTEM)
        services.assign_incident(
            incident_id=p2.public_id,
            assignee=member_id(acme, "operator@acme.example"),
            actor=SYSTEM,
        )
    client = client_for("acme", "operator")

    def ids(query: str) -> set[str]:
        return listed_ids(client.get(f"{INCIDENTS}?service={service}&{query}"))

    every = {str(p0.public_id), str(p2.public_id), str(done.public_id)}
    assert ids("") == every
    assert ids("severity=P0") == {str(p0.public_id)}
    assert ids("category=performance") == {str(p2.public_id)}
    assert ids("status=open") == {str(p0.public_id), str(p2.public_id)}
    assert ids("status=triggered") == {str(p0.public_id)}
    assert ids("status=acknowledged") == {str(p2.public_id)}
    assert ids("status=resolved") == {str(done.public_id)}
    assert ids("assignee=OPERATOR@acme.example") == {str(p2.public_id)}
    assert ids("assignee=none") == {str(p0.public_id), str(done.public_id)}
    assert ids("started_after=2026-02-01T09:00:00Z") == {str(p2.public_id), str(done.public_id)}
    assert ids("started_before=2026-02-01T10:00:00%2B01:00") == {str(p0.public_id)}
    assert ids("severity=&status=&started_after=") == every  # empty: no filter
    assert listed_ids(client.get(f"{INCIDENTS}?service={unique('none')}")) == set()
    page = client.get(f"{INCIDENTS}?service={service}&limit=1").json()
    assert page["count"] == 3 and len(page["results"]) == 1
    assert page["results"][0]["id"] == str(done.public_id)  # newest first
    row = next(
        r
        for r in client.get(f"{INCIDENTS}?service={service}").json()["results"]
        if r["id"] == str(p2.public_id)
    )
    assert row["assignee"] == "operator@acme.example"
    assert (row["severity"], row["status"], row["service"]) == ("P2", "acknowledged", service)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("severity=P9", "severity"),
        ("severity=%20P0", "severity"),
        ("status=closed", "status"),
        ("category=%00", "category"),
        ("service=a%00b", "service"),
        ("service=" + "s" * 201, "service"),
        ("service=%E2%80%AEevil", "service"),
        ("assignee=x%0Ay", "assignee"),
        ("assignee=" + "a" * 255, "assignee"),
        ("started_after=yesterday", "started_after"),
        ("started_after=2026-01-01", "started_after"),
        ("started_after=2026-01-01T10:00:00", "started_after"),
        ("started_after=2026-02-30T10:00:00Z", "started_after"),
        ("started_after=0001-01-01T00:00:00%2B05:00", "started_after"),
        ("started_before=%EF%BC%92026-01-01T10:00:00Z", "started_before"),
        (
            "started_after=2026-02-01T00:00:00Z&started_before=2026-01-01T00:00:00Z",
            "started_before",
        ),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(client_for, query, parameter):
    response = client_for("acme", "operator").get(f"{INCIDENTS}?{query}")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [parameter]
    assert all(isinstance(reason, str) for reason in response.json()[parameter])


def test_the_detail_has_labels_annotations_times_rule_and_timeline(client_for, acme):
    with tenant_context(acme):
        group = services.create_group(name=unique("g"), interval="1m", actor=SYSTEM)
        rule = services.create_rule(
            group_id=group.public_id,
            actor=SYSTEM,
            kind="alert",
            name=unique("QueueBacklog"),
            expr="queue_depth > 500",
            for_duration="5m",
            keep_firing_for="",
            severity="P1",
            category="performance",
            labels={},
            annotations={},
            enabled=True,
        )
    incident = fire(acme, name=rule.name, severity="P1", category="performance")
    body = client_for("acme", "operator").get(f"{INCIDENTS}{incident.public_id}/").json()
    assert body["id"] == str(incident.public_id)
    assert body["rule"] == str(rule.public_id)
    assert body["labels"]["instance"] == "db-1:9100"
    assert body["annotations"]["runbook_url"] == "https://runbooks.example/d"
    assert body["started_at"].startswith("2026-01-05T10:00:00")
    assert (body["status"], body["alert_state"], body["assignee"]) == (
        "triggered",
        "firing",
        None,
    )
    assert [entry["kind"] for entry in body["timeline"]] == ["fired", "routed"]
    assert body["timeline"][0]["actor"] == "Alertmanager"
    assert body["timeline_intact"] is True
    (row,) = client_for("acme", "operator").get(of_service(incident)).json()["results"]
    assert row["rule"] == str(rule.public_id) and "timeline" not in row


def test_an_incident_without_a_rule_of_the_tenant_names_none(client_for, acme):
    incident = fire(acme, name=unique("External"))
    body = client_for("acme", "operator").get(f"{INCIDENTS}{incident.public_id}/").json()
    assert body["rule"] is None


# ---- actions ------------------------------------------------------------------------------------


def test_each_action_changes_the_incident_and_is_audited(client_for, acme):
    incident = fire(acme, name="CertExpiring", severity="P1")
    client = client_for("acme", "operator")
    operator = member_id(acme, "operator@acme.example")

    response = act(client, incident, "acknowledge")
    assert response.json()["status"] == "acknowledged"
    response = act(client, incident, "assign", {"assignee": operator})
    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == "operator@acme.example"
    response = act(client, incident, "notes", {"text": "  Renewing the cert now.\r\nETA 10m  "})
    assert response.status_code == 200, response.content
    assert response.json()["timeline"][-1]["text"] == "Renewing the cert now.\nETA 10m"
    response = act(client, incident, "silence", {"duration_minutes": 90, "comment": "renewal"})
    assert response.status_code == 200, response.content
    silenced = response.json()["timeline"][-1]
    assert silenced["kind"] == "silenced"
    response = act(client, incident, "resolve", {"note": "Renewed."})
    assert (response.json()["status"], response.json()["resolved_by"]) == (
        "resolved",
        "operator@acme.example",
    )
    response = act(client, incident, "reopen", {"reason": "Expired again."})
    assert response.json()["status"] == "acknowledged"  # it had been acknowledged
    response = act(client, incident, "assign", {"assignee": None})
    assert response.json()["assignee"] is None

    assert timeline_kinds(acme, incident) == [
        "fired",
        "routed",
        "acknowledged",
        "assigned",
        "note",
        "silenced",
        "resolved",
        "reopened",
        "assigned",
    ]
    assert audited(acme, incident) == [
        "incident.acknowledged",
        "incident.assigned",
        "incident.note_added",
        "incident.silenced",
        "incident.resolved",
        "incident.reopened",
        "incident.assigned",
    ]
    with tenant_context(acme):
        silence = Silence.objects.get(public_id=silenced["detail"]["silence"])
        assert silence.comment == "renewal"
        assert {
            "name": "alertname",
            "value": "CertExpiring",
            "isRegex": False,
            "isEqual": True,
        } in (silence.matchers)
        assert timedelta(minutes=89) < silence.ends_at - silence.starts_at <= timedelta(minutes=91)
    assert AuditEvent.objects.filter(
        tenant=acme, action="silence.created", object_id=str(silence.public_id)
    ).exists()


def test_acknowledging_twice_records_one_acknowledgement(client_for, acme):
    incident = fire(acme)
    client = client_for("acme", "operator")
    assert act(client, incident, "acknowledge").status_code == 200
    assert act(client, incident, "acknowledge").status_code == 200
    assert audited(acme, incident) == ["incident.acknowledged"]


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("acknowledge", None, "status"),  # resolved: reopen first
        ("resolve", {"note": "again"}, None),  # already resolved: nothing to do
    ],
)
def test_a_resolved_incident_is_not_acknowledged_and_resolving_it_again_changes_nothing(
    client_for, acme, action, body, field
):
    incident = fire(acme, resolved=True)
    before = (timeline_kinds(acme, incident), audited(acme, incident))
    response = act(client_for("acme", "operator"), incident, action, body)
    if field:
        assert response.status_code == 400
        assert list(response.json()) == [field]
    else:
        assert response.status_code == 200
    assert (timeline_kinds(acme, incident), audited(acme, incident)) == before


def test_only_a_resolved_incident_is_reopened(client_for, acme):
    incident = fire(acme)
    response = act(client_for("acme", "operator"), incident, "reopen", {"reason": "why not"})
    assert response.status_code == 400
    assert list(response.json()) == ["status"]
    assert audited(acme, incident) == []


BAD_INPUT = [
    ("notes", {"text": "a\x00b"}, "text"),
    ("notes", {"text": "x" * 10_001}, "text"),
    ("notes", {"text": 5}, "text"),
    ("notes", {"text": ["a"]}, "text"),
    ("notes", {"text": "   "}, "text"),
    ("notes", {"text": None}, "text"),
    ("notes", {"text": "look \u202eevil"}, "text"),
    ("notes", {}, "text"),
    ("notes", [], "non_field_errors"),
    ("assign", {}, "assignee"),
    ("assign", {"assignee": "nope"}, "assignee"),
    ("assign", {"assignee": 5}, "assignee"),
    ("assign", {"assignee": UNKNOWN_ID}, "assignee"),
    ("assign", {"assignee": "\uff10" + UNKNOWN_ID[1:]}, "assignee"),
    ("assign", {"assignee": "urn:uuid:" + UNKNOWN_ID}, "assignee"),
    ("silence", {}, "duration_minutes"),
    ("silence", {"duration_minutes": 0}, "duration_minutes"),
    ("silence", {"duration_minutes": 43_201}, "duration_minutes"),
    ("silence", {"duration_minutes": "60"}, "duration_minutes"),
    ("silence", {"duration_minutes": 1.5}, "duration_minutes"),
    ("silence", {"duration_minutes": True}, "duration_minutes"),
    ("silence", {"duration_minutes": 60, "comment": "a\x07b"}, "comment"),
    ("silence", {"duration_minutes": 60, "comment": "c" * 1001}, "comment"),
    ("resolve", {"note": "\x00"}, "note"),
    ("resolve", {"note": 3}, "note"),
    ("resolve", {"note": "n" * 10_001}, "note"),
    ("reopen", {"reason": "r\x1b"}, "reason"),
]


@pytest.mark.parametrize(("action", "body", "field"), BAD_INPUT)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    client_for, acme, action, body, field
):
    incident = fire(acme, resolved=action == "reopen")
    with tenant_context(acme):
        silences = Silence.objects.count()
    before = (timeline_kinds(acme, incident), audited(acme, incident), silences)
    response = act(client_for("acme", "operator"), incident, action, body)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert all(isinstance(reason, str) for reason in response.json()[field])
    with tenant_context(acme):
        silences = Silence.objects.count()
    assert (timeline_kinds(acme, incident), audited(acme, incident), silences) == before
    assert current(acme, incident).assignee_id is None


def test_a_body_that_is_not_json_is_a_400(client_for, acme):
    incident = fire(acme)
    path = f"{INCIDENTS}{incident.public_id}/notes/"
    response = client_for("acme", "operator").post(
        path, "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]
    form = client_for("acme", "operator").post(path, {"text": "as a form"})
    assert form.status_code == 415
    assert audited(acme, incident) == []


def test_only_a_member_who_may_see_the_incident_is_assigned(client_for, acme, globex):
    security = fire(acme, name="Exfiltration", category="security")
    client = client_for("acme", "security")
    for email, tenant in [
        ("operator@acme.example", acme),  # operators do not see security incidents
        ("executive@acme.example", acme),
        ("admin@globex.example", globex),  # a member of another tenant
    ]:
        response = act(client, security, "assign", {"assignee": member_id(tenant, email)})
        assert response.status_code == 400, email
        assert list(response.json()) == ["assignee"]
    response = act(client, security, "assign", {"assignee": member_id(acme, "admin@acme.example")})
    assert response.json()["assignee"] == "admin@acme.example"
    assert audited(acme, security) == ["incident.assigned"]


# ---- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "acknowledge/", "notes/", "assign/", "resolve/"])
def test_another_tenants_incident_is_not_found(client_for, acme, globex, suffix):
    theirs = fire(globex)
    client = client_for("acme", "admin")
    path = f"{INCIDENTS}{theirs.public_id}/{suffix}"
    body = {"text": "x", "assignee": None}
    response = client.get(path) if not suffix else send_json(client, "post", path, body)
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert timeline_kinds(globex, theirs) == ["fired", "routed"]
    assert audited(globex, theirs) == []


@pytest.mark.parametrize("incident_id", [UNKNOWN_ID, "not-a-uuid", "1", "%00"])
def test_an_absent_or_malformed_id_is_the_same_404(client_for, incident_id):
    client = client_for("acme", "operator")
    assert client.get(f"{INCIDENTS}{incident_id}/").status_code == 404
    response = send_json(client, "post", f"{INCIDENTS}{incident_id}/acknowledge/")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# ---- schema -------------------------------------------------------------------------------------


def test_the_incident_operations_are_in_the_openapi_schema(client_for):
    document = client_for("acme", "operator").get("/api/schema/?format=json").json()
    paths = document["paths"]
    listing = paths["/api/v1/incidents/"]["get"]
    parameters = {p["name"] for p in listing["parameters"]}
    assert {"severity", "status", "category", "service", "assignee"} <= parameters
    assert {"started_after", "started_before", "limit", "offset"} <= parameters
    assert "get" in paths["/api/v1/incidents/{id}/"]
    for action in ("acknowledge", "assign", "notes", "silence", "resolve", "reopen"):
        operation = paths[f"/api/v1/incidents/{{id}}/{action}/"]["post"]
        assert {"200", "400", "401", "403", "404"} <= set(operation["responses"]), action
    schemas = document["components"]["schemas"]
    assert "timeline" in schemas["IncidentDetail"]["properties"]
    assert schemas["NoteInputRequest"]["properties"]["text"]["maxLength"] == 10_000
    assert schemas["AssignInputRequest"]["properties"]["assignee"]["nullable"] is True
    index = client_for("acme", "operator").get("/api/v1/").json()["resources"]
    assert index["incidents"].endswith("/api/v1/incidents/")


# ---- the tenant admin site ----------------------------------------------------------------------

ADMIN = "/admin/alerts/incident/"


def test_the_admin_lists_incidents_and_shows_one_with_its_timeline(client_for, acme):
    incident = fire(acme, name=unique("AdminShown"), category="security")
    client = client_for("acme", "admin")
    listing = client.get(f"{ADMIN}?q={incident.alertname}")
    assert listing.status_code == 200
    assert incident.alertname in listing.content.decode()
    page = client.get(f"{ADMIN}{incident.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Routed by the P2 policy." in html  # a timeline entry
    assert 'name="_save"' not in html  # read-only
    assert client.get(f"{ADMIN}add/").status_code == 403
    assert client.post(f"{ADMIN}{incident.pk}/delete/").status_code == 403
    assert client.post(f"{ADMIN}{incident.pk}/change/", {"status": "resolved"}).status_code == 403
    assert current(acme, incident).status == Incident.Status.TRIGGERED


def test_the_admin_actions_acknowledge_and_resolve_through_the_services(client_for, acme):
    first, second = fire(acme), fire(acme)
    done = fire(acme, resolved=True)
    client = client_for("acme", "admin")
    selected = [first.pk, second.pk, done.pk]
    response = client.post(
        ADMIN, {"action": "acknowledge", "_selected_action": selected}, follow=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 incident(s) acknowledged." in html
    assert "reopen it" in html  # the resolved one was refused, with the service's reason
    assert current(acme, first).status == current(acme, second).status == "acknowledged"
    assert current(acme, done).status == "resolved"
    event = AuditEvent.objects.get(
        tenant=acme, action="incident.acknowledged", object_id=str(first.public_id)
    )
    assert (event.actor_kind, event.actor_label) == ("user", "admin@acme.example")

    client.post(ADMIN, {"action": "resolve", "_selected_action": [first.pk]})
    assert current(acme, first).status == Incident.Status.RESOLVED
    assert audited(acme, first) == ["incident.acknowledged", "incident.resolved"]
    assert timeline_kinds(acme, first)[-1] == IncidentEvent.Kind.RESOLVED


def test_the_admin_shows_security_incidents_only_to_who_may_see_them(acme):
    from alerts.admin import IncidentAdmin
    from tenants.admin_site import tenant_admin_site

    security, other = fire(acme, category="security"), fire(acme)
    model_admin = IncidentAdmin(Incident, tenant_admin_site)

    def shown(role: str) -> set[int]:
        request = RequestFactory().get(ADMIN)
        request._member_access = access_for_role(role)  # what `request_access` reads
        with tenant_context(acme):
            return set(model_admin.get_queryset(request).values_list("pk", flat=True))

    assert {security.pk, other.pk} <= shown("admin")
    assert other.pk in shown("operator") and security.pk not in shown("operator")


def test_the_admin_does_not_show_another_tenants_incident(client_for, acme, globex):
    theirs = fire(globex, name=unique("Theirs"))
    client = client_for("acme", "admin")
    listing = client.get(f"{ADMIN}?q={theirs.alertname}")
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 0
    # Ids are per schema: the same number in acme is another incident, or none.
    page = client.get(f"{ADMIN}{theirs.pk}/change/", follow=True)
    assert page.status_code == 200
    assert theirs.alertname not in page.content.decode()


@pytest.mark.parametrize("role", ["operator", "security"])
def test_members_who_are_not_admins_are_refused_the_incident_admin(client_for, acme, role):
    incident = fire(acme)
    client = client_for("acme", role)
    assert client.get(ADMIN).status_code == 403
    response = client.post(ADMIN, {"action": "acknowledge", "_selected_action": [incident.pk]})
    assert response.status_code == 403
    assert current(acme, incident).status == Incident.Status.TRIGGERED
