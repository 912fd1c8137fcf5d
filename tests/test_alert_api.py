"""The alerting API: rules, groups, receivers (secret write-only), policies, silences and the
rule file, per role and token scope; bad input is a 400 naming the field with nothing written;
another tenant's ids are 404; everything is in the OpenAPI schema."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from alerts import services
from alerts.models import AlertRule, NotificationPolicy, Receiver, RuleGroup, Silence
from tenants import audit
from tenants import services as tenant_services
from tenants.models import AuditEvent
from tests.conftest import host_of
from tests.helpers import unique

SYSTEM = audit.Actor.system("api tests")
RULES = "/api/v1/alert-rules/"
GROUPS = "/api/v1/rule-groups/"
RECEIVERS = "/api/v1/receivers/"
POLICIES = "/api/v1/notification-policies/"
SILENCES = "/api/v1/silences/"
RULE_FILE = "/api/v1/rule-file/"


def token_client(tenant, *scopes: str, host: str | None = None) -> Client:
    issued = tenant_services.create_token(
        tenant=tenant, name=unique("api"), scopes=list(scopes), actor=SYSTEM
    )
    return Client(
        HTTP_HOST=host or host_of(tenant.schema_name),
        HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
    )


def post(client: Client, path: str, body) -> object:
    return client.post(path, json.dumps(body), content_type="application/json")


def patch(client: Client, path: str, body) -> object:
    return client.patch(path, json.dumps(body), content_type="application/json")


def group_in(tenant, name: str | None = None) -> RuleGroup:
    with tenant_context(tenant):
        return services.create_group(name=name or unique("g"), interval="1m", actor=SYSTEM)


def rule_body(rule_group: RuleGroup, /, **fields) -> dict:
    return {
        "group": str(rule_group.public_id),
        "name": unique("HighLatency"),
        "expr": "histogram_quantile(0.99, sum by (le) (rate(http_duration_bucket[5m]))) > 2",
        "for_duration": "10m",
        "severity": "P1",
        "category": "performance",
        "labels": {"team": "web"},
        "annotations": {"summary": "p99 above 2s", "runbook_url": "https://runbooks.example/x"},
        **fields,
    }


def written(tenant) -> dict[str, int]:
    with tenant_context(tenant):
        counts = {m.__name__: m.objects.count() for m in (RuleGroup, AlertRule, Receiver, Silence)}
    counts["audit"] = AuditEvent.objects.filter(tenant=tenant).count()
    return counts


# ---- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [RULES, GROUPS, RECEIVERS, POLICIES, SILENCES, RULE_FILE])
def test_an_executive_is_refused_every_alerting_resource(client_for, path):
    assert client_for("acme", "executive").get(path).status_code == 403


def test_security_staff_read_but_do_not_write(client_for, acme):
    client = client_for("acme", "security")
    assert client.get(RULES).status_code == 200
    before = written(acme)
    response = post(client, GROUPS, {"name": "nope"})
    assert response.status_code == 403
    assert written(acme) == before


def test_a_read_token_reads_and_a_write_token_writes(acme):
    reader = token_client(acme, "read")
    writer = token_client(acme, "read", "write")
    assert reader.get(RULES).status_code == 200
    assert post(reader, GROUPS, {"name": unique("g")}).status_code == 403
    response = post(writer, GROUPS, {"name": unique("g")})
    assert response.status_code == 201
    assert response.json()["interval"] == "1m"
    event = AuditEvent.objects.filter(tenant=acme, action="alert_group.created").latest("seq")
    assert event.actor_label.startswith("token api_")


def test_a_globex_token_is_refused_on_acmes_host(globex):
    client = token_client(globex, "read", "write", host=host_of("acme"))
    assert client.get(RULES).status_code == 401


# ---- rules --------------------------------------------------------------------------------------


def test_a_rule_is_created_read_updated_and_deleted(acme):
    client = token_client(acme, "read", "write")
    group = group_in(acme)
    response = post(client, RULES, rule_body(group))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["group"] == str(group.public_id)
    assert created["group_name"] == group.name
    assert created["kind"] == "alert" and created["enabled"] is True
    assert created["labels"] == {"team": "web"}
    assert created["state"] == "unknown"

    listed = client.get(RULES).json()
    assert created["id"] in {r["id"] for r in listed["results"]}
    detail = client.get(f"{RULES}{created['id']}/").json()
    assert detail["state"] == "unknown"  # Prometheus is not connected in these tests

    response = patch(client, f"{RULES}{created['id']}/", {"expr": "up == 0", "enabled": False})
    assert response.status_code == 200, response.json()
    assert (response.json()["expr"], response.json()["enabled"]) == ("up == 0", False)
    assert response.json()["for_duration"] == "10m"  # untouched fields stay
    with tenant_context(acme):
        assert AlertRule.objects.get(public_id=created["id"]).expr == "up == 0"

    assert client.delete(f"{RULES}{created['id']}/").status_code == 204
    with tenant_context(acme):
        assert not AlertRule.objects.filter(public_id=created["id"]).exists()
    actions = list(
        AuditEvent.objects.filter(tenant=acme, object_id=created["id"]).values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["alert_rule.created", "alert_rule.deleted", "alert_rule.updated"]


BAD_RULE_FIELDS = [
    ({"name": "Bad\x00"}, "name"),
    ({"name": "N" * 201}, "name"),
    ({"name": "with space"}, "name"),
    ({"expr": 'up{tenant="globex"}'}, "expr"),
    ({"expr": "sum(up"}, "expr"),
    ({"expr": ""}, "expr"),
    ({"for_duration": "5 min"}, "for_duration"),
    ({"keep_firing_for": "1x"}, "keep_firing_for"),
    ({"labels": {"tenant": "acme"}}, "labels"),
    ({"labels": {"severity": "P0"}}, "labels"),
    ({"labels": {"team": 5}}, "labels"),
    ({"labels": ["team=web"]}, "labels"),
    ({"annotations": {"summary": "x", "owner": "me"}}, "annotations"),
    ({"annotations": {"runbook_url": "ftp://x"}}, "annotations"),
    ({"enabled": "yes"}, "enabled"),
    ({"severity": "P9"}, "severity"),
    ({"name": None}, "name"),
    ({"group": str(uuid.uuid4())}, "group"),
    ({"group": "not-a-uuid"}, "group"),
    ({"kind": "record", "name": "job:x:rate5m"}, "for_duration"),
]


@pytest.mark.parametrize(("change", "field"), BAD_RULE_FIELDS)
def test_bad_rule_input_is_a_400_naming_the_field_and_nothing_is_written(acme, change, field):
    client = token_client(acme, "read", "write")
    group = group_in(acme)
    before = written(acme)
    response = post(client, RULES, rule_body(group, **change))
    assert response.status_code == 400
    body = response.json()
    assert field in body, body
    assert all(isinstance(m, str) and m for m in body[field])
    assert written(acme) == before


def test_a_duplicate_name_in_a_group_is_a_400_on_the_name(acme):
    client = token_client(acme, "read", "write")
    group = group_in(acme)
    first = post(client, RULES, rule_body(group, name="SameName"))
    assert first.status_code == 201
    before = written(acme)
    response = post(client, RULES, rule_body(group, name="SameName"))
    assert response.status_code == 400
    assert "has a rule named 'SameName'" in response.json()["name"][0]
    assert written(acme) == before


def test_a_partial_update_is_checked_as_the_whole_rule(acme):
    client = token_client(acme, "read", "write")
    created = post(client, RULES, rule_body(group_in(acme))).json()
    # A recording rule cannot keep the alert's `for`: refused, and the rule stays an alert.
    response = patch(client, f"{RULES}{created['id']}/", {"kind": "record"})
    assert response.status_code == 400
    assert "for_duration" in response.json()
    with tenant_context(acme):
        assert AlertRule.objects.get(public_id=created["id"]).kind == "alert"


# ---- groups -------------------------------------------------------------------------------------


def test_groups_are_renamed_and_deleted_with_their_rules(acme):
    client = token_client(acme, "read", "write")
    group = post(client, GROUPS, {"name": unique("g"), "interval": "30s"}).json()
    post(client, RULES, rule_body(RuleGroup(public_id=group["id"])))
    response = patch(client, f"{GROUPS}{group['id']}/", {"name": "renamed " + group["name"]})
    assert response.status_code == 200
    assert (response.json()["interval"], response.json()["rules"]) == ("30s", 1)
    bad = patch(client, f"{GROUPS}{group['id']}/", {"interval": "sometimes"})
    assert bad.status_code == 400 and "interval" in bad.json()
    assert client.delete(f"{GROUPS}{group['id']}/").status_code == 204
    with tenant_context(acme):
        assert not RuleGroup.objects.filter(public_id=group["id"]).exists()


# ---- receivers ----------------------------------------------------------------------------------


def test_a_receiver_secret_is_write_only(acme):
    client = token_client(acme, "read", "write")
    secret = "R0UTINGKEYabcdefghij1234"
    response = post(
        client, RECEIVERS, {"name": unique("pd"), "kind": "pagerduty", "secret": secret}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body
    assert body["secret_hint"] == "…1234"
    assert body["usable"] is True
    for answer in (client.get(RECEIVERS), client.get(f"{RECEIVERS}{body['id']}/")):
        assert secret not in answer.content.decode()

    renamed = patch(client, f"{RECEIVERS}{body['id']}/", {"name": body["name"] + "_2"})
    assert renamed.status_code == 200
    with tenant_context(acme):
        assert Receiver.objects.get(public_id=body["id"]).secret == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "slack", "secret": "http://hooks.example/x"}, "secret"),
        ({"kind": "webhook", "secret": "https://127.0.0.1/hook"}, "secret"),
        ({"kind": "sms", "secret": "0800 123"}, "secret"),
        ({"kind": "email", "to": "not an address"}, "to"),
        ({"kind": "carrier-pigeon", "secret": "x"}, "kind"),
        ({"kind": "pagerduty", "secret": "abcdefghijkl", "enabled": "true"}, "enabled"),
    ],
)
def test_bad_receivers_are_refused_and_nothing_is_written(acme, body, field):
    client = token_client(acme, "read", "write")
    before = written(acme)
    response = post(client, RECEIVERS, {"name": unique("r"), **body})
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert written(acme) == before


def test_a_receiver_in_a_policy_cannot_be_deleted(acme):
    client = token_client(acme, "read", "write")
    with tenant_context(acme):
        used = NotificationPolicy.objects.get(severity="P0").receivers.first()
    response = client.delete(f"{RECEIVERS}{used.public_id}/")
    assert response.status_code == 400
    assert "is in the notification policy for P0" in response.json()["receiver"][0]


# ---- policies and silences ----------------------------------------------------------------------


def test_a_policy_is_read_and_changed(acme):
    client = token_client(acme, "read", "write")
    policies = {p["severity"]: p for p in client.get(POLICIES).json()["results"]}
    assert set(policies) == {"P0", "P1", "P2", "P3"}
    p3 = policies["P3"]
    response = patch(
        client, f"{POLICIES}{p3['id']}/", {"repeat_interval": "12h", "group_by": ["alertname"]}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["repeat_interval"] == "12h"
    assert response.json()["receivers"] == p3["receivers"]  # untouched
    bad = patch(client, f"{POLICIES}{p3['id']}/", {"group_wait": "a while"})
    assert bad.status_code == 400 and "group_wait" in bad.json()
    bad = patch(client, f"{POLICIES}{p3['id']}/", {"receivers": [str(uuid.uuid4())]})
    assert bad.status_code == 400 and "receivers" in bad.json()


def test_a_silence_is_created_and_expired(acme):
    client = token_client(acme, "read", "write")
    body = {
        "matchers": [{"name": "alertname", "value": "DiskFull"}],
        "ends_at": "2099-01-01T00:00:00Z",
        "comment": "disk swap",
    }
    response = post(client, SILENCES, body)
    assert response.status_code == 201, response.json()
    silence = response.json()
    assert silence["matchers"] == [
        {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True}
    ]
    assert silence["created_by"].startswith("token api_")
    assert silence["state"] == "active"
    expired = client.post(f"{SILENCES}{silence['id']}/expire/")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"matchers": [{"name": "tenant", "value": "globex"}]}, "matchers"),
        ({"matchers": []}, "matchers"),
        ({"matchers": [{"name": "a", "value": "b", "isRegex": "yes"}]}, "matchers"),
        ({"ends_at": "2001-01-01T00:00:00Z"}, "ends_at"),
        ({"comment": "   "}, "comment"),
    ],
)
def test_bad_silences_are_refused(acme, change, field):
    client = token_client(acme, "read", "write")
    before = written(acme)
    body = {"matchers": [{"name": "a", "value": "b"}], "ends_at": "2099-01-01T00:00:00Z"}
    response = post(client, SILENCES, {**body, "comment": "c", **change})
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert written(acme) == before


# ---- the rule file ------------------------------------------------------------------------------

FILE = """
groups:
  - name: {group}
    rules:
      - alert: ApiDown
        expr: up{{job="api"}} == 0
        for: 1m
        labels: {{severity: critical}}
      - record: job:up:sum
        expr: sum by (job) (up)
"""


def test_the_rule_file_is_exported_as_yaml(acme):
    client = token_client(acme, "read")
    group = group_in(acme)
    with tenant_context(acme):
        services.create_rule(
            group_id=group.public_id,
            kind="alert",
            name="Exported",
            expr="up == 0",
            for_duration="",
            keep_firing_for="",
            severity="P0",
            category="availability",
            labels={},
            annotations={},
            enabled=True,
            actor=SYSTEM,
        )
    response = client.get(RULE_FILE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert "alert: Exported" in response.content.decode()


def test_a_dry_run_says_what_would_change_and_writes_nothing(acme):
    client = token_client(acme, "read", "write")
    group = unique("api")
    before = written(acme)
    response = post(client, RULE_FILE, {"content": FILE.format(group=group)})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["applied"] is False
    assert {(r["name"], r["kind"]) for r in body["rules"]["added"]} == {
        ("ApiDown", "alert"),
        ("job:up:sum", "record"),
    }
    assert body["severity_mapping"] == [{"label": "critical", "severity": "P0", "rules": 1}]
    assert written(acme) == before


def test_an_import_is_applied_with_dry_run_false(acme):
    client = token_client(acme, "read", "write")
    group = unique("api")
    response = post(
        client,
        RULE_FILE,
        {"content": FILE.format(group=group), "dry_run": False, "remove_missing": False},
    )
    assert response.status_code == 200, response.json()
    assert response.json()["applied"] is True
    with tenant_context(acme):
        rule = AlertRule.objects.get(group__name=group, name="ApiDown")
    assert (rule.severity, rule.for_duration) == ("P0", "1m")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"content": "groups: ["}, "content", "not valid YAML"),
        ({"content": FILE.format(group="a/b")}, "content", "must not contain '/'"),
        ({"content": 5}, "content", "Send a string."),
        ({"content": "groups: []", "dry_run": "no"}, "dry_run", "Send true or false."),
        ({}, "content", "required"),
    ],
)
def test_a_bad_rule_file_is_a_400_and_nothing_is_written(acme, body, field, reason):
    client = token_client(acme, "read", "write")
    before = written(acme)
    response = post(client, RULE_FILE, {"dry_run": False, **body})
    assert response.status_code == 400
    assert any(reason in m for m in response.json()[field]), response.json()
    assert written(acme) == before


# ---- isolation ----------------------------------------------------------------------------------


def test_globex_ids_are_404_on_acmes_host(acme, globex):
    group = group_in(globex)
    with tenant_context(globex):
        rule = services.create_rule(
            group_id=group.public_id,
            kind="alert",
            name="GlobexOnly",
            expr="up == 0",
            for_duration="",
            keep_firing_for="",
            severity="P2",
            category="availability",
            labels={},
            annotations={},
            enabled=True,
            actor=SYSTEM,
        )
        receiver = Receiver.objects.first()
        policy = NotificationPolicy.objects.first()
    client = token_client(acme, "read", "write")
    before = written(globex)
    for path in (
        f"{RULES}{rule.public_id}/",
        f"{GROUPS}{group.public_id}/",
        f"{RECEIVERS}{receiver.public_id}/",
        f"{POLICIES}{policy.public_id}/",
    ):
        assert client.get(path).status_code == 404, path
        assert patch(client, path, {"name": "hijacked"}).status_code == 404, path
    for path in (f"{RULES}{rule.public_id}/", f"{GROUPS}{group.public_id}/"):
        assert client.delete(path).status_code == 404
    assert written(globex) == before
    names = {r["name"] for r in client.get(RULES).json()["results"]}
    assert "GlobexOnly" not in names


# ---- the OpenAPI schema -------------------------------------------------------------------------


def test_every_alerting_operation_is_in_the_schema_with_its_statuses(client_for):
    document = client_for("acme", "operator").get("/api/schema/?format=json").json()
    paths = document["paths"]
    expected = {
        "/api/v1/alert-rules/": {"get", "post"},
        "/api/v1/alert-rules/{id}/": {"get", "patch", "delete"},
        "/api/v1/rule-groups/": {"get", "post"},
        "/api/v1/rule-groups/{id}/": {"get", "patch", "delete"},
        "/api/v1/receivers/": {"get", "post"},
        "/api/v1/receivers/{id}/": {"get", "patch", "delete"},
        "/api/v1/notification-policies/": {"get"},
        "/api/v1/notification-policies/{id}/": {"get", "patch"},
        "/api/v1/silences/": {"get", "post"},
        "/api/v1/silences/{id}/": {"get"},
        "/api/v1/silences/{id}/expire/": {"post"},
        "/api/v1/rule-file/": {"get", "post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) >= methods, path
        for method in methods:
            statuses = set(paths[path][method]["responses"])
            assert {"401", "403"} <= statuses, (path, method)
            if "{id}" in path:
                assert "404" in statuses, (path, method)
            if method in ("post", "patch"):
                assert "400" in statuses, (path, method)
    export = paths["/api/v1/rule-file/"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/yaml"}
    receiver_input = document["components"]["schemas"]["ReceiverInputRequest"]["properties"]
    assert "secret" in receiver_input
    receiver_output = document["components"]["schemas"]["Receiver"]["properties"]
    assert "secret" not in receiver_output and "secret_hint" in receiver_output
