"""The P3 e-mail digest: a period's low-severity incidents in one message per receiver.

Periods follow each other without gap or overlap: one runs from where the last digest stopped
(`AlertingSettings.digest_sent_until`) to the last boundary of the digest interval, so a daily
digest covers a UTC day however late the beat runs. An incident belongs to the period in which
the portal recorded it (`created_at`), so each one is in exactly one digest. The window moves on
only when every receiver took the message: a failed send is tried again, with the same
incidents, at the next run, and shows in the notification log meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts.actions import AuditAction
from alerts.incident_notices import add_notified
from alerts.models import (
    AlertingSettings,
    Incident,
    NotificationLog,
    NotificationPolicy,
    Receiver,
    Severity,
)
from alerts.notify import send_and_log
from alerts.render import DIGEST_SEVERITY
from tenants import audit
from tenants.fanout import current_tenant
from tenants.links import tenant_url

SEVERITY = Severity(DIGEST_SEVERITY)
DEFAULT_INTERVAL = 86400
# An incident is dated when its intake transaction starts and seen when it commits: a period is
# read only this long after its end, by when everything dated within it has committed.
SETTLE = timedelta(minutes=2)
LISTED = 200  # incidents listed in one message; the counts cover them all
ACTOR = "Incident digest"
# pg_try_advisory_xact_lock(namespace, tenant): one digest run per tenant at a time.
_LOCK_NAMESPACE = 0x44494753


@dataclass(frozen=True)
class DigestOutcome:
    start: datetime | None = None
    end: datetime | None = None
    incidents: int = 0
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: str = ""  # why nothing was sent, when nothing was

    def __str__(self) -> str:
        if self.skipped:
            return self.skipped
        return f"{self.incidents} incidents: sent to {len(self.sent)}, failed {len(self.failed)}"


def interval() -> timedelta:
    seconds = int(getattr(settings, "INCIDENT_DIGEST_INTERVAL", DEFAULT_INTERVAL))
    return timedelta(seconds=max(seconds, 60))  # periods are cut at interval boundaries


def interval_label() -> str:
    """How often the digest goes out, as the policy page says it: "every day", "every 6 hours"."""
    seconds = int(interval().total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


def period_end(now: datetime) -> datetime:
    """The last interval boundary (counted from the Unix epoch) before `now - SETTLE`."""
    step = interval().total_seconds()
    settled = (now - SETTLE).timestamp()
    return datetime.fromtimestamp(settled - settled % step, tz=UTC)


def is_due(now: datetime | None = None) -> bool:
    """Whether a period has ended since the last digest of the current tenant."""
    row = AlertingSettings.objects.only("digest_sent_until").first()
    if row is None:
        return False
    sent_until = row.digest_sent_until
    return sent_until is None or period_end(now or timezone.now()) > sent_until


def email_receivers() -> list[Receiver]:
    """The enabled e-mail receivers of the P3 policy that have an address."""
    policy = NotificationPolicy.objects.filter(severity=SEVERITY).first()
    if policy is None:
        return []
    receivers = policy.receivers.filter(kind=Receiver.Kind.EMAIL, enabled=True).order_by("name")
    return [r for r in receivers if r.settings.get("to")]


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _period(start: datetime, end: datetime) -> str:
    return f"{start.astimezone(UTC):%Y-%m-%d %H:%M}–{end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def compose(tenant, incidents: list[Incident], start: datetime, end: datetime) -> tuple[str, str]:
    """(subject, text) of the digest of these incidents."""
    resolved = sum(1 for i in incidents if i.status == Incident.Status.RESOLVED)
    still_open = len(incidents) - resolved
    subject = (
        f"[{tenant.name}] {SEVERITY} digest: {len(incidents)} opened, "
        f"{still_open} still open, {resolved} resolved"
    )
    lines = [
        f"{Severity(SEVERITY).label} incidents recorded from {_when(start)} to {_when(end)}.",
        "",
        f"Opened: {len(incidents)}    Still open: {still_open}    Resolved: {resolved}",
        "",
    ]
    for incident in incidents[:LISTED]:
        lines += [
            f"- {incident.severity} {incident.alertname}: {incident.summary or '(no summary)'}",
            f"  started {_when(incident.started_at)}, {incident.get_status_display().lower()}",
            f"  {tenant_url(tenant, f'/incidents/{incident.public_id}/')}",
        ]
    if len(incidents) > LISTED:
        lines.append(f"... and {len(incidents) - LISTED} more.")
    every = tenant_url(tenant, f"/incidents/?severity={SEVERITY}&status=all")
    lines += ["", f"All {SEVERITY} incidents: {every}"]
    return subject, "\n".join(lines)


def _note_on_timelines(incidents: list[Incident], logs: list[NotificationLog], period: str):
    """A "notified" entry on each incident's timeline for each receiver that took the digest."""
    if not logs:
        return
    locked = list(
        Incident.objects.select_for_update().filter(pk__in=[i.pk for i in incidents]).order_by("id")
    )
    notices = [
        (
            log.sent_at,
            ACTOR,
            f"Listed in the {SEVERITY} digest e-mailed to {log.receiver_name} ({period}).",
            {
                "receiver": log.receiver_name,
                "kind": log.kind,
                "outcome": log.outcome,
                "digest": period,
            },
        )
        for log in logs
    ]
    add_notified(locked, notices)


def _locked() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
            [_LOCK_NAMESPACE, connection.schema_name],
        )
        return cursor.fetchone()[0]


@transaction.atomic
def send_digest(*, now: datetime | None = None) -> DigestOutcome:
    """The current tenant's digest for every period ended since the last one, if one has.

    Sends while holding the tenant's digest lock, so two runs never send the same period twice.
    """

    if not _locked():
        return DigestOutcome(skipped="another digest of this tenant is being sent")
    row = AlertingSettings.objects.first()
    if row is None:
        return DigestOutcome(skipped="alerting is not set up")
    end = period_end(now or timezone.now())
    start = row.digest_sent_until or end - interval()
    if end <= start:
        return DigestOutcome(skipped="no period has ended since the last digest")

    incidents = list(
        Incident.objects.filter(
            severity=SEVERITY, created_at__gte=start, created_at__lt=end
        ).order_by("created_at", "id")
    )
    receivers = email_receivers() if incidents else []
    if not incidents or not receivers:
        # Nothing to report, or nobody to report it to: that period is done either way.
        _advance(row, end)
        why = "nothing to report" if not incidents else "no enabled e-mail receiver for P3"
        return DigestOutcome(start=start, end=end, incidents=len(incidents), skipped=why)

    tenant = current_tenant()
    subject, text = compose(tenant, incidents, start, end)
    period = _period(start, end)
    logs = [
        send_and_log(r, title=subject, text=text, reason=f"digest {period}", status="digest")
        for r in receivers
    ]
    for log in logs:
        log.incidents.add(*incidents)
    sent = [log for log in logs if log.outcome == NotificationLog.Outcome.SENT]
    outcome = DigestOutcome(
        start=start,
        end=end,
        incidents=len(incidents),
        sent=[log.receiver_name for log in sent],
        failed=[log.receiver_name for log in logs if log not in sent],
    )
    _note_on_timelines(incidents, sent, period)
    if not outcome.failed:
        _advance(row, end)
    if sent:
        audit.record(
            actor=audit.Actor.system(ACTOR),
            action=AuditAction.INCIDENT_DIGEST_SENT,
            object_type="alerts.incident",
            object_repr=f"{SEVERITY} digest {period}",
            after={
                "period": [start, end],
                "incidents": len(incidents),
                "sent": outcome.sent,
                "failed": outcome.failed,
            },
        )
    return outcome


def _advance(row: AlertingSettings, end: datetime) -> None:
    # update(): saving the row would move `rotated_at`, which dates the intake secret.
    AlertingSettings.objects.filter(pk=row.pk).update(digest_sent_until=end)
