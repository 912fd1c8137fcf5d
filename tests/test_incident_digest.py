"""The P3 e-mail digest: each period's P3 incidents, once, to the P3 policy's e-mail receivers,
through a real SMTP server; a failed send keeps the period open and shows in the log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message

import pytest
from django.conf import settings as django_settings
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from alerts import digest, services, timeline
from alerts.models import (
    AlertingSettings,
    Incident,
    IncidentEvent,
    NotificationLog,
    Receiver,
)
from alerts.tasks import digest_all_tenants, send_incident_digest
from portal.celery import app
from tenants.models import AuditEvent
from tests.helpers import Mailbox, free_port, running_smtp, unique
from tests.test_incident_intake import ACTOR, alert, deliver, fingerprint, incident_of


@dataclass
class Smtp:
    mailbox: Mailbox
    port: int


@pytest.fixture(scope="module")
def smtp() -> Iterator[Smtp]:
    with running_smtp() as (mailbox, port):
        yield Smtp(mailbox, port)


@pytest.fixture
def in_acme(acme):
    with tenant_context(acme):
        # Incidents committed by other tests are moved out of every period used here.
        Incident.objects.update(created_at=F("created_at") - timedelta(days=400))
        yield acme


def email_receiver(port: int, *, enabled: bool = True) -> Receiver:
    return services.create_receiver(
        name=unique("digest"),
        kind=Receiver.Kind.EMAIL,
        settings={
            "to": f"{unique('ops')}@acme.example",
            "smarthost": f"127.0.0.1:{port}",
            "require_tls": False,
        },
        secret="",
        enabled=enabled,
        actor=ACTOR,
    )


def p3_policy(*receivers: Receiver) -> None:
    services.update_policy(
        severity="P3",
        receivers=[str(r.public_id) for r in receivers],
        group_by=["alertname"],
        group_wait="10m",
        group_interval="1h",
        repeat_interval="24h",
        mute_timings=[],
        actor=ACTOR,
    )


def window() -> tuple[datetime, datetime]:
    """A period that has ended by now: (start, a moment inside it)."""
    start = digest.period_end(timezone.now()) - digest.interval()
    AlertingSettings.objects.update(digest_sent_until=start)
    return start, start + timedelta(minutes=1)


def recorded(*alerts: dict, at: datetime) -> list[Incident]:
    """Incidents made by a delivery, as if the portal had recorded them at `at`."""
    deliver(*alerts)
    incidents = [incident_of(a["fingerprint"], a["startsAt"]) for a in alerts]
    Incident.objects.filter(pk__in=[i.pk for i in incidents]).update(created_at=at)
    return incidents


def sent_until() -> datetime | None:
    return AlertingSettings.objects.get().digest_sent_until


def notified(incident: Incident) -> list[IncidentEvent]:
    return list(incident.events.filter(kind=IncidentEvent.Kind.NOTIFIED))


def body_of(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def test_the_digest_brings_the_periods_p3_incidents_to_every_enabled_email_receiver(in_acme, smtp):
    first, second = email_receiver(smtp.port), email_receiver(smtp.port)
    disabled = email_receiver(smtp.port, enabled=False)
    p3_policy(first, second, disabled)
    start, inside = window()
    still_open, cleared = recorded(
        alert(fingerprint(), severity="P3", name="CertExpiresSoon"),
        alert(fingerprint(), severity="P3", name="BackupSlow"),
        at=inside,
    )
    deliver(alert(cleared.fingerprint, status="resolved", severity="P3"))
    # Recorded just before the period: it was in the previous digest.
    (before,) = recorded(
        alert(fingerprint(), severity="P3", name="OldNews"), at=start - timedelta(seconds=1)
    )

    outcome = digest.send_digest()

    assert (outcome.start, outcome.incidents, outcome.failed) == (start, 2, [])
    names = sorted([first.name, second.name])  # receivers are sent to in name order
    assert outcome.sent == names
    assert outcome.end == digest.period_end(timezone.now()) == sent_until()
    for receiver in (first, second):
        (message,) = smtp.mailbox.to(receiver.settings["to"])
        assert message["Subject"] == (
            "[Acme Corporation] P3 digest: 2 opened, 1 still open, 1 resolved"
        )
        text = body_of(message)
        assert "Opened: 2    Still open: 1    Resolved: 1" in text
        assert "- P3 CertExpiresSoon: CertExpiresSoon on db-1" in text
        assert "- P3 BackupSlow: BackupSlow on db-1" in text
        assert f"/incidents/{still_open.public_id}/" in text
        assert f"/incidents/{cleared.public_id}/" in text
        assert "started 2026-01-05 10:00 UTC, resolved" in text
        assert "OldNews" not in text  # recorded before the period
    assert smtp.mailbox.to(disabled.settings["to"]) == []

    logs = NotificationLog.objects.filter(receiver__in=[first, second])
    assert {(log.outcome, log.alert_status) for log in logs} == {("sent", "digest")}
    for log in logs:
        assert log.reason == f"digest {digest._period(start, outcome.end)}"
        assert set(log.incidents.all()) == {still_open, cleared}
    for incident in (still_open, cleared):
        incident.refresh_from_db()
        entries = notified(incident)
        assert sorted(e.detail["receiver"] for e in entries) == names
        assert timeline.verify(incident).intact
    assert notified(before) == []
    audit_event = AuditEvent.objects.filter(tenant=in_acme, action="incident.digest_sent").latest(
        "seq"
    )
    assert audit_event.after["incidents"] == 2
    assert audit_event.after["sent"] == names


def test_nothing_is_sent_twice_and_an_empty_period_sends_nothing(in_acme, smtp):
    receiver = email_receiver(smtp.port)
    p3_policy(receiver)
    _, inside = window()
    recorded(alert(fingerprint(), severity="P3"), at=inside)

    assert digest.send_digest().sent == [receiver.name]
    end = sent_until()
    again = digest.send_digest()

    assert again.skipped == "no period has ended since the last digest"
    assert digest.is_due() is False
    assert len(smtp.mailbox.to(receiver.settings["to"])) == 1

    # The next period ends; nothing was recorded in it: no e-mail, but the window moves on.
    later = digest.send_digest(now=timezone.now() + digest.interval())
    assert later.skipped == "nothing to report"
    assert sent_until() == end + digest.interval()
    assert len(smtp.mailbox.to(receiver.settings["to"])) == 1
    assert NotificationLog.objects.filter(receiver=receiver).count() == 1


def test_a_failed_send_keeps_the_period_open_logs_the_failure_and_is_sent_next_time(in_acme, smtp):
    working = email_receiver(smtp.port)
    failing = email_receiver(free_port())  # nothing listens there
    p3_policy(working, failing)
    start, inside = window()
    (incident,) = recorded(alert(fingerprint(), severity="P3", name="QueueGrowing"), at=inside)
    audits = AuditEvent.objects.filter(tenant=in_acme, action="incident.digest_sent").count()

    outcome = digest.send_digest()

    assert (outcome.sent, outcome.failed) == ([working.name], [failing.name])
    assert sent_until() == start  # not advanced: the period is sent again next time
    assert digest.is_due()
    (failed_log,) = NotificationLog.objects.filter(receiver=failing)
    assert failed_log.outcome == "failed"
    assert failed_log.detail.startswith("not delivered")
    assert list(failed_log.incidents.all()) == [incident]
    # Only the receiver that took it is on the timeline; the attempt is in the audit trail.
    assert [e.detail["receiver"] for e in notified(incident)] == [working.name]
    assert (
        AuditEvent.objects.filter(tenant=in_acme, action="incident.digest_sent").count()
        == audits + 1
    )

    services.update_receiver(
        receiver_id=failing.public_id,
        name=failing.name,
        kind=failing.kind,
        settings={**failing.settings, "smarthost": f"127.0.0.1:{smtp.port}"},
        actor=ACTOR,
    )
    retried = digest.send_digest()

    assert (retried.start, retried.failed) == (start, [])
    assert sent_until() == retried.end
    (message,) = smtp.mailbox.to(failing.settings["to"])
    assert "QueueGrowing" in body_of(message)


def test_only_p3_incidents_are_in_the_digest(in_acme, smtp):
    receiver = email_receiver(smtp.port)
    p3_policy(receiver)
    _, inside = window()
    recorded(
        *(alert(fingerprint(), severity=s, name=f"Sev{s}") for s in ("P0", "P1", "P2")), at=inside
    )

    nothing = digest.send_digest()

    assert (nothing.skipped, nothing.incidents) == ("nothing to report", 0)
    assert smtp.mailbox.to(receiver.settings["to"]) == []

    _, inside = window()
    recorded(alert(fingerprint(), severity="P3", name="SevP3"), alert(fingerprint()), at=inside)
    digest.send_digest()

    (message,) = smtp.mailbox.to(receiver.settings["to"])
    text = body_of(message)
    assert "SevP3" in text
    assert not any(f"Sev{s}" in text for s in ("P0", "P1", "P2"))
    assert "DiskFull" not in text  # the P2 alert recorded with it


def test_without_an_enabled_email_receiver_nothing_is_sent_and_the_period_closes(in_acme, smtp):
    slack = services.create_receiver(
        name=unique("slack"),
        kind=Receiver.Kind.SLACK,
        settings={},
        secret="http://127.0.0.1:9/slack",
        actor=ACTOR,
    )
    disabled = email_receiver(smtp.port, enabled=False)
    p3_policy(slack, disabled)
    _, inside = window()
    recorded(alert(fingerprint(), severity="P3"), at=inside)

    outcome = digest.send_digest()

    assert outcome.skipped == "no enabled e-mail receiver for P3"
    assert sent_until() == outcome.end
    assert smtp.mailbox.to(disabled.settings["to"]) == []
    assert not NotificationLog.objects.filter(receiver__in=[slack, disabled]).exists()


def test_the_beat_fans_out_to_every_tenant_whose_period_ended(acme, globex, smtp, eager_tasks):
    with tenant_context(globex):
        AlertingSettings.objects.update(digest_sent_until=None)  # never sent: due
    with tenant_context(acme):
        Incident.objects.update(created_at=F("created_at") - timedelta(days=400))
        receiver = email_receiver(smtp.port)
        p3_policy(receiver)
        _, inside = window()
        recorded(alert(fingerprint(), severity="P3", name="BeatDigest"), at=inside)

    assert digest_all_tenants() >= 2

    (message,) = smtp.mailbox.to(receiver.settings["to"])
    assert "BeatDigest" in body_of(message)
    for tenant in (acme, globex):
        with tenant_context(tenant):
            assert sent_until() == digest.period_end(timezone.now())
            assert digest.is_due() is False
    assert digest_all_tenants() == 0  # every period that ended was sent
    assert len(smtp.mailbox.to(receiver.settings["to"])) == 1


def test_the_beat_schedule_names_the_digest_task_and_the_interval_is_a_setting(settings):
    entry = django_settings.CELERY_BEAT_SCHEDULE["incident-digest"]
    assert entry["task"] == digest_all_tenants.name
    assert entry["task"] in app.tasks
    assert digest_all_tenants.platform_wide and not send_incident_digest.platform_wide
    assert digest.interval() == timedelta(days=1)
    settings.INCIDENT_DIGEST_INTERVAL = 3600
    assert digest.interval() == timedelta(hours=1)
    end = digest.period_end(timezone.now())
    assert (end.minute, end.second, end.microsecond) == (0, 0, 0)
