"""Incidents the portal raises itself: a broken audit chain is a P0 security incident, paged
through the P0 policy by the portal (Alertmanager never sees it)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from django_tenants.utils import tenant_context
from pytest_httpserver import HTTPServer

from alerts import services, timeline
from alerts.models import Incident, IncidentEvent, NotificationLog, NotificationPolicy
from compliance import assessment
from tenants import audit_chain
from tenants.models import AuditEvent
from tests.test_alert_delivery import add_receiver

pytestmark = pytest.mark.django_db

ALERTNAME = "AuditChainVerificationFailed"


@pytest.fixture
def broken_chain(monkeypatch):
    """Verification answers as it does for a row changed outside the portal."""
    real = audit_chain.verify_chain

    def broken(tenant):
        result = real(tenant)
        return replace(result, bad_seq=result.last_seq, problem="content does not match its hash")

    monkeypatch.setattr(audit_chain, "verify_chain", broken)


@pytest.fixture
def pager(settings) -> HTTPServer:
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/page", method="POST").respond_with_data("ok")
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_failed_verification_raises_one_p0_security_incident(
    acme, broken_chain, django_capture_on_commit_callbacks
):
    with tenant_context(acme):
        verification = assessment.verify_audit_chain(acme, force=True)
        assert not verification.ok
        assessment.verify_audit_chain(acme, force=True)  # still broken: no second incident

        (incident,) = Incident.objects.filter(alertname=ALERTNAME)
        assert (incident.severity, incident.category, incident.status) == (
            "P0",
            "security",
            "triggered",
        )
        assert "content does not match its hash" in incident.summary
        assert timeline.verify(incident).intact
        assert (
            AuditEvent.objects.filter(
                action="incident.raised", object_id=str(incident.public_id)
            ).count()
            == 1
        )

        # Once resolved, a new failure is a new incident.
        services.resolve_incident(incident_id=incident.public_id, actor=services_actor())
        assessment.verify_audit_chain(acme, force=True)
        assert Incident.objects.filter(alertname=ALERTNAME).count() == 2


def test_an_intact_chain_raises_nothing(acme):
    with tenant_context(acme):
        assert assessment.verify_audit_chain(acme, force=True).ok
        assert not Incident.objects.filter(alertname=ALERTNAME).exists()


def test_the_portal_pages_the_p0_policy_and_notes_it_on_the_timeline(
    acme, broken_chain, pager, eager_tasks, django_capture_on_commit_callbacks
):
    with tenant_context(acme):
        hook = add_receiver("webhook", pager.url_for("/page"))
        NotificationPolicy.objects.get(severity="P0").receivers.set([hook])
        with django_capture_on_commit_callbacks(execute=True):
            assessment.verify_audit_chain(acme, force=True)

        ((request, _response),) = pager.log
        assert ALERTNAME in json.loads(request.data)["title"]
        incident = Incident.objects.get(alertname=ALERTNAME)
        (log,) = incident.notifications.all()
        assert (log.receiver_name, log.outcome) == (hook.name, NotificationLog.Outcome.SENT)
        notified = incident.events.get(kind=IncidentEvent.Kind.NOTIFIED)
        assert notified.detail["receiver"] == hook.name
        assert timeline.verify(incident).intact


def services_actor():
    from tenants import audit

    return audit.Actor.system("test")


def test_a_relay_that_beats_the_intake_is_noted_once_the_incident_exists(acme):
    from alerts.incident_intake import apply_notification
    from alerts.incident_notices import note_notification
    from alerts.intake import parse_notification
    from alerts.tasks import note_relayed_later

    starts = "2026-03-01T10:00:00+00:00"
    keys = [["relay-first", starts]]
    with tenant_context(acme):
        log = NotificationLog.objects.create(
            receiver_name="Team Teams", kind="msteams", reason="k", outcome="sent"
        )
        assert note_notification(log, keys) == keys  # no incident yet: nothing noted

        body = {
            "version": "4",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "RelayFirst", "tenant": "acme", "severity": "P1"},
                    "startsAt": starts,
                    "fingerprint": "relay-first",
                }
            ],
        }
        (incident,) = apply_notification(
            parse_notification(json.dumps(body).encode(), schema="acme")
        ).opened
        assert note_relayed_later(str(log.public_id), keys, 1) == 1
        assert list(incident.notifications.all()) == [log]
        notified = incident.events.get(kind=IncidentEvent.Kind.NOTIFIED)
        assert notified.detail["receiver"] == "Team Teams"
        incident.refresh_from_db()
        assert timeline.verify(incident).intact
