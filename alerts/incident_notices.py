"""Notifications the portal itself sent, written onto the timelines of the incidents concerned."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from alerts import incident_live, timeline
from alerts.models import Incident, IncidentEvent, NotificationLog


def _incidents_for(alert_keys: list) -> list[Incident]:
    keys = Q(pk__in=[])
    for fingerprint, starts_at in alert_keys[:1000]:
        keys |= Q(fingerprint=fingerprint, started_at=datetime.fromisoformat(starts_at))
    return list(Incident.objects.select_for_update().filter(keys).order_by("id"))


@transaction.atomic
def note_notification(log: NotificationLog, alert_keys: list) -> list:
    """Link the log row to its incidents and add a "notified" entry to each; returns the keys
    of the alerts that have no incident yet (the relay got there before the intake)."""
    incidents = _incidents_for(alert_keys) if alert_keys else []
    found = {(i.fingerprint, i.started_at) for i in incidents}
    missing = [
        [fingerprint, starts_at]
        for fingerprint, starts_at in alert_keys
        if (fingerprint, datetime.fromisoformat(starts_at)) not in found
    ]
    if not incidents:
        return missing
    log.incidents.add(*incidents)
    notice = (
        log.sent_at,
        "Portal relay",
        f"{log.get_kind_display()} to {log.receiver_name}: {log.outcome}",
        {
            "receiver": log.receiver_name,
            "kind": log.kind,
            "outcome": log.outcome,
            "detail": log.detail[:300],
            "alert_status": log.alert_status,
        },
    )
    add_notified(incidents, [notice])
    return missing


def add_notified(incidents: list[Incident], notices: list[tuple]) -> None:
    """A "notified" entry on each incident's timeline (locked by the caller) for each notice
    (at, actor, text, detail), written in one go; open desks hear of it after commit."""
    events = [
        timeline.entry(
            incident, IncidentEvent.Kind.NOTIFIED, at=at, actor=actor, text=text, detail=detail
        )
        for incident in incidents
        for at, actor, text, detail in notices
    ]
    IncidentEvent.objects.bulk_create(events)
    Incident.objects.bulk_update(incidents, ["timeline_head"])
    incident_live.push_on_commit((i.public_id, i.is_security) for i in incidents)
