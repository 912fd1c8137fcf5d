"""The incident page: who may open it, what it shows (timeline, notifications, chain of custody,
related incidents, the chart), and every action through it, with bad input refused on the field
and nothing written. Incidents come in as Alertmanager delivers them (the intake's own path)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import tenant_context

from alerts import incident_notices, services
from alerts.incident_intake import apply_notification
from alerts.intake import parse_notification
from alerts.models import Incident, IncidentEvent, NotificationLog, Silence
from tenants import audit
from tenants.models import AuditEvent, Membership
from tests.backend_servers import EXPORTER_JOB, running_exporter, running_prometheus
from tests.factories import MembershipFactory
from tests.helpers import client_on, free_port

Kind = IncidentEvent.Kind
SYSTEM = audit.Actor.system("incident page tests")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def deliver(
    tenant,
    *,
    name: str = "CheckoutErrors",
    category: str = "availability",
    severity: str = "P1",
    service: str = "checkout",
    started: datetime | None = None,
    annotations: dict | None = None,
    **labels: str,
) -> Incident:
    """One firing alert delivered by Alertmanager to `tenant`'s webhook intake."""
    started = started or timezone.now() - timedelta(minutes=10)
    body = {
        "version": "4",
        "status": "firing",
        "receiver": f"{tenant.schema_name}-{severity}",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "tenant": tenant.schema_name,
                    "severity": severity,
                    "category": category,
                    "service": service,
                    **labels,
                },
                "annotations": annotations
                if annotations is not None
                else {"summary": f"{name} on {service}"},
                "startsAt": _iso(started),
                "endsAt": GO_ZERO_TIME,
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }
    with tenant_context(tenant):
        notification = parse_notification(json.dumps(body).encode(), schema=tenant.schema_name)
        (incident,) = apply_notification(notification).opened
    return incident


def reload(tenant, incident: Incident) -> Incident:
    with tenant_context(tenant):
        return Incident.objects.get(pk=incident.pk)


def kinds(tenant, incident: Incident) -> list[str]:
    with tenant_context(tenant):
        return list(incident.events.order_by("id").values_list("kind", flat=True))


def audited(tenant, action: str) -> int:
    return AuditEvent.objects.filter(tenant=tenant, action=action).count()


def written(tenant, incident: Incident) -> tuple:
    """Everything an action could write: the incident's row, its timeline, silences, the trail."""
    with tenant_context(tenant):
        row = Incident.objects.filter(pk=incident.pk).values().get()
        return (
            row,
            incident.events.count(),
            Silence.objects.count(),
            AuditEvent.objects.filter(tenant=tenant).count(),
        )


def field_error(html: str, label: str) -> str:
    """The text of the error shown under the field labelled `label` ("" if none)."""
    found = re.search(rf'<p class="error" role="alert"[^>]*>{re.escape(label)}: ([^<]*)</p>', html)
    return found.group(1) if found else ""


def page(client, incident: Incident, query: str = "") -> str:
    response = client.get(f"/incidents/{incident.public_id}/{query}")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def act(client, incident: Incident, action: str, data: dict | None = None, **extra):
    return client.post(f"/incidents/{incident.public_id}/{action}/", data or {}, **extra)


def membership(tenant, role: str) -> Membership:
    return Membership.objects.get(tenant=tenant, user__email=f"{role}@{tenant.slug}.example")


# ---- who may open it --------------------------------------------------------------------------


def test_an_executive_can_neither_open_nor_work_an_incident(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "executive")
    before = written(acme, incident)
    assert client.get(f"/incidents/{incident.public_id}/").status_code == 403
    assert client.get(f"/incidents/{incident.public_id}/timeline/").status_code == 403
    for action in ("acknowledge", "note", "resolve", "flag-breach"):
        assert act(client, incident, action, {"text": "x"}).status_code == 403
    assert written(acme, incident) == before


@pytest.mark.parametrize("role", ["operator", "security", "admin"])
def test_people_on_the_desk_open_an_ordinary_incident(client_for, acme, role):
    incident = deliver(acme, annotations={"summary": "5% of checkouts fail"})
    html = page(client_for("acme", role), incident)
    assert "CheckoutErrors" in html
    assert "5% of checkouts fail" in html
    assert "Chain of custody intact (2 entries)" in html
    assert 'id="live-status"' in html
    assert 'data-ws-path="/ws/incidents/"' in html
    assert "Personal-data breach" not in html


def test_a_security_incident_is_not_found_for_an_operator_but_opens_for_security(client_for, acme):
    incident = deliver(acme, name="BruteForce", category="security")
    operator = client_for("acme", "operator")
    before = written(acme, incident)
    assert operator.get(f"/incidents/{incident.public_id}/").status_code == 404
    assert operator.get(f"/incidents/{incident.public_id}/timeline/").status_code == 404
    assert act(operator, incident, "acknowledge").status_code == 404
    assert act(operator, incident, "note", {"text": "looking"}).status_code == 404
    assert written(acme, incident) == before
    for role in ("security", "admin"):
        html = page(client_for("acme", role), incident)
        assert "BruteForce" in html
        assert "Personal-data breach" in html
        assert "nobody can edit or delete them" in html


def test_another_tenants_incident_is_not_found(client_for, acme, globex):
    theirs = deliver(globex, name="GlobexOnly")
    admin = client_for("acme", "admin")
    before = written(globex, theirs)
    assert admin.get(f"/incidents/{theirs.public_id}/").status_code == 404
    assert admin.get(f"/incidents/{theirs.public_id}/timeline/").status_code == 404
    assert act(admin, theirs, "acknowledge").status_code == 404
    assert admin.get(f"/incidents/{uuid.uuid4()}/").status_code == 404
    assert written(globex, theirs) == before


def test_an_unknown_action_is_not_found_and_actions_want_post(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "operator")
    assert act(client, incident, "delete").status_code == 404
    assert act(client, incident, "ACKNOWLEDGE").status_code == 404
    assert client.get(f"/incidents/{incident.public_id}/acknowledge/").status_code == 405
    assert reload(acme, incident).status == Incident.Status.TRIGGERED


def test_an_action_without_the_csrf_token_is_refused(acme):
    incident = deliver(acme)
    user = get_user_model().objects.get(email="operator@acme.example")
    client = client_on("acme", user, enforce_csrf_checks=True)
    assert act(client, incident, "acknowledge").status_code == 403
    assert reload(acme, incident).status == Incident.Status.TRIGGERED


# ---- what it shows ---------------------------------------------------------------------------


def test_labels_annotations_rule_link_and_the_routing_are_shown(client_for, acme):
    long_value = "v" * 300
    incident = deliver(
        acme,
        annotations={
            "summary": "Checkout fails",
            "runbook_url": "https://runbooks.example.com/checkout",
            "description": "d" * 1000,
        },
        instance=long_value,
    )
    html = page(client_for("acme", "operator"), incident)
    assert f"<dt>instance</dt><dd>{long_value}</dd>" in html
    assert 'href="https://runbooks.example.com/checkout"' in html
    assert "d" * 1000 in html
    # No rule of that name in the portal: the page says so instead of linking.
    assert "not in the portal (deleted or renamed)" in html
    assert "No chart: the rule that fired this incident is not in the portal" in html
    # The seeded P1 policy names PagerDuty, Slack and Teams receivers.
    assert "Routed by the P1 policy." in html
    assert "On-call PagerDuty" in html


def test_the_rule_that_fired_is_linked(client_for, acme):
    from tests.test_alert_pages import make_group, make_rule

    rule = make_rule(acme, make_group(acme), name="QueueBacklog")
    incident = deliver(acme, name="QueueBacklog")
    assert reload(acme, incident).rule_id == rule.pk
    html = page(client_for("acme", "operator"), incident)
    assert f'href="/alerts/rules/{rule.public_id}/"' in html
    # The chart is asked for in a second request, so the page never waits on Prometheus.
    assert f'hx-get="/incidents/{incident.public_id}/?chart=1"' in html


def test_the_notification_log_lists_what_was_sent_for_the_incident(client_for, acme):
    incident = deliver(acme)
    with tenant_context(acme):
        sent = NotificationLog.objects.create(
            receiver_name="On-call SMS",
            kind="sms",
            reason="group-key",
            alert_status="firing",
            outcome="failed",
            detail="provider said: number unreachable",
        )
        incident_notices.note_notification(
            sent, [(incident.fingerprint, _iso(incident.started_at))]
        )
        unrelated = NotificationLog.objects.create(
            receiver_name="Unrelated receiver", kind="email", reason="x", outcome="sent"
        )
    html = page(client_for("acme", "operator"), incident)
    assert "On-call SMS" in html
    assert "provider said: number unreachable" in html
    assert "SMS to On-call SMS: failed" in html  # its timeline entry
    assert unrelated.receiver_name not in html


def test_related_incidents_are_the_same_alert_or_service_of_the_last_week(client_for, acme):
    incident = deliver(acme, name="PaymentsSlow", service="payments")
    same_alert = deliver(acme, name="PaymentsSlow", service="elsewhere")
    same_service = deliver(acme, name="PaymentsErrors", service="payments")
    old = deliver(
        acme, name="PaymentsSlow", service="payments", started=timezone.now() - timedelta(days=8)
    )
    hidden = deliver(acme, name="PaymentsSlow", service="payments", category="security")
    other = deliver(acme, name="SomethingElse", service="search")
    html = page(client_for("acme", "operator"), incident)
    related = html[html.index('id="incident-related-title"') :]
    assert f"/incidents/{same_alert.public_id}/" in related
    assert f"/incidents/{same_service.public_id}/" in related
    for absent in (old, hidden, other, incident):
        assert f"/incidents/{absent.public_id}/" not in related
    security_view = page(client_for("acme", "security"), incident)
    assert f"/incidents/{hidden.public_id}/" in security_view


def test_a_broken_chain_of_custody_is_shown_as_a_warning(client_for, acme):
    incident = deliver(acme)
    with tenant_context(acme):
        # Entries cannot be changed (a trigger refuses it); the head they chain to can.
        Incident.objects.filter(pk=incident.pk).update(timeline_head="f" * 64)
    html = page(client_for("acme", "operator"), incident)
    assert "Chain of custody intact" not in html
    assert (
        "Chain of custody broken: the incident points to an entry its timeline does not end with"
        in html
    )


def test_the_timeline_fragment_carries_the_live_regions(client_for, acme):
    incident = deliver(acme)
    response = client_for("acme", "operator").get(f"/incidents/{incident.public_id}/timeline/")
    assert response.status_code == 200
    html = response.content.decode()
    for region in ("incident-head", "incident-timeline", "incident-notifications"):
        assert re.search(rf'id="{region}"[^>]*hx-swap-oob="true"', html), region
    assert "<html" not in html
    assert "Triggered" in html
    assert "Chain of custody intact (2 entries)" in html


# ---- actions ---------------------------------------------------------------------------------


def test_acknowledge_through_the_page(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "operator")
    html = page(client, incident)
    assert f"/incidents/{incident.public_id}/acknowledge/" in html
    assert f"/incidents/{incident.public_id}/reopen/" not in html
    audits = audited(acme, "incident.acknowledged")
    response = act(client, incident, "acknowledge")
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.public_id}/"
    row = reload(acme, incident)
    assert row.status == Incident.Status.ACKNOWLEDGED
    assert row.acknowledged_by == "operator@acme.example"
    assert kinds(acme, incident)[-1] == Kind.ACKNOWLEDGED
    assert audited(acme, "incident.acknowledged") == audits + 1
    html = page(client, incident)
    assert f"/incidents/{incident.public_id}/acknowledge/" not in html
    assert "Acknowledged." in html  # the message after the redirect


def test_an_htmx_action_answers_the_live_regions(client_for, acme):
    incident = deliver(acme)
    response = act(
        client_for("acme", "operator"),
        incident,
        "note",
        {"text": "Rolled back the deploy."},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'hx-swap-oob="true"' in html
    assert "Note added." in html
    assert "Rolled back the deploy." in html
    assert kinds(acme, incident)[-1] == Kind.NOTE


def test_a_note_is_added_to_the_timeline_and_audited(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "security")
    audits = audited(acme, "incident.note_added")
    text = "Customer reports\nfrom the EU only – looking at the CDN."
    assert act(client, incident, "note", {"text": text}).status_code == 302
    with tenant_context(acme):
        event = incident.events.order_by("id").last()
    assert (event.kind, event.text, event.actor) == (Kind.NOTE, text, "security@acme.example")
    assert audited(acme, "incident.note_added") == audits + 1
    assert "looking at the CDN." in page(client, incident)


def test_assign_to_a_member_to_me_and_back_to_nobody(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "operator")
    html = page(client, incident)
    security = membership(acme, "security")
    executive = membership(acme, "executive")
    # Only members who can see the incident are offered.
    assert f'value="{security.public_id}"' in html
    assert f'value="{executive.public_id}"' not in html
    audits = audited(acme, "incident.assigned")
    assert act(client, incident, "assign", {"assignee": str(security.public_id)}).status_code == 302
    assert reload(acme, incident).assignee_email == "security@acme.example"
    me = membership(acme, "operator")
    assert "Assign to me" in page(client, incident)
    assert act(client, incident, "assign", {"assignee": str(me.public_id)}).status_code == 302
    assert reload(acme, incident).assignee_email == "operator@acme.example"
    assert "Assign to me" not in page(client, incident)
    assert act(client, incident, "assign", {"assignee": ""}).status_code == 302
    row = reload(acme, incident)
    assert (row.assignee_id, row.assignee_email) == (None, "")
    assert kinds(acme, incident)[-3:] == [Kind.ASSIGNED] * 3
    assert audited(acme, "incident.assigned") == audits + 3


def test_a_security_incident_is_assigned_only_to_who_may_see_it(client_for, acme):
    incident = deliver(acme, name="DataExfiltration", category="security")
    client = client_for("acme", "security")
    html = page(client, incident)
    operator = membership(acme, "operator")
    assert f'value="{operator.public_id}"' not in html
    assert f'value="{membership(acme, "admin").public_id}"' in html
    before = written(acme, incident)
    response = act(client, incident, "assign", {"assignee": str(operator.public_id)})
    assert response.status_code == 400
    assert "can see this incident" in field_error(response.content.decode(), "Assignee")
    assert written(acme, incident) == before


def test_silence_the_alert_for_a_chosen_or_custom_duration(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "operator")
    audits = audited(acme, "incident.silenced")
    response = act(client, incident, "silence", {"duration": "4h", "comment": "Vendor outage"})
    assert response.status_code == 302
    response = act(client, incident, "silence", {"duration": "custom", "custom_minutes": "90"})
    assert response.status_code == 302
    with tenant_context(acme):
        silences = list(Silence.objects.order_by("created_at"))[-2:]
    assert [s.comment for s in silences][0] == "Vendor outage"
    lengths = [round((s.ends_at - s.starts_at).total_seconds() / 60) for s in silences]
    assert lengths == [240, 90]
    matcher = {"name": "service", "value": "checkout", "isRegex": False, "isEqual": True}
    assert matcher in silences[0].matchers
    assert all(m["name"] != "tenant" for m in silences[0].matchers)
    assert kinds(acme, incident)[-2:] == [Kind.SILENCED, Kind.SILENCED]
    assert audited(acme, "incident.silenced") == audits + 2


def test_resolve_with_a_note_then_reopen_with_a_reason(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "admin")
    html = page(client, incident)
    assert f"/incidents/{incident.public_id}/resolve/" in html
    assert 'data-confirm="Resolve this incident? Its alert is still firing."' in html
    resolved = audited(acme, "incident.resolved")
    response = act(client, incident, "resolve", {"note": "Fixed by rollback."})
    assert response.status_code == 302
    row = reload(acme, incident)
    assert (row.status, row.resolved_by) == (Incident.Status.RESOLVED, "admin@acme.example")
    assert audited(acme, "incident.resolved") == resolved + 1
    html = page(client, incident)
    assert f"/incidents/{incident.public_id}/resolve/" not in html
    assert f"/incidents/{incident.public_id}/acknowledge/" not in html
    assert f"/incidents/{incident.public_id}/reopen/" in html
    reopened = audited(acme, "incident.reopened")
    assert act(client, incident, "reopen", {"reason": "It came back."}).status_code == 302
    row = reload(acme, incident)
    assert (row.status, row.resolved_at) == (Incident.Status.TRIGGERED, None)
    assert kinds(acme, incident)[-2:] == [Kind.RESOLVED, Kind.REOPENED]
    assert audited(acme, "incident.reopened") == reopened + 1


def test_a_refused_move_is_shown_and_writes_nothing(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "operator")
    before = written(acme, incident)
    response = act(client, incident, "reopen", {"reason": "why not"})
    assert response.status_code == 400
    assert "Only a resolved incident can be reopened." in response.content.decode()
    assert written(acme, incident) == before
    with tenant_context(acme):
        services.resolve_incident(incident_id=incident.public_id, actor=SYSTEM)
    before = written(acme, incident)
    response = act(client, incident, "acknowledge")
    assert response.status_code == 400
    assert "A resolved incident cannot be acknowledged; reopen it." in response.content.decode()
    assert written(acme, incident) == before


BAD_INPUT = [
    ("note", {"text": "fine\x00text"}, "Note", "U+0000"),
    ("note", {"text": "x" * (services.MAX_NOTE + 1)}, "Note", "at most 10000"),
    ("note", {"text": "   "}, "Note", "required"),
    ("note", {"text": "hidden \u202e direction"}, "Note", "U+202E"),
    ("silence", {"duration": "2h"}, "For", "Choose one of"),
    ("silence", {"duration": "15m\x00"}, "For", "Choose one of"),
    ("silence", {"duration": "custom"}, "Custom minutes", "Give the number of minutes"),
    ("silence", {"duration": "custom", "custom_minutes": "0"}, "Custom minutes", "1 to 43200"),
    (
        "silence",
        {"duration": "custom", "custom_minutes": "50000"},
        "Custom minutes",
        "At most 43200",
    ),
    ("silence", {"duration": "custom", "custom_minutes": "1.5"}, "Custom minutes", "whole number"),
    ("silence", {"duration": "1h", "comment": "c" * 1001}, "Why", "at most 1000"),
    ("assign", {"assignee": str(uuid.uuid4())}, "Assignee", "Choose a member"),
    ("assign", {"assignee": "not-a-uuid\x00"}, "Assignee", "Choose a member"),
    ("resolve", {"note": "done\x07"}, "Resolution note", "U+0007"),
    ("reopen", {"reason": ""}, "Why reopen", "Say why"),
]


@pytest.mark.parametrize(("action", "data", "label", "message"), BAD_INPUT)
def test_bad_input_is_refused_on_its_field_and_nothing_is_written(
    client_for, acme, action, data, label, message
):
    incident = deliver(acme)
    if action == "reopen":
        with tenant_context(acme):
            services.resolve_incident(incident_id=incident.public_id, actor=SYSTEM)
    before = written(acme, incident)
    response = act(client_for("acme", "operator"), incident, action, data)
    assert response.status_code == 400
    error = field_error(response.content.decode(), label)
    assert message in error, error or response.content.decode()[:3000]
    assert written(acme, incident) == before


def test_a_member_of_another_tenant_cannot_be_assigned(client_for, acme, globex):
    incident = deliver(acme)
    outsider = membership(globex, "operator")
    stranger = MembershipFactory(tenant=globex, role="admin")
    before = written(acme, incident)
    client = client_for("acme", "operator")
    for member in (outsider, stranger):
        response = act(client, incident, "assign", {"assignee": str(member.public_id)})
        assert response.status_code == 400
        assert "Choose a member" in field_error(response.content.decode(), "Assignee")
    assert written(acme, incident) == before


def test_a_refused_htmx_action_answers_the_regions_with_the_errors(client_for, acme):
    incident = deliver(acme)
    before = written(acme, incident)
    response = act(
        client_for("acme", "operator"), incident, "note", {"text": "a\x00"}, HTTP_HX_REQUEST="true"
    )
    # htmx swaps only a successful answer: this one is the form with its error.
    assert response.status_code == 200
    html = response.content.decode()
    assert "U+0000" in field_error(html, "Note")
    assert 'hx-swap-oob="true"' in html and "data-notice" not in html
    assert written(acme, incident) == before


# ---- personal-data breach ---------------------------------------------------------------------


def test_only_a_security_incident_can_be_flagged_as_a_breach(client_for, acme):
    incident = deliver(acme)
    client = client_for("acme", "admin")
    before = written(acme, incident)
    response = act(client, incident, "flag-breach")
    assert response.status_code == 400
    assert "Only a security incident can be flagged" in response.content.decode()
    assert written(acme, incident) == before
    assert reload(acme, incident).breach_flagged_at is None


def test_flagging_a_breach_shows_the_72_hour_deadline_and_records_who_was_told(client_for, acme):
    incident = deliver(acme, name="LeakedDump", category="security")
    client = client_for("acme", "security")
    html = page(client, incident)
    assert "Flag as a personal-data breach" in html
    assert 'data-confirm="Flag this incident as a personal-data breach?' in html
    audits = audited(acme, "incident.breach_flagged")
    assert act(client, incident, "flag-breach").status_code == 302
    row = reload(acme, incident)
    assert row.breach_flagged_by == "security@acme.example"
    assert audited(acme, "incident.breach_flagged") == audits + 1
    deadline = row.breach_flagged_at + timedelta(hours=72)
    html = page(client, incident)
    assert f'data-deadline="{deadline.isoformat(timespec="milliseconds")}"' in html
    assert deadline.strftime("%Y-%m-%d %H:%M") in html
    assert re.search(r'id="breach-countdown" class="warn"[^>]*>71 h 59 min \d\d s left<', html)
    assert "Flag as a personal-data breach" not in html

    notified_at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    notices = audited(acme, "incident.breach_notice_recorded")
    response = act(
        client,
        incident,
        "breach-notice",
        {
            "recipient": "CNIL (supervisory authority)",
            "notified_at": notified_at.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    row = reload(acme, incident)
    assert row.authority_notified_at == notified_at
    assert kinds(acme, incident)[-1] == Kind.AUTHORITY_NOTIFIED
    assert audited(acme, "incident.breach_notice_recorded") == notices + 1
    html = page(client, incident)
    assert "CNIL (supervisory authority)" in html
    assert "within the deadline" in html
    assert 'id="breach-countdown"' not in html


def test_a_passed_breach_deadline_is_shown_in_red(client_for, acme):
    incident = deliver(acme, name="OldLeak", category="security")
    with tenant_context(acme):
        services.flag_personal_data_breach(incident_id=incident.public_id, actor=SYSTEM)
        Incident.objects.filter(pk=incident.pk).update(
            breach_flagged_at=timezone.now() - timedelta(hours=80)
        )
    html = page(client_for("acme", "security"), incident)
    assert re.search(
        r'id="breach-countdown" class="error"[^>]*>the deadline passed 8 h 00 min \d\d s ago<', html
    )


BAD_NOTICES = [
    ({"recipient": "DPA", "notified_at": "2999-01-01T10:00"}, "When (UTC)", "in the future"),
    ({"recipient": "DPA", "notified_at": "yesterday"}, "When (UTC)", "Give a date and time"),
    ({"recipient": "DPA", "notified_at": "2026-01-01T10:00\x00"}, "When (UTC)", "date and time"),
    ({"recipient": "", "notified_at": "2026-01-01T10:00"}, "Who was notified", "Say who"),
    ({"recipient": "D\x00PA", "notified_at": "2026-01-01T10:00"}, "Who was notified", "U+0000"),
    ({"recipient": "x" * 301, "notified_at": "2026-01-01T10:00"}, "Who was notified", "300"),
]


@pytest.mark.parametrize(("data", "label", "message"), BAD_NOTICES)
def test_a_bad_breach_notice_is_refused_on_its_field(client_for, acme, data, label, message):
    incident = deliver(acme, name="Leak", category="security")
    with tenant_context(acme):
        services.flag_personal_data_breach(incident_id=incident.public_id, actor=SYSTEM)
    before = written(acme, incident)
    response = act(client_for("acme", "security"), incident, "breach-notice", data)
    assert response.status_code == 400
    error = field_error(response.content.decode(), label)
    assert message in error, error or response.content.decode()[:3000]
    assert written(acme, incident) == before


# ---- the chart -------------------------------------------------------------------------------


def queue_incident(tenant, **labels: str) -> Incident:
    """An incident of the portal rule QueueDeep (`queue_depth > 100`), fired two minutes ago."""
    from tests.test_alert_pages import make_group, make_rule

    make_rule(tenant, make_group(tenant, interval="5s"), name="QueueDeep", expr="queue_depth > 100")
    return deliver(
        tenant, name="QueueDeep", started=timezone.now() - timedelta(minutes=2), **labels
    )


@pytest.fixture
def rule_incident(acme) -> Incident:
    return queue_incident(acme, queue="emails")


def test_the_chart_says_when_prometheus_is_not_connected(client_for, settings, rule_incident):
    settings.PROMETHEUS_URL = ""
    html = page(client_for("acme", "operator"), rule_incident, "?chart=1")
    assert "not connected" in html
    assert "PROMETHEUS_URL is not set" in html
    assert "incident-chart-data" not in html


def test_the_chart_says_when_prometheus_is_down(client_for, settings, rule_incident):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    html = page(client_for("acme", "operator"), rule_incident, "?chart=1")
    assert "No chart: Prometheus did not answer" in html
    assert "incident-chart-data" not in html
    # The rest of the page is all there.
    assert "Chain of custody intact" in html


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Prometheus scraping acme's two queues and globex's; yields it and the exporter."""
    with running_exporter() as exporter:
        exporter.set_series(
            [
                ("queue_depth", {"tenant": "acme", "queue": "emails"}, 250),
                ("queue_depth", {"tenant": "acme", "queue": "reports"}, 20),
                ("queue_depth", {"tenant": "globex", "queue": "emails"}, 999),
            ]
        )
        directory = Path(tmp_path_factory.mktemp("incident-prometheus"))
        with running_prometheus(directory, scrape_configs=[exporter.scrape_config()]) as server:
            server.wait_for_samples("queue_depth", 3)
            yield server, exporter


def test_the_chart_draws_the_rules_expression_around_the_incident(
    client_for, settings, prometheus, acme
):
    server, exporter = prometheus
    settings.PROMETHEUS_URL = server.url
    # The alert carries its series' labels, as Prometheus sends them.
    incident = queue_incident(acme, queue="emails", job=EXPORTER_JOB, instance=exporter.target)
    html = page(client_for("acme", "operator"), incident, "?chart=1")
    block = re.search(
        r'<script id="incident-chart-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert block, html[html.find('id="incident-chart"') :][:2000]
    figure = json.loads(block.group(1))
    names = [trace["name"] for trace in figure["data"]]
    # The incident's own series first and bold; acme's only (never globex's 999).
    assert len(names) == 2 and 'queue="emails"' in names[0], names
    assert all("tenant" not in name for name in names)
    assert figure["data"][0]["line"]["width"] > figure["data"][1]["line"]["width"]
    assert {v for v in figure["data"][0]["y"] if v is not None} == {250}
    shapes = figure["layout"]["shapes"]
    started_ms = round(incident.started_at.timestamp() * 1000)
    band = next(s for s in shapes if s["type"] == "rect")
    assert band["x0"] == started_ms
    assert any(s.get("y0") == 100 and s["xref"] == "paper" for s in shapes)  # the threshold
    assert figure["layout"]["xaxis"]["range"][0] == started_ms - 30 * 60 * 1000
    assert "tenant=&quot;acme&quot;" in html  # the scoped query, shown under the chart
