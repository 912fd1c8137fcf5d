"""Alertmanager's notifications turned into incidents: idempotent, in one transaction per delivery.

An incident is one occurrence of an alert, keyed by (fingerprint, startsAt). A delivery may
repeat, arrive out of order, or bring the resolution before the firing: new keys are inserted
with `ON CONFLICT DO NOTHING`, existing ones are locked and moved forward only (firing ->
resolved, never back), so every order of the same deliveries ends in the same state. What can
wait (relays, digests) is not done here; pushing to browsers happens after commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from alerts import incident_live, timeline
from alerts.actions import AuditAction
from alerts.intake import Alert, Notification
from alerts.models import AlertRule, Category, Incident, IncidentEvent, Severity
from tenants import audit

ALERTMANAGER = "Alertmanager"
_INSERTED_FIELDS = [f for f in Incident._meta.concrete_fields if not f.primary_key]


@dataclass
class IntakeResult:
    opened: list[Incident] = field(default_factory=list)
    resolved: list[Incident] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> list[Incident]:
        return self.opened + self.resolved


def _collapse(alerts: tuple[Alert, ...]) -> dict[tuple[str, datetime], Alert]:
    """One alert per key: within a delivery, a resolution wins over a firing."""
    by_key: dict[tuple[str, datetime], Alert] = {}
    for alert in alerts:
        key = (alert.fingerprint, alert.starts_at)
        if key not in by_key or alert.status == "resolved" or by_key[key].status != "resolved":
            by_key[key] = alert
    return by_key


def _summary(alert: Alert) -> str:
    text = (
        alert.annotations.get("summary")
        or alert.annotations.get("description")
        or alert.labels.get("alertname", "")
    )
    return text[:500]


def _new_incident(alert: Alert, rules: dict[str, int], now: datetime) -> Incident:
    labels = alert.labels
    severity = labels.get("severity", "")
    category = labels.get("category", "")
    incident = Incident(
        public_id=uuid.uuid4(),
        fingerprint=alert.fingerprint,
        started_at=alert.starts_at,
        alertname=labels.get("alertname", "")[:200] or "(unnamed alert)",
        severity=severity if severity in Severity.values else Severity.P2,
        category=category if category in Category.values else Category.AVAILABILITY,
        service=(labels.get("service") or labels.get("job") or "")[:200],
        summary=_summary(alert),
        labels=labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url,
        rule_id=rules.get(labels.get("alertname", "")),
        created_at=now,
        updated_at=now,
    )
    return incident


def _resolve_by_alert(incident: Incident, alert: Alert, now: datetime) -> list[IncidentEvent]:
    incident.alert_state = Incident.AlertState.RESOLVED
    incident.ended_at = alert.ends_at or now
    events = []
    if incident.status != Incident.Status.RESOLVED:
        incident.status = Incident.Status.RESOLVED
        incident.resolved_at = incident.ended_at
        incident.resolved_by = ALERTMANAGER
        text = "The alert cleared; the incident is resolved."
    else:
        text = "The alert cleared (the incident was already resolved)."
    events.append(
        timeline.entry(
            incident,
            IncidentEvent.Kind.ALERT_RESOLVED,
            at=incident.ended_at,
            actor=ALERTMANAGER,
            text=text,
        )
    )
    incident.updated_at = now
    return events


def _routes(severities: set[str]) -> dict[str, list[dict]]:
    from alerts.services import policy_routes

    return policy_routes(severities) if severities else {}


def _known(keys: list[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """The keys already recorded: repeats (the common delivery) skip building new rows."""
    fingerprints = {fingerprint for fingerprint, _ in keys}
    rows = Incident.objects.filter(fingerprint__in=fingerprints).values_list(
        "fingerprint", "started_at"
    )
    return set(rows) & set(keys)


def _insert(incidents: list[Incident]) -> set[tuple[str, datetime]]:
    """Insert what is new; returns the keys that were inserted (the rest exist already)."""
    if not incidents:
        return set()
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _INSERTED_FIELDS)
    # One array per column (as Django's bulk_create does): the statement has as many
    # placeholders whatever the batch, so the driver does not quote thousands of them per
    # delivery. Array types without their length: varchar[], not varchar(64)[].
    arrays = ", ".join(f"%s::{f.db_type(connection).split('(')[0]}[]" for f in _INSERTED_FIELDS)
    params = [
        [f.get_db_prep_save(f.pre_save(incident, add=True), connection) for incident in incidents]
        for f in _INSERTED_FIELDS
    ]
    table = connection.ops.quote_name(Incident._meta.db_table)
    # Names and types come from the model's own fields; every value is a parameter.
    sql = f"INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({arrays}) "  # noqa: S608
    sql += "ON CONFLICT (fingerprint, started_at) DO NOTHING RETURNING id, fingerprint, started_at"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {}
        for pk, fingerprint, started_at in cursor.fetchall():
            inserted[(fingerprint, started_at)] = pk
    for incident in incidents:
        pk = inserted.get((incident.fingerprint, incident.started_at))
        if pk is not None:
            incident.pk = incident.id = pk
            incident._state.adding = False
    return set(inserted)


@transaction.atomic
def apply_notification(notification: Notification) -> IntakeResult:
    """Record one delivery. Runs in the tenant's schema; the caller checked the payload."""
    now = timezone.now()
    result = IntakeResult()
    by_key = _collapse(notification.alerts)
    # Sorted keys: two deliveries with the same alerts take their locks in the same order.
    keys = sorted(by_key, key=lambda k: (k[0], k[1]))
    known = _known(keys)
    new_keys = [k for k in keys if k not in known]
    names = {by_key[k].labels.get("alertname", "") for k in new_keys}
    rules = (
        dict(
            AlertRule.objects.filter(name__in=names, kind=AlertRule.Kind.ALERT)
            .order_by("name", "-updated_at")
            .distinct("name")
            .values_list("name", "id")
        )
        if names
        else {}
    )
    fresh = [_new_incident(by_key[k], rules, now) for k in new_keys]
    events_by_key: dict[tuple[str, datetime], list[IncidentEvent]] = {}
    routes = _routes({i.severity for i in fresh})
    for incident in fresh:
        alert = by_key[(incident.fingerprint, incident.started_at)]
        events = [
            timeline.entry(
                incident,
                IncidentEvent.Kind.FIRED,
                at=incident.started_at,
                actor=ALERTMANAGER,
                text=incident.summary,
            ),
            timeline.entry(
                incident,
                IncidentEvent.Kind.ROUTED,
                at=now,
                actor=ALERTMANAGER,
                text=f"Routed by the {incident.severity} policy.",
                detail={"receivers": routes.get(incident.severity, [])},
            ),
        ]
        if alert.status == "resolved":
            events += _resolve_by_alert(incident, alert, now)
        events_by_key[(incident.fingerprint, incident.started_at)] = events
    inserted = _insert(fresh)

    to_save: list[IncidentEvent] = []
    for incident in fresh:
        key = (incident.fingerprint, incident.started_at)
        if key in inserted:
            to_save += events_by_key[key]
            result.opened.append(incident)
            if incident.status == Incident.Status.RESOLVED:
                result.resolved.append(incident)

    existing_keys = [k for k in keys if k not in inserted]
    changed: list[Incident] = []
    if existing_keys:
        fingerprints = {k[0] for k in existing_keys}
        wanted = set(existing_keys)
        rows = (
            Incident.objects.select_for_update().filter(fingerprint__in=fingerprints).order_by("id")
        )
        for incident in rows:
            key = (incident.fingerprint, incident.started_at)
            if key not in wanted:
                continue
            alert = by_key[key]
            if alert.status == "resolved" and incident.alert_state == Incident.AlertState.FIRING:
                was_open = incident.is_open
                to_save += _resolve_by_alert(incident, alert, now)
                changed.append(incident)
                if was_open:
                    result.resolved.append(incident)
            elif (
                alert.status == "firing"
                and incident.alert_state == Incident.AlertState.FIRING
                and alert.annotations != incident.annotations
            ):
                # Annotations carry the current value ("queue depth is 812"): keep them fresh.
                incident.annotations = alert.annotations
                incident.summary = _summary(alert)
                incident.updated_at = now
                changed.append(incident)
            else:
                result.unchanged += 1  # a repeat, or a firing that arrives after its resolution

    if changed:
        Incident.objects.bulk_update(
            changed,
            [
                "alert_state",
                "ended_at",
                "status",
                "resolved_at",
                "resolved_by",
                "annotations",
                "summary",
                "timeline_head",
                "updated_at",
            ],
        )
    if to_save:
        IncidentEvent.objects.bulk_create(to_save)
    touched = {i.pk: i for i in result.opened + changed}
    if result.opened or result.resolved:
        audit.record(
            actor=audit.Actor.system(ALERTMANAGER),
            action=AuditAction.INCIDENT_INTAKE,
            object_type="alerts.incident",
            object_repr=f"{len(result.opened)} opened, {len(result.resolved)} resolved",
            after={
                "opened": [str(i.public_id) for i in result.opened[:100]],
                "resolved": [str(i.public_id) for i in result.resolved[:100]],
                "receiver": notification.receiver,
            },
        )
    incident_live.push_on_commit((i.public_id, i.is_security) for i in touched.values())
    return result
