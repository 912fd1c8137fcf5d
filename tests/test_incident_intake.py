"""Alertmanager's notifications become incidents: the payload is checked, each alert occurrence
is recorded once whatever the order or repetition of deliveries, people's actions follow the
incident's state machine, and the timeline is a hash chain the database keeps append-only.

Most tests run in the test's transaction; the concurrency tests commit (two connections must see
each other's rows), with fingerprints of their own, since incidents and their timelines are never
deleted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client
from django_tenants.utils import tenant_context

from alerts import services, timeline
from alerts.incident_intake import apply_notification
from alerts.incident_live import CHANGED_EVENT, desk_group, security_group
from alerts.intake import (
    MAX_ALERTS,
    MAX_LABELS,
    MAX_TEXT,
    PayloadError,
    parse_notification,
    summarise,
)
from alerts.models import AlertingSettings, AlertRule, Incident, IncidentEvent, RuleGroup
from tenants import audit
from tenants.models import AuditEvent, Tenant
from tests.factories import MembershipFactory
from tests.helpers import committed_writes, host_of

STARTS = "2026-01-05T10:00:00Z"
ENDS = "2026-01-05T10:30:00Z"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
ACTOR = audit.Actor.system("incident tests")
Kind = IncidentEvent.Kind


def fingerprint() -> str:
    """A fingerprint no other test (nor a committed incident of an earlier one) uses."""
    return uuid.uuid4().hex[:16]


def alert(
    fp: str,
    *,
    status: str = "firing",
    starts: str = STARTS,
    ends: str | None = None,
    name: str = "DiskFull",
    severity: str = "P2",
    tenant: str = "acme",
    annotations: dict | None = None,
    **labels: str,
) -> dict:
    """One alert as Alertmanager's webhook (version 4) carries it."""
    return {
        "status": status,
        "labels": {"alertname": name, "tenant": tenant, "severity": severity, **labels},
        "annotations": {"summary": f"{name} on db-1"} if annotations is None else annotations,
        "startsAt": starts,
        "endsAt": ends or (ENDS if status == "resolved" else GO_ZERO_TIME),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp,
    }


def document(*alerts: dict, **extra) -> dict:
    firing = any(a.get("status") == "firing" for a in alerts if isinstance(a, dict))
    return {
        "version": "4",
        "status": "firing" if firing else "resolved",
        "receiver": "acme__portal",
        "groupKey": '{}:{alertname="DiskFull"}',
        "alerts": list(alerts),
        **extra,
    }


def body(*alerts: dict, **extra) -> bytes:
    return json.dumps(document(*alerts, **extra)).encode()


def deliver(*alerts: dict):
    """One delivery into acme (the caller is in acme's schema)."""
    return apply_notification(parse_notification(body(*alerts), schema="acme"))


def incident_of(fp: str, starts: str = STARTS) -> Incident:
    return Incident.objects.get(fingerprint=fp, started_at=datetime.fromisoformat(starts))


def kinds(incident: Incident) -> list[str]:
    return list(incident.events.order_by("id").values_list("kind", flat=True))


def intake_audits(tenant) -> int:
    return AuditEvent.objects.filter(tenant=tenant, action="incident.intake").count()


@pytest.fixture
def in_acme(acme):
    with tenant_context(acme):
        yield acme


# ---- the payload ------------------------------------------------------------------------------


def test_a_notification_is_read_into_its_alerts():
    fp = fingerprint()
    raw = alert(fp, starts="2026-01-05T10:00:00.123456789Z", job="node")
    notification = parse_notification(body(raw), schema="acme")

    assert (notification.status, notification.receiver) == ("firing", "acme__portal")
    assert notification.group_key == '{}:{alertname="DiskFull"}'
    (parsed,) = notification.alerts
    assert parsed.fingerprint == fp
    assert parsed.labels == raw["labels"]
    assert parsed.annotations == {"summary": "DiskFull on db-1"}
    # Go's nanoseconds are cut to microseconds; the time keeps its zone.
    assert parsed.starts_at == datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert parsed.ends_at is None  # Go's zero time: not ended
    assert parsed.generator_url == raw["generatorURL"]


def test_a_resolved_alert_carries_its_end_and_missing_annotations_are_empty():
    raw = alert(fingerprint(), status="resolved")
    del raw["annotations"]
    (parsed,) = parse_notification(body(raw), schema="acme").alerts
    assert parsed.ends_at == datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    assert parsed.annotations == {}


def _with(field: str, value) -> dict:
    bad = alert("bad")
    bad[field] = value
    return bad


def _labelled(**labels) -> dict:
    bad = alert("bad")
    bad["labels"] = {**bad["labels"], **labels}
    return bad


REFUSED = [
    (b"not json", "the body is not JSON"),
    (b"\xff\xfe{}", "the body is not JSON"),
    (b"[]", "the body must be a JSON object"),
    (json.dumps(document(alert("a"), version="3")).encode(), 'version must be "4"'),
    (json.dumps(document(alert("a"), status="pending")).encode(), "status must be firing or"),
    (body(), f"alerts must be a list of 1 to {MAX_ALERTS} alerts"),
    (json.dumps({**document(), "alerts": "many"}).encode(), "alerts must be a list"),
    (body(*[alert(str(i)) for i in range(MAX_ALERTS + 1)]), "alerts must be a list of 1 to"),
    (body(alert("ok"), "text"), "alerts[1] must be an object"),
    (body(alert("ok"), _with("labels", ["alertname"])), "alerts[1].labels must be an object"),
    (
        body(_labelled(**{f"l{i}": "v" for i in range(MAX_LABELS)})),
        f"alerts[0].labels must be an object of at most {MAX_LABELS} entries",
    ),
    (body(alert("ok"), _labelled(team=3)), "alerts[1].labels.team must be text"),
    (body(alert("ok"), _labelled(team="ops\x00")), "alerts[1].labels.team must be text"),
    (body(_with("annotations", {"summary\x00": "x"})), "alerts[0].annotations.summary"),
    (
        body(_with("annotations", {"summary": "x" * (MAX_TEXT + 1)})),
        f"alerts[0].annotations.summary must be text of at most {MAX_TEXT} chars",
    ),
    (body(alert("ok"), alert("b", tenant="globex")), "alerts[1].labels.tenant does not name"),
    (body(_labelled(tenant="acme\u200b")), "alerts[0].labels.tenant does not name this tenant"),
    (body(_with("labels", {"alertname": "x"})), "alerts[0].labels.tenant does not name"),
    (body(_with("status", "pending")), "alerts[0].status must be firing or resolved"),
    (body(alert("ok"), _with("fingerprint", None)), "alerts[1].fingerprint is required"),
    (body(_with("fingerprint", "")), "alerts[0].fingerprint is required"),
    (body(_with("fingerprint", "f" * 65)), "alerts[0].fingerprint "),
    (body(_with("fingerprint", 12345)), "alerts[0].fingerprint is required"),
    (body(_with("startsAt", None)), "alerts[0].startsAt is required"),
    (body(_with("startsAt", GO_ZERO_TIME)), "alerts[0].startsAt is required"),
    (body(_with("startsAt", "yesterday")), "alerts[0].startsAt is not an RFC 3339 time"),
    (body(_with("startsAt", 1767607200)), "alerts[0].startsAt is not an RFC 3339 time"),
    (body(_with("endsAt", "soon")), "alerts[0].endsAt is not an RFC 3339 time"),
    (body(alert("ok"), groupKey="{}\x00"), "groupKey must not contain NUL characters"),
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_a_payload_the_portal_does_not_take_is_refused_with_where_and_why(raw, reason):
    with pytest.raises(PayloadError) as refused:
        parse_notification(raw, schema="acme")
    assert str(refused.value).startswith(reason)


def test_a_time_without_its_zone_is_refused():
    with pytest.raises(PayloadError, match=r"alerts\[0\].startsAt"):
        parse_notification(body(alert(fingerprint(), starts="2026-01-05T10:00:00")), schema="acme")


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (body(_with("fingerprint", "ab\x00cd")), "alerts[0].fingerprint"),
        (body(_with("generatorURL", "http://p/\x00")), "alerts[0].generatorURL"),
        (body(alert("ok"), receiver="acme\x00"), "receiver"),
        # An unpaired surrogate escape parses, but no UTF-8 column can keep it.
        (body(alert("ok"), _labelled(team="ops\ud800")), "alerts[1].labels.team"),
        (body(_with("fingerprint", "ab\udfffcd")), "alerts[0].fingerprint"),
        (body(alert("ok"), groupKey="{}\ud800"), "groupKey"),
    ],
    ids=["fingerprint", "generatorURL", "receiver", "label-surrogate", "fp-surrogate", "gk"],
)
def test_nul_outside_labels_is_refused_too(raw, where):
    with pytest.raises(PayloadError) as refused:
        parse_notification(raw, schema="acme")
    assert str(refused.value).startswith(where)


def test_a_notification_is_summarised_for_plain_message_providers():
    notification = parse_notification(
        body(
            alert("a", severity="P1", name="HighLatency", annotations={"summary": "p99 2 s"}),
            alert("b", severity="P1", name="HighLatency", annotations={"description": "slow"}),
            alert("c", severity="P1", name="HighLatency", annotations={}),
        ),
        schema="acme",
    )
    title, text, severity = summarise(notification)
    assert title == "[FIRING] P1 HighLatency (3 alerts)"
    assert text.splitlines() == ["p99 2 s", "slow", "HighLatency"]
    assert severity == "P1"


# ---- recording: one incident per occurrence, whatever the order -------------------------------


def test_a_firing_alert_opens_an_incident_with_its_timeline(in_acme):
    group = RuleGroup.objects.create(name="disks")
    rule = AlertRule.objects.create(group=group, name="DiskFull", expr="disk_free < 1")
    fp = fingerprint()
    audits = intake_audits(in_acme)

    result = deliver(alert(fp, severity="P1", category="performance", job="node-exporter"))

    (incident,) = result.opened
    assert result.resolved == [] and result.unchanged == 0
    stored = incident_of(fp)
    assert stored.pk == incident.pk
    assert (stored.alertname, stored.severity, stored.category) == ("DiskFull", "P1", "performance")
    assert (stored.service, stored.summary, stored.rule_id) == (
        "node-exporter",
        "DiskFull on db-1",
        rule.pk,
    )
    assert (stored.status, stored.alert_state) == ("triggered", "firing")
    assert stored.labels["job"] == "node-exporter"
    assert stored.generator_url.startswith("http://prometheus:9090/")
    assert kinds(stored) == [Kind.FIRED, Kind.ROUTED]
    fired, routed = stored.events.order_by("id")
    assert (fired.at, fired.actor, fired.text) == (
        stored.started_at,
        "Alertmanager",
        stored.summary,
    )
    assert routed.detail == {"receivers": services.policy_receivers("P1")}
    assert timeline.verify(stored).intact
    assert intake_audits(in_acme) == audits + 1
    event = AuditEvent.objects.filter(tenant=in_acme, action="incident.intake").latest("seq")
    assert event.after["opened"] == [str(stored.public_id)]
    assert event.actor_label == "Alertmanager"


def test_labels_the_portal_does_not_know_fall_back_to_defaults(in_acme):
    fp = fingerprint()
    raw = alert(
        fp, severity="critical", category="nonsense", annotations={"description": "d" * 600}
    )
    raw["labels"].pop("alertname")
    deliver(raw)
    stored = incident_of(fp)
    assert (stored.alertname, stored.severity, stored.category) == (
        "(unnamed alert)",
        "P2",
        "availability",
    )
    assert stored.summary == "d" * 500  # the description stands in for the summary, cut to fit
    assert stored.rule_id is None


def test_the_same_delivery_twice_records_one_incident_and_changes_nothing_the_second_time(in_acme):
    fp = fingerprint()
    first = deliver(alert(fp))
    stored = incident_of(fp)
    audits = intake_audits(in_acme)

    second = deliver(alert(fp))

    assert (len(first.opened), len(second.opened), second.unchanged) == (1, 0, 1)
    assert second.resolved == []
    assert Incident.objects.filter(fingerprint=fp).count() == 1
    again = incident_of(fp)
    assert kinds(again) == [Kind.FIRED, Kind.ROUTED]
    assert (again.updated_at, again.timeline_head) == (stored.updated_at, stored.timeline_head)
    assert intake_audits(in_acme) == audits  # nothing happened, nothing to audit


def test_a_resolution_before_its_firing_records_a_resolved_incident_a_late_firing_keeps_it(in_acme):
    fp = fingerprint()

    resolution = deliver(alert(fp, status="resolved"))

    assert len(resolution.opened) == len(resolution.resolved) == 1
    stored = incident_of(fp)
    assert (stored.status, stored.alert_state, stored.resolved_by) == (
        "resolved",
        "resolved",
        "Alertmanager",
    )
    assert stored.ended_at == stored.resolved_at == datetime.fromisoformat(ENDS)

    late_firing = deliver(alert(fp))

    assert (late_firing.opened, late_firing.resolved, late_firing.unchanged) == ([], [], 1)
    stored.refresh_from_db()
    assert (stored.status, stored.alert_state) == ("resolved", "resolved")
    assert kinds(stored) == [Kind.FIRED, Kind.ROUTED, Kind.ALERT_RESOLVED]
    assert Incident.objects.filter(fingerprint=fp).count() == 1
    assert timeline.verify(stored).intact


def test_the_alert_clearing_resolves_its_incident_once(in_acme):
    fp = fingerprint()
    deliver(alert(fp))

    cleared = deliver(alert(fp, status="resolved"))
    repeated = deliver(alert(fp, status="resolved"))

    assert [i.fingerprint for i in cleared.resolved] == [fp]
    assert (repeated.resolved, repeated.unchanged) == ([], 1)
    stored = incident_of(fp)
    assert (stored.status, stored.alert_state) == ("resolved", "resolved")
    assert stored.resolved_at == datetime.fromisoformat(ENDS)
    assert kinds(stored) == [Kind.FIRED, Kind.ROUTED, Kind.ALERT_RESOLVED]


def test_an_incident_a_person_resolved_records_its_alert_clearing_without_resolving_again(in_acme):
    fp = fingerprint()
    deliver(alert(fp))
    services.resolve_incident(incident_id=incident_of(fp).public_id, actor=ACTOR)

    cleared = deliver(alert(fp, status="resolved"))

    assert cleared.resolved == []  # it was no longer open
    stored = incident_of(fp)
    assert (stored.status, stored.alert_state, stored.resolved_by) == (
        "resolved",
        "resolved",
        ACTOR.label,
    )
    last = stored.events.order_by("-id").first()
    assert (last.kind, last.text) == (
        Kind.ALERT_RESOLVED,
        "The alert cleared (the incident was already resolved).",
    )
    assert timeline.verify(stored).intact


@pytest.mark.parametrize("resolution_first", [False, True])
def test_several_alerts_in_one_delivery_with_repeats_of_one_key(in_acme, resolution_first):
    a, b, c = fingerprint(), fingerprint(), fingerprint()
    c_twice = [alert(c), alert(c, status="resolved")]
    if resolution_first:
        c_twice.reverse()
    audits = intake_audits(in_acme)

    result = deliver(alert(a), alert(b, severity="P0"), alert(a), *c_twice)

    assert sorted(i.fingerprint for i in result.opened) == sorted([a, b, c])
    assert [i.fingerprint for i in result.resolved] == [c]  # in one delivery the clearing wins
    assert result.unchanged == 0
    assert Incident.objects.filter(fingerprint__in=[a, b, c]).count() == 3
    assert incident_of(c).status == "resolved"
    assert incident_of(a).status == incident_of(b).status == "triggered"
    assert kinds(incident_of(a)) == [Kind.FIRED, Kind.ROUTED]
    assert intake_audits(in_acme) == audits + 1  # one delivery, one audit event


def test_the_same_alert_starting_again_is_a_second_incident(in_acme):
    fp = fingerprint()
    later = "2026-01-06T08:00:00Z"
    deliver(alert(fp))
    deliver(alert(fp, status="resolved"))

    again = deliver(alert(fp, starts=later))

    assert [i.started_at for i in again.opened] == [datetime.fromisoformat(later)]
    assert Incident.objects.filter(fingerprint=fp).count() == 2
    assert incident_of(fp).status == "resolved"
    assert incident_of(fp, later).status == "triggered"


def test_a_repeated_firing_refreshes_the_annotations_until_the_alert_clears(in_acme):
    fp = fingerprint()
    deliver(alert(fp, annotations={"summary": "queue depth is 120"}))

    refreshed = deliver(alert(fp, annotations={"summary": "queue depth is 812", "runbook": "r"}))

    assert (refreshed.opened, refreshed.resolved, refreshed.unchanged) == ([], [], 0)
    stored = incident_of(fp)
    assert stored.annotations == {"summary": "queue depth is 812", "runbook": "r"}
    assert stored.summary == "queue depth is 812"
    assert kinds(stored) == [Kind.FIRED, Kind.ROUTED]  # current values, not timeline entries

    deliver(alert(fp, status="resolved", annotations={"summary": "queue depth is 3"}))
    late = deliver(alert(fp, annotations={"summary": "queue depth is 900"}))

    assert late.unchanged == 1
    assert incident_of(fp).summary == "queue depth is 812"


def test_changes_reach_the_desk_and_security_ones_only_the_security_desk(
    in_acme, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    desk, security = (async_to_sync(layer.new_channel)() for _ in range(2))
    async_to_sync(layer.group_add)(desk_group("acme"), desk)
    async_to_sync(layer.group_add)(security_group("acme"), security)
    ordinary_fp, security_fp = fingerprint(), fingerprint()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            deliver(alert(ordinary_fp), alert(security_fp, category="security"))
        to_desk, to_security = (_receive(layer, channel) for channel in (desk, security))
    finally:
        async_to_sync(layer.group_discard)(desk_group("acme"), desk)
        async_to_sync(layer.group_discard)(security_group("acme"), security)

    assert to_desk == {
        "type": CHANGED_EVENT,
        "incidents": [str(incident_of(ordinary_fp).public_id)],
    }
    assert to_security == {
        "type": CHANGED_EVENT,
        "incidents": [str(incident_of(security_fp).public_id)],
    }


def _receive(layer, channel: str, timeout: float = 10.0) -> dict:
    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel), timeout)

    return async_to_sync(receive)()


# ---- people's actions: the state machine ----------------------------------------------------


@pytest.fixture
def incident(in_acme) -> Incident:
    fp = fingerprint()
    deliver(alert(fp))
    return incident_of(fp)


def _field_of(refused: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return set(refused.value.message_dict)


def test_acknowledging_twice_is_one_acknowledgement(incident, in_acme):
    audits = AuditEvent.objects.filter(tenant=in_acme).count()

    first = services.acknowledge_incident(incident_id=incident.public_id, actor=ACTOR)
    second = services.acknowledge_incident(incident_id=incident.public_id, actor=ACTOR)

    assert first.status == second.status == "acknowledged"
    incident.refresh_from_db()
    assert (incident.status, incident.acknowledged_by) == ("acknowledged", ACTOR.label)
    assert incident.acknowledged_at is not None
    assert kinds(incident).count(Kind.ACKNOWLEDGED) == 1
    assert AuditEvent.objects.filter(tenant=in_acme).count() == audits + 1
    event = AuditEvent.objects.filter(tenant=in_acme).latest("seq")
    assert (event.action, event.before, event.after) == (
        "incident.acknowledged",
        {"status": "triggered"},
        {"status": "acknowledged"},
    )


def test_resolving_reopening_and_the_moves_that_are_refused(incident):
    incident_id = incident.public_id
    with pytest.raises(ValidationError) as refused:
        services.reopen_incident(incident_id=incident_id, actor=ACTOR)
    assert _field_of(refused) == {"status"}

    resolved = services.resolve_incident(incident_id=incident_id, actor=ACTOR, note="disk freed")
    assert (resolved.status, resolved.resolved_by) == ("resolved", ACTOR.label)
    services.resolve_incident(incident_id=incident_id, actor=ACTOR)  # a second click: no change
    with pytest.raises(ValidationError) as refused:
        services.acknowledge_incident(incident_id=incident_id, actor=ACTOR)
    assert _field_of(refused) == {"status"}

    reopened = services.reopen_incident(incident_id=incident_id, actor=ACTOR, reason="back")
    assert (reopened.status, reopened.resolved_at, reopened.resolved_by) == ("triggered", None, "")

    services.acknowledge_incident(incident_id=incident_id, actor=ACTOR)
    services.resolve_incident(incident_id=incident_id, actor=ACTOR)
    # Reopening goes back to where people stood: it had been acknowledged.
    assert services.reopen_incident(incident_id=incident_id, actor=ACTOR).status == "acknowledged"

    incident.refresh_from_db()
    assert kinds(incident) == [
        Kind.FIRED,
        Kind.ROUTED,
        Kind.RESOLVED,
        Kind.REOPENED,
        Kind.ACKNOWLEDGED,
        Kind.RESOLVED,
        Kind.REOPENED,
    ]
    note, reason = incident.events.filter(kind__in=[Kind.RESOLVED, Kind.REOPENED]).order_by("id")[
        :2
    ]
    assert (note.text, reason.text) == ("disk freed", "back")
    assert timeline.verify(incident).intact


def test_assigning_to_members_who_can_see_the_incident(incident, acme, globex):
    operator = MembershipFactory(tenant=acme, role="operator")
    executive = MembershipFactory(tenant=acme, role="executive")
    outsider = MembershipFactory(tenant=globex, role="admin")

    assigned = services.assign_incident(
        incident_id=incident.public_id, assignee=str(operator.public_id), actor=ACTOR
    )
    services.assign_incident(
        incident_id=incident.public_id, assignee=operator.public_id, actor=ACTOR
    )  # the same person again: no change
    assert (assigned.assignee_id, assigned.assignee_email) == (
        operator.user_id,
        operator.user.email,
    )

    for refused_member in (executive, outsider):
        with pytest.raises(ValidationError) as refused:
            services.assign_incident(
                incident_id=incident.public_id, assignee=refused_member.public_id, actor=ACTOR
            )
        assert _field_of(refused) == {"assignee"}
    with pytest.raises(ValidationError) as refused:
        services.assign_incident(incident_id=incident.public_id, assignee=uuid.uuid4(), actor=ACTOR)
    assert _field_of(refused) == {"assignee"}

    unassigned = services.assign_incident(
        incident_id=incident.public_id, assignee=None, actor=ACTOR
    )
    assert (unassigned.assignee_id, unassigned.assignee_email) == (None, "")
    incident.refresh_from_db()
    entries = incident.events.filter(kind=Kind.ASSIGNED).order_by("id")
    assert [e.text for e in entries] == [f"Assigned to {operator.user.email}.", "Unassigned."]


def test_a_security_incident_goes_only_to_members_who_may_see_security_incidents(in_acme, acme):
    fp = fingerprint()
    deliver(alert(fp, category="security"))
    incident_id = incident_of(fp).public_id
    operator = MembershipFactory(tenant=acme, role="operator")
    security = MembershipFactory(tenant=acme, role="security")

    with pytest.raises(ValidationError) as refused:
        services.assign_incident(incident_id=incident_id, assignee=operator.public_id, actor=ACTOR)
    assert "cannot see this incident" in refused.value.message_dict["assignee"][0]
    assigned = services.assign_incident(
        incident_id=incident_id, assignee=security.public_id, actor=ACTOR
    )
    assert assigned.assignee_email == security.user.email


def test_an_assignee_that_is_not_a_member_id_is_refused_by_field(incident):
    with pytest.raises(ValidationError) as refused:
        services.assign_incident(incident_id=incident.public_id, assignee="not-an-id", actor=ACTOR)
    assert _field_of(refused) == {"assignee"}


@pytest.mark.parametrize("text", ["", "   \n", "x" * (services.MAX_NOTE + 1)])
def test_a_note_must_say_something_and_fit(incident, text):
    with pytest.raises(ValidationError) as refused:
        services.add_incident_note(incident_id=incident.public_id, text=text, actor=ACTOR)
    assert _field_of(refused) == {"text"}
    assert kinds(incident) == [Kind.FIRED, Kind.ROUTED]


# ---- the timeline: hash-chained, append-only ----------------------------------------------------


def test_the_timeline_chain_verifies_and_a_different_head_is_caught(incident):
    services.acknowledge_incident(incident_id=incident.public_id, actor=ACTOR)
    services.add_incident_note(incident_id=incident.public_id, text="looking", actor=ACTOR)
    deliver(alert(incident.fingerprint, status="resolved"))
    incident.refresh_from_db()

    verification = timeline.verify(incident)
    assert (verification.intact, verification.entries) == (True, 5)
    events = list(incident.events.order_by("id"))
    assert events[0].previous_hash == timeline.GENESIS
    assert all(e.previous_hash == p.hash for p, e in zip(events, events[1:], strict=False))
    assert incident.timeline_head == events[-1].hash

    incident.timeline_head = events[-2].hash  # as if the last entry had been cut off
    assert timeline.verify(incident) == timeline.Verification(False, 5, 5)


def test_the_database_refuses_to_change_or_delete_a_timeline_entry(incident):
    entry = incident.events.order_by("id").first()
    attempts = [
        lambda: IncidentEvent.objects.filter(pk=entry.pk).update(text="nothing happened"),
        lambda: IncidentEvent.objects.filter(pk=entry.pk).delete(),
        lambda: _sql("UPDATE alerts_incidentevent SET hash = 'x' WHERE id = %s", entry.pk),
        lambda: _sql("DELETE FROM alerts_incidentevent WHERE incident_id = %s", incident.pk),
    ]
    for attempt in attempts:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    with pytest.raises(ProtectedError), transaction.atomic():
        incident.delete()  # an incident with a timeline cannot go either

    assert kinds(incident) == [Kind.FIRED, Kind.ROUTED]
    assert IncidentEvent.objects.get(pk=entry.pk).text == entry.text
    assert timeline.verify(incident).intact


def _sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


# ---- the endpoint Alertmanager calls ------------------------------------------------------------


def post_intake(tenant, payload: bytes, authorization: str | None):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    client = Client(HTTP_HOST=host_of(None))
    return client.post(
        f"/hooks/alertmanager/{tenant.public_id}/",
        payload,
        content_type="application/json",
        **headers,
    )


def secret_of(tenant) -> str:
    with tenant_context(tenant):
        return AlertingSettings.objects.get().webhook_secret


def written(tenant) -> tuple[int, int, int]:
    """What a delivery could have written in a tenant: incidents, entries, audit events."""
    with tenant_context(tenant):
        return (
            Incident.objects.count(),
            IncidentEvent.objects.count(),
            AuditEvent.objects.filter(tenant=tenant).count(),
        )


def test_the_answer_counts_what_the_delivery_opened_resolved_and_left_unchanged(acme):
    bearer = f"Bearer {secret_of(acme)}"
    a, b, c = fingerprint(), fingerprint(), fingerprint()
    delivery = body(alert(a), alert(b), alert(c, status="resolved"))

    first = post_intake(acme, delivery, bearer)
    again = post_intake(acme, delivery, bearer)
    cleared = post_intake(acme, body(alert(a, status="resolved")), bearer)

    assert first.status_code == again.status_code == cleared.status_code == 202
    assert first.json() == {"accepted": 3, "opened": 3, "resolved": 1, "unchanged": 0}
    assert again.json() == {"accepted": 3, "opened": 0, "resolved": 0, "unchanged": 3}
    assert cleared.json() == {"accepted": 1, "opened": 0, "resolved": 1, "unchanged": 0}
    with tenant_context(acme):
        assert Incident.objects.filter(fingerprint__in=[a, b, c], status="resolved").count() == 2


BAD_BODIES = [
    pytest.param(b"{not json", "the body is not JSON", id="not-json"),
    pytest.param(
        json.dumps(document(alert("ok"), version="3")).encode(), 'version must be "4"', id="version"
    ),
    pytest.param(
        body(alert("ok"), _labelled(team="ops\x00")),
        "alerts[1].labels.team must be text",
        id="nul-in-labels",
    ),
    pytest.param(
        body(*[alert(f"fp{i}") for i in range(MAX_ALERTS + 1)]),
        f"alerts must be a list of 1 to {MAX_ALERTS} alerts",
        id="too-many-alerts",
    ),
    pytest.param(
        body(alert("ok"), _with("fingerprint", None)),
        "alerts[1].fingerprint is required",
        id="no-fingerprint",
    ),
    pytest.param(
        body(alert("ok"), alert("theirs", tenant="globex")),
        "alerts[1].labels.tenant does not name this tenant",
        id="other-tenant",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_BODIES)
def test_a_bad_body_is_refused_with_its_reason_and_nothing_is_written(
    acme, globex, payload, reason
):
    # Each bad body but the first two starts with a good alert: no partial write either.
    before = written(acme), written(globex)

    response = post_intake(acme, payload, f"Bearer {secret_of(acme)}")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(reason)
    assert (written(acme), written(globex)) == before


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-secret", "Basic {secret}", "{secret}"],
)
def test_a_missing_or_wrong_credential_is_refused_and_nothing_is_written(acme, authorization):
    if authorization is not None:
        authorization = authorization.format(secret=secret_of(acme))
    before = written(acme)

    response = post_intake(acme, body(alert(fingerprint())), authorization)

    assert response.status_code == 401
    assert "bearer" in response.json()["detail"]
    assert written(acme) == before


def test_one_tenants_secret_does_not_open_another_tenants_intake(acme, globex):
    before = written(acme), written(globex)

    on_globex = post_intake(
        globex, body(alert(fingerprint(), tenant="globex")), f"Bearer {secret_of(acme)}"
    )

    assert on_globex.status_code == 401
    assert (written(acme), written(globex)) == before


def test_the_intake_takes_only_posts_to_a_known_tenant(acme):
    bearer = f"Bearer {secret_of(acme)}"
    client = Client(HTTP_HOST=host_of(None), HTTP_AUTHORIZATION=bearer)
    assert client.get(f"/hooks/alertmanager/{acme.public_id}/").status_code == 405
    unknown = Tenant(public_id=uuid.uuid4())
    assert post_intake(unknown, body(alert(fingerprint())), bearer).status_code == 404


# ---- two deliveries at once (committed: each on its own connection) -----------------------------


@pytest.mark.parametrize("second_status", ["firing", "resolved"])
def test_two_deliveries_of_the_same_alerts_at_once_record_each_alert_once(
    django_db_setup, django_db_blocker, second_status
):
    fingerprints = [fingerprint() for _ in range(20)]
    deliveries = [
        body(*(alert(fp, severity="P1", name="ConcurrentDelivery") for fp in fingerprints)),
        body(*(alert(fp, status=second_status, severity="P1") for fp in reversed(fingerprints))),
    ]
    together = threading.Barrier(len(deliveries))
    results, errors = [], []

    with committed_writes(django_db_blocker):
        acme = Tenant.objects.get(schema_name="acme")

        def deliver_at_once(payload: bytes) -> None:
            try:
                with tenant_context(acme):
                    notification = parse_notification(payload, schema="acme")
                    together.wait(timeout=30)
                    results.append(apply_notification(notification))
            except BaseException as exc:  # noqa: BLE001 (reported by the test below)
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=deliver_at_once, args=(p,)) for p in deliveries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert sum(len(r.opened) for r in results) == len(fingerprints)
        with tenant_context(acme):
            incidents = list(Incident.objects.filter(fingerprint__in=fingerprints))
            assert sorted(i.fingerprint for i in incidents) == sorted(fingerprints)
            expected_state = "resolved" if second_status == "resolved" else "firing"
            assert {i.alert_state for i in incidents} == {expected_state}
            for stored in incidents:
                assert kinds(stored).count(Kind.FIRED) == 1
                assert timeline.verify(stored).intact
