"""Celery tasks that keep Prometheus and Alertmanager in step with the portal.

Tasks take ids, never model instances, and are idempotent: each one re-reads the state and does
a whole reconciliation pass, so a retry or a duplicate delivery is harmless.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connection

from alerts import sync, sync_queue
from alerts.models import SyncState
from portal.backends.base import BackendError
from tenants.fanout import current_tenant, each_active_tenant

Target = SyncState.Target
logger = logging.getLogger(__name__)


def _raise_if_transient(result: sync.PassResult) -> None:
    # PortalTask retries transient BackendErrors with backoff; the state already says "failed".
    if result.transient:
        raise BackendError(result.error, permanent=False)


@shared_task(max_retries=8)
def sync_tenant_rules() -> str:
    """The current tenant's rule file, validated, loaded and verified in Prometheus."""
    sync_queue.starting(Target.PROMETHEUS_RULES)
    result = sync.sync_rules(current_tenant())
    _raise_if_transient(result)
    return result.status


@shared_task(max_retries=8)
def sync_tenant_silences() -> str:
    sync_queue.starting(Target.SILENCES)
    result = sync.sync_silences(current_tenant())
    _raise_if_transient(result)
    return result.status


@shared_task(max_retries=8)
def sync_tenant_alertmanager() -> str:
    """Alertmanager's one configuration, re-rendered for all tenants after this one changed."""
    sync_queue.starting(Target.ALERTMANAGER)
    results = sync.sync_alertmanager()
    mine = results.get(connection.schema_name)
    if mine is not None:
        _raise_if_transient(mine)
    return mine.status if mine else "skipped"


@shared_task(platform_wide=True, routine=True)
def sync_reconcile_all() -> int:
    """Drift repair (beat): every active tenant's rules and silences, and Alertmanager's file.

    Catches what a lost queue message or a restarted backend left behind; passes with nothing to
    change are cheap (render, hash, compare, one API call). Rule files of tenants no longer
    active are removed here too, in case the clean-up queued at deactivation was lost.
    """
    try:
        removed = sync.remove_orphan_rule_files()
    except BackendError as exc:
        logger.warning("could not remove rule files of inactive tenants: %s", exc)
    else:
        if removed:
            logger.info("removed the rule files of inactive tenants %s", ", ".join(removed))
    count = 0
    for _tenant in each_active_tenant():
        sync_tenant_rules.delay()
        if sync.silences_need_sync():
            sync_tenant_silences.delay()
        count += 1
    sync_alertmanager_platform.delay()
    return count


@shared_task(platform_wide=True, max_retries=8)
def sync_alertmanager_platform() -> int:
    """Alertmanager's one configuration for all tenants (reconciler, tenant deactivated)."""
    results = sync.sync_alertmanager()
    if any(r.transient for r in results.values()):
        raise BackendError("Alertmanager could not be brought in step", permanent=False)
    return len(results)


@shared_task(platform_wide=True, max_retries=8)
def sync_remove_tenant_rules(schema: str) -> bool:
    """A deactivated tenant's rule file goes, unless it was opened again in the meantime."""
    from tenants.models import Tenant

    if Tenant.objects.filter(schema_name=schema, is_active=True).exists():
        return False
    return sync.remove_rules(schema)


@shared_task(max_retries=6)
def notify_portal_incident(incident_id: str) -> int:
    """Tell the receivers of its severity's policy about an incident the portal raised itself
    (Alertmanager never saw it); each send is logged and noted on the incident's timeline."""
    from alerts import notify
    from alerts.incident_notices import note_notification
    from alerts.models import Incident, NotificationLog, NotificationPolicy

    incident = Incident.objects.filter(public_id=incident_id).first()
    policy = (
        NotificationPolicy.objects.filter(severity=incident.severity).first() if incident else None
    )
    if policy is None:
        return 0
    key = [[incident.fingerprint, incident.started_at.isoformat()]]
    already = set(
        incident.notifications.filter(outcome=NotificationLog.Outcome.SENT).values_list(
            "receiver_id", flat=True
        )
    )
    unreachable = []
    sent = 0
    for receiver in policy.receivers.filter(enabled=True).exclude(pk__in=already):
        if not receiver.secret and receiver.kind != receiver.Kind.EMAIL:
            continue
        log = notify.send_and_log(
            receiver,
            title=f"[FIRING] {incident.severity} {incident.alertname}",
            text=incident.summary,
            reason=f"portal incident {incident.public_id}",
            severity=incident.severity,
        )
        note_notification(log, key)
        if log.outcome == NotificationLog.Outcome.SENT:
            sent += 1
        elif log.detail.startswith("not delivered"):
            unreachable.append(receiver.name)
    if unreachable:
        # Retried with backoff; receivers that already took it are not sent to again.
        raise OSError(f"not delivered to {', '.join(unreachable)}")
    return sent


TASK_FOR_TARGET = {
    Target.PROMETHEUS_RULES: sync_tenant_rules,
    Target.ALERTMANAGER: sync_tenant_alertmanager,
    Target.SILENCES: sync_tenant_silences,
}


def task_for(target: str):
    return TASK_FOR_TARGET[target]


@shared_task(max_retries=6)
def deliver_relayed_notification(
    receiver_id: str,
    title: str,
    text: str,
    severity: str,
    status: str,
    reason: str,
    alert_keys: list | None = None,
) -> str:
    """Send what Alertmanager handed the portal for a kind it cannot send itself, and note it
    on the timeline of the incidents it was about."""
    from alerts import notify
    from alerts.incident_notices import note_notification
    from alerts.models import NotificationLog, Receiver

    receiver = Receiver.objects.filter(public_id=receiver_id, enabled=True).first()
    if receiver is None:
        return "receiver gone"
    log = notify.send_and_log(
        receiver, title=title, text=text, reason=reason, severity=severity, status=status
    )
    missing = note_notification(log, alert_keys or [])
    if missing:
        note_relayed_later.apply_async((str(log.public_id), missing, 1), countdown=2)
    if log.outcome == NotificationLog.Outcome.FAILED and log.detail.startswith("not delivered"):
        raise OSError(log.detail)  # the provider could not be reached: retry with backoff
    return log.outcome


NOTE_ATTEMPTS = 6


@shared_task
def note_relayed_later(log_id: str, alert_keys: list, attempt: int) -> int:
    """A relayed notification about alerts the intake had not recorded yet: note it on their
    incidents once they exist (backing off), so the timeline still says who was told."""
    from alerts.incident_notices import note_notification
    from alerts.models import NotificationLog

    log = NotificationLog.objects.filter(public_id=log_id).first()
    if log is None:
        return 0
    missing = note_notification(log, alert_keys)
    if missing and attempt < NOTE_ATTEMPTS:
        note_relayed_later.apply_async(
            (log_id, missing, attempt + 1), countdown=min(60, 2 * 2**attempt)
        )
    return len(alert_keys) - len(missing)


@shared_task
def send_incident_digest() -> str:
    """The current tenant's P3 e-mail digest, if a period ended since the last one. A failed send
    leaves the period open: the next run sends it again."""
    from alerts import digest

    return str(digest.send_digest())


@shared_task(platform_wide=True, routine=True)
def digest_all_tenants() -> int:
    """Beat: queue the digest of every active tenant with a period ended; returns how many."""
    from alerts import digest

    count = 0
    for _tenant in each_active_tenant():
        if digest.is_due():
            send_incident_digest.delay()
            count += 1
    return count
