"""The alerting pages: rules and groups, the editor's live check and preview, receivers, the
notification policy, maintenance windows, silences and rules as code, per role, with bad input
refused on the field and nothing written, and another tenant's objects not found."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django_tenants.utils import tenant_context

from alerts import queries, services
from alerts.models import (
    AlertRule,
    MuteTiming,
    NotificationLog,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Silence,
    SyncState,
)
from tenants import audit
from tenants.models import AuditEvent
from tests.helpers import unique

SYSTEM = audit.Actor.system("page tests")
ALERT_PAGES = [
    "/alerts/rules/",
    "/alerts/receivers/",
    "/alerts/policy/",
    "/alerts/silences/",
    "/alerts/rule-file/export.yml",
]
EDIT_PAGES = ["/alerts/rules/new/", "/alerts/receivers/new/", "/alerts/rule-file/import/"]


def make_group(tenant, name: str | None = None, interval: str = "1m") -> RuleGroup:
    with tenant_context(tenant):
        return services.create_group(name=name or unique("group"), interval=interval, actor=SYSTEM)


def make_rule(tenant, group: RuleGroup, **values) -> AlertRule:
    fields = {
        "kind": "alert",
        "name": unique("HighErrors"),
        "expr": "rate(http_errors_total[5m]) > 1",
        "for_duration": "5m",
        "keep_firing_for": "",
        "severity": "P1",
        "category": "availability",
        "labels": {},
        "annotations": {},
        "enabled": True,
        **values,
    }
    with tenant_context(tenant):
        return services.create_rule(group_id=group.public_id, actor=SYSTEM, **fields)


def counts(tenant) -> dict[str, int]:
    with tenant_context(tenant):
        return {
            model.__name__: model.objects.count()
            for model in (RuleGroup, AlertRule, Receiver, Silence, MuteTiming)
        }


def rule_post(group: RuleGroup, **overrides) -> dict:
    return {
        "group": str(group.public_id),
        "kind": "alert",
        "name": unique("ApiDown"),
        "expr": 'up{job="api"} == 0',
        "for_duration": "2m",
        "keep_firing_for": "",
        "severity": "P0",
        "category": "availability",
        "labels_text": "team=payments",
        "summary": "The API is down",
        "description": "",
        "runbook_url": "https://runbooks.example.com/api-down",
        "enabled": "on",
        "preview_range": "6h",
        "action": "save",
        **overrides,
    }


def field_error(html: str, label: str) -> str:
    """The text of the error shown under the field labelled `label` ("" if none)."""
    found = re.search(rf'<p class="error" role="alert"[^>]*>{re.escape(label)}: ([^<]*)</p>', html)
    return found.group(1) if found else ""


# ---- who may see and change ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ALERT_PAGES + EDIT_PAGES)
def test_an_executive_cannot_see_alerting(client_for, path):
    assert client_for("acme", "executive").get(path).status_code == 403


@pytest.mark.parametrize("path", ALERT_PAGES)
@pytest.mark.parametrize("role", ["operator", "security", "admin"])
def test_roles_with_view_alerts_see_the_pages(client_for, role, path):
    assert client_for("acme", role).get(path).status_code == 200


@pytest.mark.parametrize("path", EDIT_PAGES)
def test_security_staff_see_alerting_but_cannot_open_the_editors(client_for, path):
    assert client_for("acme", "security").get(path).status_code == 403


def test_security_staff_cannot_change_rules_and_nothing_is_written(client_for, acme):
    group = make_group(acme)
    rule = make_rule(acme, group)
    before = counts(acme)
    client = client_for("acme", "security")
    responses = [
        client.post("/alerts/groups/new/", {"name": "x", "interval": "1m"}),
        client.post(f"/alerts/rules/{rule.public_id}/", rule_post(group)),
        client.post(f"/alerts/rules/{rule.public_id}/toggle/"),
        client.post(f"/alerts/rules/{rule.public_id}/delete/"),
        client.post("/alerts/rules/check/", {"expr": "up"}),
        client.post("/alerts/silences/", {"matchers_text": "a=b", "ends_at": "2099-01-01T00:00"}),
    ]
    assert [r.status_code for r in responses] == [403] * len(responses)
    assert counts(acme) == before
    with tenant_context(acme):
        assert AlertRule.objects.get(pk=rule.pk).enabled


def test_a_viewer_sees_a_rule_read_only(client_for, acme):
    rule = make_rule(acme, make_group(acme))
    html = client_for("acme", "security").get(f"/alerts/rules/{rule.public_id}/").content.decode()
    assert "<fieldset disabled>" in html
    assert "Save rule" not in html
    assert "rule-editor.js" not in html


# ---- groups and rules ---------------------------------------------------------------------------


def test_an_operator_creates_a_group_and_a_rule_and_both_are_audited(client_for, acme):
    client = client_for("acme", "operator")
    name = unique("payments")
    response = client.post("/alerts/groups/new/", {"name": name, "interval": "30s"})
    assert response.status_code == 302
    with tenant_context(acme):
        group = RuleGroup.objects.get(name=name)
    assert response["Location"] == f"/alerts/rules/new/?group={group.public_id}"
    form = client.get(response["Location"]).content.decode()
    assert f'<option value="{group.public_id}" selected>' in form

    data = rule_post(group)
    response = client.post("/alerts/rules/new/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(acme):
        rule = AlertRule.objects.get(group=group, name=data["name"])
        state = SyncState.objects.get(target=SyncState.Target.PROMETHEUS_RULES)
    assert (rule.expr, rule.for_duration, rule.severity) == ('up{job="api"} == 0', "2m", "P0")
    assert rule.labels == {"team": "payments"}
    assert rule.annotations == {
        "summary": "The API is down",
        "runbook_url": "https://runbooks.example.com/api-down",
    }
    assert state.status == SyncState.Status.PENDING
    actions = set(
        AuditEvent.objects.filter(tenant=acme, actor_label="operator@acme.example").values_list(
            "action", flat=True
        )
    )
    assert {"alert_group.created", "alert_rule.created"} <= actions


BAD_RULES = [
    ("name", {"name": "Bad\x00Name"}, "Name", "Null characters are not allowed."),
    ("name", {"name": "Bad\x01Name"}, "Name", "control character"),
    ("name", {"name": "A" * 201}, "Name", "at most 200"),
    ("name", {"name": "has space"}, "Name", "letters, digits and _"),
    ("labels_text", {"labels_text": "tenant=globex"}, "Extra labels", "set by the portal"),
    ("labels_text", {"labels_text": "no equals sign"}, "Extra labels", "not name=value"),
    ("labels_text", {"labels_text": "1bad=x"}, "Extra labels", "not a label name"),
    ("expr", {"expr": 'up{tenant="globex"}'}, "Expression (PromQL)", "label tenant"),
    ("expr", {"expr": "sum(rate(x[5m])"}, "Expression (PromQL)", "Expression:"),
    ("expr", {"expr": "up\x00"}, "Expression (PromQL)", "Null characters are not allowed."),
    ("expr", {"expr": "up\x07 > 1"}, "Expression (PromQL)", "control character"),
    ("for_duration", {"for_duration": "5 minutes"}, "For", "not a duration"),
    ("keep_firing_for", {"keep_firing_for": "-1m"}, "Keep firing for", "not a duration"),
    ("runbook_url", {"runbook_url": "javascript:alert(1)"}, "Runbook URL", "http(s) URL"),
]


@pytest.mark.parametrize(("field", "change", "label", "reason"), BAD_RULES)
def test_bad_rule_input_is_refused_on_its_field_and_nothing_is_written(
    client_for, acme, field, change, label, reason
):
    group = make_group(acme)
    before = counts(acme)
    events = AuditEvent.objects.filter(tenant=acme).count()
    response = client_for("acme", "operator").post("/alerts/rules/new/", rule_post(group, **change))
    assert response.status_code == 400
    message = field_error(response.content.decode(), label)
    assert reason in message, (field, message)
    assert counts(acme) == before
    assert AuditEvent.objects.filter(tenant=acme).count() == events


def test_a_duplicate_rule_name_in_a_group_is_refused_on_the_name(client_for, acme):
    group = make_group(acme)
    existing = make_rule(acme, group)
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/alerts/rules/new/", rule_post(group, name=existing.name)
    )
    assert response.status_code == 400
    assert "has a rule named" in field_error(response.content.decode(), "Name")
    assert counts(acme) == before


def test_a_preview_saves_nothing(client_for, acme):
    group = make_group(acme)
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/alerts/rules/new/", rule_post(group, action="preview")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="preview"' in html
    assert "Prometheus is not connected" in html
    assert counts(acme) == before


def test_editing_toggling_and_deleting_a_rule(client_for, acme):
    group = make_group(acme)
    rule = make_rule(acme, group)
    client = client_for("acme", "operator")
    page = client.get(f"/alerts/rules/{rule.public_id}/").content.decode()
    assert 'value="rate(http_errors_total[5m]) &gt; 1"' in page or "rate(http_errors_total" in page

    changed = rule_post(group, name=rule.name, expr="rate(http_errors_total[5m]) > 5")
    assert client.post(f"/alerts/rules/{rule.public_id}/", changed).status_code == 302
    assert client.post(f"/alerts/rules/{rule.public_id}/toggle/").status_code == 302
    with tenant_context(acme):
        rule.refresh_from_db()
    assert (rule.expr, rule.enabled) == ("rate(http_errors_total[5m]) > 5", False)

    listing = client.get("/alerts/rules/").content.decode()
    assert f'data-confirm="Delete the rule {rule.name}?' in listing
    assert client.post(f"/alerts/rules/{rule.public_id}/delete/").status_code == 302
    with tenant_context(acme):
        assert not AlertRule.objects.filter(pk=rule.pk).exists()
    assert AuditEvent.objects.filter(
        tenant=acme, action="alert_rule.deleted", object_id=str(rule.public_id)
    ).exists()


def test_deleting_a_group_deletes_its_rules(client_for, acme):
    group = make_group(acme)
    make_rule(acme, group)
    html = client_for("acme", "operator").get("/alerts/rules/").content.decode()
    assert f"Delete the group {group.name} and its 1 rule?" in html
    response = client_for("acme", "operator").post(f"/alerts/groups/{group.public_id}/delete/")
    assert response.status_code == 302
    with tenant_context(acme):
        assert not RuleGroup.objects.filter(pk=group.pk).exists()
        assert not AlertRule.objects.filter(group_id=group.pk).exists()


def test_a_group_with_a_bad_interval_is_refused_on_the_field(client_for, acme):
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/alerts/groups/new/", {"name": unique("g"), "interval": "often"}
    )
    assert response.status_code == 400
    assert "not a duration" in field_error(response.content.decode(), "Evaluation interval")
    assert counts(acme) == before


# ---- the list: sync state and firing state ------------------------------------------------------


def test_the_list_shows_a_failed_sync_with_the_backends_words(client_for, acme):
    group = make_group(acme)
    rule = make_rule(acme, group)
    with tenant_context(acme):
        SyncState.objects.filter(target=SyncState.Target.PROMETHEUS_RULES).update(
            status=SyncState.Status.FAILED,
            error="promtool: 1:1: parse error: unexpected end of input",
            last_attempt_at=rule.updated_at,
            last_success_at=None,
        )
    html = client_for("acme", "operator").get("/alerts/rules/").content.decode()
    row = html[html.index(f'data-rule="{rule.name}"') :]
    row = row[: row.index("</tr>")]
    assert '<span class="badge badge-bad">failed</span>' in row
    assert "unexpected end of input" in row
    assert 'data-sync-status="failed"' in html
    assert "last tried" in html


def test_a_rule_applied_before_a_later_failure_shows_synced(client_for, acme):
    group = make_group(acme)
    rule = make_rule(acme, group)
    with tenant_context(acme):
        SyncState.objects.filter(target=SyncState.Target.PROMETHEUS_RULES).update(
            status=SyncState.Status.PENDING, last_success_at=rule.updated_at
        )
    html = client_for("acme", "operator").get("/alerts/rules/").content.decode()
    row = html[html.index(f'data-rule="{rule.name}"') :]
    assert '<span class="badge badge-ok">synced</span>' in row[: row.index("</tr>")]


def test_firing_now_is_unknown_when_prometheus_is_not_connected(client_for, acme, settings):
    settings.PROMETHEUS_URL = ""
    make_rule(acme, make_group(acme))
    html = client_for("acme", "operator").get("/alerts/rules/").content.decode()
    assert 'id="firing-unknown"' in html
    assert "Prometheus is not connected" in html
    assert '<span class="badge badge-muted">unknown</span>' in html


def test_firing_now_comes_from_prometheus_rule_states(client_for, acme, monkeypatch):
    group = make_group(acme)
    firing, quiet = make_rule(acme, group), make_rule(acme, group)
    states = {
        (group.name, firing.name): queries.RuleState("firing", "ok", "", 3),
        (group.name, quiet.name): queries.RuleState("inactive", "ok", "", 0),
    }
    monkeypatch.setattr(queries, "rule_states", lambda schema: states)
    html = client_for("acme", "operator").get("/alerts/rules/").content.decode()
    row = html[html.index(f'data-rule="{firing.name}"') :]
    assert '<span class="badge badge-bad">firing</span> <small>3 alerts</small>' in row
    row = html[html.index(f'data-rule="{quiet.name}"') :]
    assert "not firing" in row[: row.index("</tr>")]


# ---- the editor's live check --------------------------------------------------------------------


def test_the_check_endpoint_shows_the_expression_as_it_will_run(client_for):
    response = client_for("acme", "operator").post(
        "/alerts/rules/check/", {"expr": 'rate(http_requests_total{code=~"5.."}[5m]) > 1'}
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert answer["error"] is None
    assert answer["scoped"] == ('rate(http_requests_total{code=~"5..",tenant="acme"}[5m]) > 1')


@pytest.mark.parametrize(
    ("expr", "reason", "position"),
    [
        ("sum(rate(x[5m])", "unclosed left parenthesis", 3),
        ('up{tenant="globex"}', "label tenant", 3),
        ("", "empty", None),
    ],
)
def test_the_check_endpoint_says_why_and_where(client_for, expr, reason, position):
    answer = client_for("acme", "operator").post("/alerts/rules/check/", {"expr": expr}).json()
    assert answer["ok"] is False
    assert reason in answer["error"]["reason"]
    assert answer["error"]["position"] == position


def test_suggestions_are_unavailable_without_prometheus(client_for, settings):
    settings.PROMETHEUS_URL = ""
    answer = (
        client_for("acme", "operator")
        .post("/alerts/rules/check/", {"expr": "up", "word": "u"})
        .json()
    )
    assert answer["suggestions"] is None
    assert "not connected" in answer["suggestions_unavailable"]


def test_suggestions_match_the_word_being_typed(client_for, monkeypatch):
    seen = []

    def metric_names(schema):
        seen.append(schema)
        return ["http_requests_total", "queue_depth", "process_http_open"]

    monkeypatch.setattr(queries, "metric_names", metric_names)
    monkeypatch.setattr(queries, "label_names", lambda schema: ["code", "route", "method"])
    answer = (
        client_for("acme", "operator")
        .post("/alerts/rules/check/", {"expr": "http", "word": "http"})
        .json()
    )
    assert seen == ["acme"]
    assert answer["suggestions"]["metrics"] == ["http_requests_total", "process_http_open"]
    assert answer["suggestions"]["labels"] == []


# ---- receivers ----------------------------------------------------------------------------------


@pytest.fixture
def sink(httpserver, settings):
    """A local HTTP sink standing in for Slack/Teams, allowed as an outbound host."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    return httpserver


def test_receivers_show_only_a_hint_of_the_secret(client_for, acme):
    secret = "https://hooks.slack.example/services/T000/B000/SECRETVALUEabcd"
    with tenant_context(acme):
        receiver = Receiver.objects.create(
            name=unique("slack"), kind="slack", secret=secret, secret_hint="…abcd"
        )
    for path in ("/alerts/receivers/", f"/alerts/receivers/{receiver.public_id}/"):
        html = client_for("acme", "operator").get(path).content.decode()
        assert "…abcd" in html
        assert "SECRETVALUE" not in html


def test_a_receiver_is_created_and_a_blank_secret_keeps_it(client_for, acme, sink):
    client = client_for("acme", "operator")
    url = sink.url_for("/hooks/teams")
    name = unique("teams")
    response = client.post(
        "/alerts/receivers/new/", {"name": name, "kind": "msteams", "secret": url, "enabled": "on"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(acme):
        receiver = Receiver.objects.get(name=name)
    assert receiver.secret == url
    response = client.post(
        f"/alerts/receivers/{receiver.public_id}/",
        {"name": name + "_renamed", "kind": "msteams", "secret": "", "enabled": "on"},
    )
    assert response.status_code == 302
    with tenant_context(acme):
        receiver.refresh_from_db()
    assert (receiver.name, receiver.secret) == (name + "_renamed", url)
    event = AuditEvent.objects.filter(tenant=acme, action="receiver.updated").latest("seq")
    assert url not in json.dumps([event.before, event.after])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"kind": "slack", "secret": "http://hooks.example.com/x"}, "must use https"),
        ({"kind": "webhook", "secret": "https://169.254.169.254/latest"}, "link-local"),
        ({"kind": "sms", "secret": "555-0100"}, "international form"),
        ({"kind": "slack", "secret": ""}, "is required"),
        ({"kind": "fax", "secret": "x"}, "Select a valid choice"),
    ],
)
def test_bad_receivers_are_refused_and_nothing_is_written(client_for, acme, data, reason):
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/alerts/receivers/new/", {"name": unique("r"), "enabled": "on", **data}
    )
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert counts(acme) == before


def test_a_receiver_in_the_policy_cannot_be_deleted(client_for, acme):
    with tenant_context(acme):
        receiver = NotificationPolicy.objects.get(severity="P0").receivers.first()
    response = client_for("acme", "operator").post(
        f"/alerts/receivers/{receiver.public_id}/delete/", follow=True
    )
    html = response.content.decode()
    assert "is in the notification policy for P0" in html
    with tenant_context(acme):
        assert Receiver.objects.filter(pk=receiver.pk).exists()


def test_a_test_notification_shows_the_providers_answer(client_for, acme, sink):
    sink.expect_request("/hooks/slack", method="POST").respond_with_data("ok-from-sink")
    with tenant_context(acme):
        receiver = services.create_receiver(
            name=unique("slack"),
            kind="slack",
            settings={"channel": "#ops"},
            secret=sink.url_for("/hooks/slack"),
            actor=SYSTEM,
        )
    response = client_for("acme", "operator").post(
        f"/alerts/receivers/{receiver.public_id}/test/", follow=True
    )
    html = response.content.decode()
    assert "Test notification delivered. Provider&#x27;s answer: HTTP 200 ok-from-sink" in html
    (request, _response) = sink.log[0]
    body = json.loads(request.data)
    assert body["channel"] == "#ops"
    assert "Test notification" in body["text"]
    with tenant_context(acme):
        entry = NotificationLog.objects.get(receiver=receiver)
    assert (entry.reason, entry.outcome) == ("test", "sent")
    assert "ok-from-sink" in html.split("Recent notifications")[1]


def test_a_test_notification_to_a_receiver_without_a_secret_sends_nothing(client_for, acme):
    with tenant_context(acme):
        receiver = Receiver.objects.get(name="On-call SMS")
        logged = NotificationLog.objects.count()
    response = client_for("acme", "operator").post(
        f"/alerts/receivers/{receiver.public_id}/test/", follow=True
    )
    assert "Nothing sent: set the Phone number first." in response.content.decode()
    with tenant_context(acme):
        assert NotificationLog.objects.count() == logged


# ---- policy and maintenance windows -------------------------------------------------------------


def test_the_policy_page_explains_p0_inhibition_and_saves_a_severity(client_for, acme):
    client = client_for("acme", "operator")
    html = client.get("/alerts/policy/").content.decode()
    assert "P0 inhibits lower severities" in html
    with tenant_context(acme):
        slack = Receiver.objects.get(name="Team Slack")
    response = client.post(
        "/alerts/policy/P2/",
        {
            "receivers": [str(slack.public_id)],
            "group_by": "alertname, route",
            "group_wait": "45s",
            "group_interval": "7m",
            "repeat_interval": "3h",
        },
    )
    assert response.status_code == 302
    with tenant_context(acme):
        policy = NotificationPolicy.objects.get(severity="P2")
        assert list(policy.receivers.all()) == [slack]
    assert (policy.group_by, policy.group_wait, policy.repeat_interval) == (
        ["alertname", "route"],
        "45s",
        "3h",
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"group_wait": "soon"}, "not a duration"),
        ({"group_by": "alert name"}, "is not a label name"),
        ({"receivers": [str(uuid.uuid4())]}, "do not exist"),
    ],
)
def test_a_bad_policy_is_refused_and_the_stored_one_stays(client_for, acme, data, reason):
    with tenant_context(acme):
        before = NotificationPolicy.objects.get(severity="P1")
        stored = (before.group_wait, before.group_by, set(before.receivers.all()))
    posted = {
        "group_by": "alertname",
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "1h",
        **data,
    }
    response = client_for("acme", "operator").post("/alerts/policy/P1/", posted)
    assert response.status_code == 400
    assert reason in response.content.decode()
    with tenant_context(acme):
        after = NotificationPolicy.objects.get(severity="P1")
        assert (after.group_wait, after.group_by, set(after.receivers.all())) == stored


def test_a_maintenance_window_is_created_and_can_mute_a_policy(client_for, acme):
    client = client_for("acme", "operator")
    name = unique("Weekend")
    response = client.post(
        "/alerts/mute-timings/",
        {
            "name": name,
            "weekdays": ["saturday", "sunday"],
            "start_time": "00:00",
            "end_time": "24:00",
            "location": "Europe/Berlin",
        },
    )
    assert response.status_code == 302
    with tenant_context(acme):
        timing = MuteTiming.objects.get(name=name)
    assert timing.intervals == [
        {
            "weekdays": ["saturday", "sunday"],
            "times": [{"start_time": "00:00", "end_time": "24:00"}],
            "location": "Europe/Berlin",
        }
    ]
    html = client.get("/alerts/policy/").content.decode()
    assert f'name="mute_timings" value="{name}"' in html
    assert "saturday, sunday 00:00–24:00 (Europe/Berlin)" in html


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"weekdays": []}, "Choose at least one day."),
        ({"start_time": "25:00"}, "give a time as HH:MM"),
        ({"start_time": "10:00", "end_time": "09:00"}, "must be after From"),
        ({"location": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"name": "bad\x00name"}, "Null characters are not allowed."),
        ({"name": "bad\x1bname"}, "control character"),
    ],
)
def test_bad_maintenance_windows_are_refused(client_for, acme, data, reason):
    before = counts(acme)
    posted = {
        "name": unique("w"),
        "weekdays": ["monday"],
        "start_time": "22:00",
        "end_time": "23:00",
        **data,
    }
    response = client_for("acme", "operator").post("/alerts/mute-timings/", posted)
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert counts(acme) == before


# ---- silences -----------------------------------------------------------------------------------


def test_a_silence_is_created_shown_with_its_author_and_expired(client_for, acme):
    client = client_for("acme", "operator")
    response = client.post(
        "/alerts/silences/",
        {
            "matchers_text": 'alertname="DiskFull"\nroute=~"/api/.*"',
            "starts_at": "",
            "ends_at": "2099-01-01T10:00",
            "comment": "Disk swap tonight",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(acme):
        silence = Silence.objects.get(comment="Disk swap tonight")
    assert silence.matchers == [
        {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
        {"name": "route", "value": "/api/.*", "isRegex": True, "isEqual": True},
    ]
    html = client.get("/alerts/silences/").content.decode()
    assert "operator@acme.example" in html
    assert "Expire this silence?" in html
    assert client.post(f"/alerts/silences/{silence.public_id}/expire/").status_code == 302
    with tenant_context(acme):
        silence.refresh_from_db()
    assert silence.expired_at is not None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"matchers_text": 'tenant="globex"'}, "set by the portal"),
        ({"matchers_text": "just words"}, "is not name=value"),
        ({"matchers_text": "a=~(unclosed"}, "invalid regex"),
        ({"ends_at": "2001-01-01T00:00"}, "must be in the future"),
        ({"comment": ""}, "This field is required"),
    ],
)
def test_bad_silences_are_refused_and_nothing_is_written(client_for, acme, data, reason):
    before = counts(acme)
    posted = {
        "matchers_text": "alertname=X",
        "ends_at": "2099-01-01T00:00",
        "comment": "maintenance",
        **data,
    }
    response = client_for("acme", "operator").post("/alerts/silences/", posted)
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert counts(acme) == before


# ---- rules as code ------------------------------------------------------------------------------

RULE_FILE = """
groups:
  - name: {group}
    interval: 30s
    rules:
      - alert: QueueBacklog
        expr: queue_depth > 100
        for: 10m
        labels: {{severity: warning, team: jobs}}
        annotations: {{summary: Queue is backing up}}
      - record: job:queue_depth:max
        expr: max by (job) (queue_depth)
"""


def test_import_shows_a_preview_then_applies_on_confirmation(client_for, acme):
    client = client_for("acme", "operator")
    group = unique("jobs")
    response = client.post(
        "/alerts/rule-file/import/", {"text": RULE_FILE.format(group=group), "remove_missing": ""}
    )
    assert response.status_code == 302
    preview_url = response["Location"]
    html = client.get(preview_url).content.decode()
    assert '<strong class="added-count">2</strong>' in html
    assert "<code>warning</code>" in html  # the severity mapping is shown
    with tenant_context(acme):
        assert not RuleGroup.objects.filter(name=group).exists()  # nothing applied yet
    response = client.post(preview_url)
    assert response.status_code == 302
    with tenant_context(acme):
        rules = {r.name: r for r in AlertRule.objects.filter(group__name=group)}
    assert set(rules) == {"QueueBacklog", "job:queue_depth:max"}
    assert (rules["QueueBacklog"].severity, rules["QueueBacklog"].labels) == (
        "P2",
        {"team": "jobs"},
    )
    assert client.get(preview_url).status_code == 404  # a preview is applied once


def test_an_invalid_rule_file_lists_each_problem_and_nothing_is_written(client_for, acme):
    text = RULE_FILE.format(group="x").replace("queue_depth > 100", 'queue_depth{tenant="a"}')
    before = counts(acme)
    response = client_for("acme", "operator").post("/alerts/rule-file/import/", {"text": text})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Group &#x27;x&#x27;, rule &#x27;QueueBacklog&#x27;" in html
    assert "label tenant" in html
    assert counts(acme) == before


def test_another_users_import_preview_is_not_found(client_for):
    response = client_for("acme", "operator").post(
        "/alerts/rule-file/import/", {"text": RULE_FILE.format(group=unique("g"))}
    )
    assert client_for("acme", "admin").get(response["Location"]).status_code == 404


def test_the_export_is_a_download_of_the_enabled_rules(client_for, acme):
    group = make_group(acme)
    live = make_rule(acme, group)
    off = make_rule(acme, group, enabled=False)
    response = client_for("acme", "security").get("/alerts/rule-file/export.yml")
    assert response["Content-Type"].startswith("application/yaml")
    assert response["Content-Disposition"] == 'attachment; filename="acme-rules.yml"'
    text = response.content.decode()
    assert f"alert: {live.name}" in text
    assert off.name not in text
    assert "tenant" not in text.split("\n", 3)[3]  # only the header speaks of the tenant


# ---- isolation ----------------------------------------------------------------------------------


def test_globex_objects_are_not_found_on_acmes_host(client_for, globex, acme):
    group = make_group(globex)
    rule = make_rule(globex, group)
    with tenant_context(globex):
        receiver = Receiver.objects.first()
        silence = services.create_silence(
            matchers=[{"name": "a", "value": "b", "isRegex": False, "isEqual": True}],
            ends_at=rule.created_at.replace(year=2099),
            comment="globex only",
            actor=SYSTEM,
        )
    client = client_for("acme", "admin")
    gets = [
        f"/alerts/rules/{rule.public_id}/",
        f"/alerts/groups/{group.public_id}/",
        f"/alerts/receivers/{receiver.public_id}/",
    ]
    posts = [
        f"/alerts/rules/{rule.public_id}/toggle/",
        f"/alerts/rules/{rule.public_id}/delete/",
        f"/alerts/groups/{group.public_id}/delete/",
        f"/alerts/receivers/{receiver.public_id}/delete/",
        f"/alerts/receivers/{receiver.public_id}/test/",
        f"/alerts/silences/{silence.public_id}/expire/",
    ]
    assert [client.get(p).status_code for p in gets] == [404] * len(gets)
    assert [client.post(p).status_code for p in posts] == [404] * len(posts)
    with tenant_context(globex):
        assert AlertRule.objects.get(pk=rule.pk).enabled
        assert Silence.objects.get(pk=silence.pk).expired_at is None
    listing = client.get("/alerts/rules/").content.decode()
    assert rule.name not in listing


# ---- the tenant admin site ----------------------------------------------------------------------


def test_the_admin_lists_rules_and_masks_receiver_secrets(client_for, acme):
    rule = make_rule(acme, make_group(acme))
    secret = "https://hooks.slack.example/services/T0/B0/VERYSECRETwxyz"
    with tenant_context(acme):
        receiver = Receiver.objects.create(
            name=unique("slack"), kind="slack", secret=secret, secret_hint="…wxyz"
        )
    client = client_for("acme", "admin")
    assert rule.name in client.get("/admin/alerts/alertrule/").content.decode()
    for path in ("/admin/alerts/receiver/", f"/admin/alerts/receiver/{receiver.pk}/change/"):
        html = client.get(path).content.decode()
        assert "…wxyz" in html
        assert "VERYSECRET" not in html
    sync = client.get("/admin/alerts/syncstate/")
    assert sync.status_code == 200
    assert client.get("/admin/alerts/syncstate/add/").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/admin/alerts/rulegroup/",
        "/admin/alerts/rulegroup/add/",
        "/admin/alerts/alertrule/",
        "/admin/alerts/alertrule/add/",
        "/admin/alerts/receiver/",
        "/admin/alerts/receiver/add/",
        "/admin/alerts/notificationpolicy/",
        "/admin/alerts/mutetiming/",
        "/admin/alerts/silence/",
        "/admin/alerts/silence/add/",
        "/admin/alerts/syncstate/",
        "/admin/alerts/notificationlog/",
    ],
)
def test_every_alerting_admin_screen_opens(client_for, path):
    assert client_for("acme", "admin").get(path).status_code == 200


def test_a_policy_is_changed_in_the_admin_through_the_services(client_for, acme):
    with tenant_context(acme):
        policy = NotificationPolicy.objects.get(severity="P3")
        receivers = [str(r.pk) for r in policy.receivers.all()]
    response = client_for("acme", "admin").post(
        f"/admin/alerts/notificationpolicy/{policy.pk}/change/",
        {
            "receivers": receivers,
            "group_by": '["alertname", "team"]',
            "group_wait": "2m",
            "group_interval": "30m",
            "repeat_interval": "12h",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(acme):
        policy.refresh_from_db()
    assert (policy.group_by, policy.repeat_interval) == (["alertname", "team"], "12h")
    assert AuditEvent.objects.filter(tenant=acme, action="policy.updated").exists()


def test_a_silence_is_expired_from_the_admin_list(client_for, acme):
    with tenant_context(acme):
        silence = services.create_silence(
            matchers=[{"name": "a", "value": "b", "isRegex": False, "isEqual": True}],
            ends_at=datetime.now(tz=UTC) + timedelta(hours=1),
            comment="admin expiry",
            actor=SYSTEM,
        )
    response = client_for("acme", "admin").post(
        "/admin/alerts/silence/", {"action": "expire", "_selected_action": [silence.pk]}
    )
    assert response.status_code == 302
    with tenant_context(acme):
        silence.refresh_from_db()
    assert silence.expired_at is not None


def test_an_admin_save_is_validated_and_goes_through_the_services(client_for, acme):
    group = make_group(acme)
    client = client_for("acme", "admin")
    data = {
        "group": group.pk,
        "kind": "alert",
        "name": unique("AdminMade"),
        "expr": 'up{tenant="globex"} == 0',
        "for_duration": "",
        "keep_firing_for": "",
        "severity": "P2",
        "category": "availability",
        "labels": "{}",
        "annotations": "{}",
        "enabled": "on",
    }
    refused = client.post("/admin/alerts/alertrule/add/", data)
    assert refused.status_code == 200  # the form again, with the error
    assert "the label tenant is set by the portal" in refused.content.decode()
    with tenant_context(acme):
        assert not AlertRule.objects.filter(name=data["name"]).exists()

    saved = client.post("/admin/alerts/alertrule/add/", {**data, "expr": "up == 0"})
    assert saved.status_code == 302
    with tenant_context(acme):
        rule = AlertRule.objects.get(name=data["name"])
    event = AuditEvent.objects.get(
        tenant=acme, action="alert_rule.created", object_id=str(rule.public_id)
    )
    assert event.actor_label == "admin@acme.example"


def test_a_receiver_in_a_policy_has_no_delete_in_the_admin(client_for, acme):
    with tenant_context(acme):
        used = NotificationPolicy.objects.get(severity="P0").receivers.first()
    client = client_for("acme", "admin")
    assert client.get(f"/admin/alerts/receiver/{used.pk}/delete/").status_code == 403
    with tenant_context(acme):
        assert Receiver.objects.filter(pk=used.pk).exists()


@pytest.mark.parametrize("role", ["operator", "security", "executive"])
def test_only_admins_use_the_alerting_admin(client_for, role):
    assert client_for("acme", role).get("/admin/alerts/alertrule/").status_code == 403


# ---- the tenant home ----------------------------------------------------------------------------


def test_the_home_page_shows_where_alerting_stands_in_the_backends(client_for, acme):
    with tenant_context(acme):
        SyncState.objects.update_or_create(
            target=SyncState.Target.ALERTMANAGER,
            defaults={"status": SyncState.Status.FAILED, "error": "amtool: bad receiver"},
        )
    html = client_for("acme", "operator").get("/").content.decode()
    alertmanager = html[html.index('data-backend="alertmanager"') :]
    alertmanager = alertmanager[: alertmanager.index("</li>")]
    assert '<span class="badge badge-bad">failed</span>' in alertmanager
    assert "amtool: bad receiver" in alertmanager
    assert 'data-backend="prometheus"' in html
    assert "backend-sync" not in client_for("acme", "executive").get("/").content.decode()


def test_an_admin_rotates_the_intake_secret_and_no_one_else_can(client_for, acme):
    from alerts.models import AlertingSettings

    with tenant_context(acme):
        before = AlertingSettings.objects.get().webhook_secret
    assert client_for("acme", "operator").post("/alerts/intake/rotate/").status_code == 403
    with tenant_context(acme):
        assert AlertingSettings.objects.get().webhook_secret == before

    admin = client_for("acme", "admin")
    assert "Rotate intake secret" in admin.get("/alerts/policy/").content.decode()
    response = admin.post("/alerts/intake/rotate/")
    assert response.status_code == 302
    with tenant_context(acme):
        after = AlertingSettings.objects.get().webhook_secret
        assert after != before and len(after) >= 40
        assert SyncState.objects.get(target=SyncState.Target.ALERTMANAGER).status == "pending"
    assert AuditEvent.objects.filter(tenant=acme, action="alert_intake.secret_rotated").exists()
