"""Every alerting write a person or token can make, each audited, each followed by a sync.

Callers run inside the tenant's schema and pass values already validated by `alerts.forms`;
these functions check what needs the database (duplicates, references) and raise
ValidationError keyed by field. After commit, the backends are brought in step by Celery.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from alerts import incident_live, sync_queue, timeline
from alerts.actions import AuditAction
from alerts.models import (
    AlertingSettings,
    AlertRule,
    Category,
    Incident,
    IncidentEvent,
    MuteTiming,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Severity,
    Silence,
    SyncState,
)
from tenants import audit

Target = SyncState.Target

# The seed's default policy: who is told for each severity, and how often.
DEFAULT_RECEIVERS = [
    ("On-call PagerDuty", Receiver.Kind.PAGERDUTY),
    ("On-call SMS", Receiver.Kind.SMS),
    ("Team Slack", Receiver.Kind.SLACK),
    ("Team Teams", Receiver.Kind.MSTEAMS),
    ("Daily digest e-mail", Receiver.Kind.EMAIL),
]
DEFAULT_POLICY = {
    Severity.P0: (
        ["On-call PagerDuty", "On-call SMS", "Team Slack", "Team Teams"],
        "10s",
        "1m",
        "30m",
    ),
    Severity.P1: (["On-call PagerDuty", "Team Slack", "Team Teams"], "30s", "5m", "1h"),
    Severity.P2: (["Team Slack", "Team Teams"], "1m", "10m", "4h"),
    Severity.P3: (["Daily digest e-mail"], "10m", "1h", "24h"),
}


def _changed(*targets: str) -> None:
    """Mark targets as pending now, and sync them once this transaction commits."""
    now = timezone.now()
    for target in targets:
        SyncState.objects.update_or_create(
            target=target, defaults={"status": SyncState.Status.PENDING, "changed_at": now}
        )
    sync_queue.request_on_commit(targets)


# ---- rule groups and rules -----------------------------------------------------------------


def _rule_snapshot(rule: AlertRule) -> dict:
    return {
        "group": rule.group.name,
        "kind": rule.kind,
        "name": rule.name,
        "expr": rule.expr,
        "for": rule.for_duration,
        "keep_firing_for": rule.keep_firing_for,
        "severity": rule.severity,
        "category": rule.category,
        "labels": rule.labels,
        "annotations": rule.annotations,
        "enabled": rule.enabled,
    }


@transaction.atomic
def create_group(*, name: str, interval: str, actor: audit.Actor) -> RuleGroup:
    if RuleGroup.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A rule group named '{name}' exists already."]})
    group = RuleGroup.objects.create(name=name, interval=interval)
    audit.record(
        actor=actor,
        action="alert_group.created",
        obj=group,
        after={"name": name, "interval": interval},
    )
    _changed(Target.PROMETHEUS_RULES)
    return group


@transaction.atomic
def update_group(*, group_id, name: str, interval: str, actor: audit.Actor) -> RuleGroup:
    group = RuleGroup.objects.select_for_update().get(public_id=group_id)
    before = {"name": group.name, "interval": group.interval}
    if RuleGroup.objects.filter(name=name).exclude(pk=group.pk).exists():
        raise ValidationError({"name": [f"A rule group named '{name}' exists already."]})
    group.name, group.interval = name, interval
    after = {"name": name, "interval": interval}
    if after != before:
        group.save()
        audit.record(
            actor=actor, action="alert_group.updated", obj=group, before=before, after=after
        )
        _changed(Target.PROMETHEUS_RULES)
    return group


@transaction.atomic
def delete_group(*, group_id, actor: audit.Actor) -> RuleGroup:
    """Delete a group and every rule in it."""
    group = RuleGroup.objects.select_for_update().get(public_id=group_id)
    rules = list(group.rules.all())
    audit.record(
        actor=actor,
        action="alert_group.deleted",
        obj=group,
        before={"name": group.name, "rules": [r.name for r in rules]},
    )
    group.rules.all().delete()
    group.delete()
    _changed(Target.PROMETHEUS_RULES)
    return group


def _unique_in_group(group: RuleGroup, name: str, exclude_pk=None) -> None:
    clash = AlertRule.objects.filter(group=group, name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": [f"The group '{group.name}' has a rule named '{name}'."]})


@transaction.atomic
def create_rule(*, group_id, actor: audit.Actor, **values) -> AlertRule:
    """Values: kind, name, expr, for_duration, keep_firing_for, severity, category, labels,
    annotations, enabled (as AlertRuleForm cleans them)."""
    try:
        group = RuleGroup.objects.select_for_update().get(public_id=group_id)
    except (RuleGroup.DoesNotExist, ValidationError):
        raise ValidationError({"group": ["No such rule group."]}) from None
    _unique_in_group(group, values["name"])
    position = (group.rules.aggregate(m=Max("position"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            rule = AlertRule.objects.create(group=group, position=position, **values)
    except IntegrityError:
        raise ValidationError({"name": ["A rule of that name was just added."]}) from None
    audit.record(actor=actor, action="alert_rule.created", obj=rule, after=_rule_snapshot(rule))
    _changed(Target.PROMETHEUS_RULES)
    return rule


@transaction.atomic
def update_rule(*, rule_id, actor: audit.Actor, group_id=None, **values) -> AlertRule:
    rule = AlertRule.objects.select_for_update().select_related("group").get(public_id=rule_id)
    before = _rule_snapshot(rule)
    if group_id is not None and str(group_id) != str(rule.group.public_id):
        try:
            rule.group = RuleGroup.objects.get(public_id=group_id)
        except (RuleGroup.DoesNotExist, ValidationError):
            raise ValidationError({"group": ["No such rule group."]}) from None
    for key, value in values.items():
        setattr(rule, key, value)
    _unique_in_group(rule.group, rule.name, exclude_pk=rule.pk)
    after = _rule_snapshot(rule)
    if after != before:
        rule.save()
        audit.record(actor=actor, action="alert_rule.updated", obj=rule, before=before, after=after)
        _changed(Target.PROMETHEUS_RULES)
    return rule


@transaction.atomic
def delete_rule(*, rule_id, actor: audit.Actor) -> AlertRule:
    rule = AlertRule.objects.select_for_update().select_related("group").get(public_id=rule_id)
    audit.record(actor=actor, action="alert_rule.deleted", obj=rule, before=_rule_snapshot(rule))
    rule.delete()
    _changed(Target.PROMETHEUS_RULES)
    return rule


# ---- receivers -----------------------------------------------------------------------------


def _hint(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) >= 12 else ("set" if secret else "")


def _receiver_snapshot(receiver: Receiver) -> dict:
    # The secret itself never enters the audit trail; its hint shows that it changed.
    return {
        "name": receiver.name,
        "kind": receiver.kind,
        "settings": receiver.settings,
        "secret": receiver.secret_hint,
        "enabled": receiver.enabled,
    }


@transaction.atomic
def create_receiver(
    *, name: str, kind: str, settings: dict, secret: str, enabled: bool = True, actor: audit.Actor
) -> Receiver:
    if Receiver.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A receiver named '{name}' exists already."]})
    receiver = Receiver.objects.create(
        name=name,
        kind=kind,
        settings=settings,
        secret=secret,
        secret_hint=_hint(secret),
        enabled=enabled,
    )
    audit.record(
        actor=actor, action="receiver.created", obj=receiver, after=_receiver_snapshot(receiver)
    )
    _changed(Target.ALERTMANAGER)
    return receiver


@transaction.atomic
def update_receiver(
    *,
    receiver_id,
    name: str,
    kind: str,
    settings: dict,
    secret: str = "",
    enabled: bool = True,
    actor: audit.Actor,
) -> Receiver:
    """A blank secret keeps the stored one; the kind can change only with a new secret."""
    receiver = Receiver.objects.select_for_update().get(public_id=receiver_id)
    before = _receiver_snapshot(receiver)
    if Receiver.objects.filter(name=name).exclude(pk=receiver.pk).exists():
        raise ValidationError({"name": [f"A receiver named '{name}' exists already."]})
    if kind != receiver.kind and not secret and receiver.secret:
        raise ValidationError({"secret": ["A new kind needs its own secret."]})
    receiver.name, receiver.kind, receiver.settings, receiver.enabled = (
        name,
        kind,
        settings,
        enabled,
    )
    if secret:
        receiver.secret, receiver.secret_hint = secret, _hint(secret)
    after = _receiver_snapshot(receiver)
    if after != before or secret:
        receiver.save()
        audit.record(
            actor=actor,
            action="receiver.updated",
            obj=receiver,
            before=before,
            after={**after, "secret_changed": bool(secret)},
        )
        _changed(Target.ALERTMANAGER)
    return receiver


@transaction.atomic
def delete_receiver(*, receiver_id, actor: audit.Actor) -> Receiver:
    receiver = Receiver.objects.select_for_update().get(public_id=receiver_id)
    used = sorted(receiver.policies.values_list("severity", flat=True))
    if used:
        raise ValidationError(
            {
                "receiver": [
                    f"{receiver.name} is in the notification policy for {', '.join(used)}; "
                    "take it out there first."
                ]
            }
        )
    audit.record(
        actor=actor, action="receiver.deleted", obj=receiver, before=_receiver_snapshot(receiver)
    )
    receiver.delete()
    _changed(Target.ALERTMANAGER)
    return receiver


# ---- notification policy and mute timings ---------------------------------------------------


def _policy_snapshot(policy: NotificationPolicy) -> dict:
    return {
        "severity": policy.severity,
        "receivers": sorted(policy.receivers.values_list("name", flat=True)),
        "group_by": policy.group_by,
        "group_wait": policy.group_wait,
        "group_interval": policy.group_interval,
        "repeat_interval": policy.repeat_interval,
        "mute_timings": sorted(policy.mute_timings.values_list("name", flat=True)),
    }


@transaction.atomic
def update_policy(
    *,
    severity: str,
    receivers: list[str],
    group_by: list[str],
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
    mute_timings: list[str],
    actor: audit.Actor,
) -> NotificationPolicy:
    """Receivers by public id, mute timings by name."""
    if severity not in Severity.values:
        raise ValidationError({"severity": [f"'{severity}' is not a severity."]})
    policy, _ = NotificationPolicy.objects.select_for_update().get_or_create(severity=severity)
    before = _policy_snapshot(policy)
    found = list(Receiver.objects.filter(public_id__in=_uuids(receivers, "receivers")))
    if len(found) != len(set(receivers)):
        raise ValidationError({"receivers": ["One or more receivers do not exist."]})
    mutes = list(MuteTiming.objects.filter(name__in=mute_timings))
    if len(mutes) != len(set(mute_timings)):
        raise ValidationError({"mute_timings": ["One or more mute timings do not exist."]})
    policy.group_by, policy.group_wait = group_by, group_wait
    policy.group_interval, policy.repeat_interval = group_interval, repeat_interval
    policy.save()
    policy.receivers.set(found)
    policy.mute_timings.set(mutes)
    after = _policy_snapshot(policy)
    if after != before:
        audit.record(actor=actor, action="policy.updated", obj=policy, before=before, after=after)
        _changed(Target.ALERTMANAGER)
    return policy


def _uuids(values: list[str], field: str) -> list[str]:
    import uuid

    try:
        return [str(uuid.UUID(str(v))) for v in values]
    except ValueError:
        raise ValidationError({field: ["Give receivers by their id."]}) from None


@transaction.atomic
def save_mute_timing(*, name: str, intervals: list, actor: audit.Actor) -> MuteTiming:
    timing, created = MuteTiming.objects.select_for_update().get_or_create(
        name=name, defaults={"intervals": intervals}
    )
    before = None if created else {"intervals": timing.intervals}
    if not created:
        timing.intervals = intervals
        timing.save()
    audit.record(
        actor=actor,
        action="mute_timing.saved",
        obj=timing,
        before=before,
        after={"name": name, "intervals": intervals},
    )
    _changed(Target.ALERTMANAGER)
    return timing


@transaction.atomic
def delete_mute_timing(*, name: str, actor: audit.Actor) -> MuteTiming:
    timing = MuteTiming.objects.select_for_update().get(name=name)
    used = sorted(timing.policies.values_list("severity", flat=True))
    if used:
        raise ValidationError(
            {"mute_timing": [f"{name} mutes the policy for {', '.join(used)}; take it out first."]}
        )
    audit.record(
        actor=actor,
        action="mute_timing.deleted",
        obj=timing,
        before={"name": timing.name, "intervals": timing.intervals},
    )
    timing.delete()
    _changed(Target.ALERTMANAGER)
    return timing


# ---- silences ------------------------------------------------------------------------------


@transaction.atomic
def create_silence(
    *,
    matchers: list[dict],
    ends_at: datetime,
    comment: str,
    starts_at: datetime | None = None,
    actor: audit.Actor,
) -> Silence:
    now = timezone.now()
    starts_at = starts_at or now
    if ends_at <= now:
        raise ValidationError({"ends_at": ["The end must be in the future."]})
    silence = Silence.objects.create(
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=actor.label[:254],
    )
    audit.record(
        actor=actor,
        action="silence.created",
        obj=silence,
        after={
            "matchers": matchers,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "comment": comment,
        },
    )
    _changed(Target.SILENCES)
    return silence


@transaction.atomic
def expire_silence(*, silence_id, actor: audit.Actor) -> Silence:
    silence = Silence.objects.select_for_update().get(public_id=silence_id)
    if silence.expired_at is None:
        silence.expired_at = timezone.now()
        silence.synced = False  # pending until Alertmanager has expired it too
        silence.save(update_fields=["expired_at", "synced"])
        audit.record(
            actor=actor,
            action="silence.expired",
            obj=silence,
            before={"expired_at": None},
            after={"expired_at": silence.expired_at},
        )
        _changed(Target.SILENCES)
    return silence


# ---- tenant set-up -------------------------------------------------------------------------


@transaction.atomic
def ensure_alerting_defaults(*, actor: audit.Actor) -> None:
    """A tenant's starting point: intake credentials, and the seed's default policy with
    receivers that wait for their secrets (they send nothing until configured)."""
    if not AlertingSettings.objects.exists():
        AlertingSettings.objects.create(webhook_secret=secrets.token_urlsafe(32))
    if NotificationPolicy.objects.exists():
        return
    receivers = {}
    for name, kind in DEFAULT_RECEIVERS:
        receivers[name], _ = Receiver.objects.get_or_create(
            name=name, defaults={"kind": kind, "enabled": False}
        )
    for severity, (names, wait, interval, repeat) in DEFAULT_POLICY.items():
        policy = NotificationPolicy.objects.create(
            severity=severity,
            group_by=["alertname"],
            group_wait=wait,
            group_interval=interval,
            repeat_interval=repeat,
        )
        policy.receivers.set([receivers[n] for n in names])
    audit.record(
        actor=actor,
        action="policy.defaults_created",
        object_type="alerts.notificationpolicy",
        object_repr="Default policy",
        after={s: names for s, (names, *_rest) in DEFAULT_POLICY.items()},
    )
    _changed(Target.ALERTMANAGER)


@transaction.atomic
def rotate_webhook_secret(*, actor: audit.Actor) -> None:
    settings = AlertingSettings.objects.select_for_update().first()
    if settings is None:
        settings = AlertingSettings(webhook_secret="")
    settings.webhook_secret = secrets.token_urlsafe(32)
    settings.save()
    audit.record(
        actor=actor,
        action="alert_intake.secret_rotated",
        object_type="alerts.alertingsettings",
        object_repr="Alert intake credentials",
    )
    _changed(Target.ALERTMANAGER)


# ---- reads for other apps (compliance checks, dashboards) ------------------------------------


def policy_receivers(severity: str) -> list[dict] | None:
    """The receivers of one severity's policy (None when there is no such policy): name, kind,
    and whether it can send (enabled, with its secret set)."""
    policy = NotificationPolicy.objects.filter(severity=severity).first()
    if policy is None:
        return None
    return [_receiver_view(r) for r in policy.receivers.order_by("name")]


def _receiver_view(receiver: Receiver) -> dict:
    """Name, kind, and whether it can send (enabled, with its secret set)."""
    return {
        "name": receiver.name,
        "kind": receiver.kind,
        "ready": bool(receiver.enabled and receiver.secret),
    }


def policy_routes(severities) -> dict[str, list[dict]]:
    """`policy_receivers` of several severities at once (an empty list where there is no
    policy), in two queries whatever their number."""
    from django.db.models import Prefetch

    policies = NotificationPolicy.objects.filter(severity__in=severities).prefetch_related(
        Prefetch("receivers", queryset=Receiver.objects.order_by("name"))
    )
    found = {
        policy.severity: [_receiver_view(r) for r in policy.receivers.all()] for policy in policies
    }
    return {severity: found.get(severity, []) for severity in severities}


def enabled_alert_rules() -> list[dict]:
    """Every enabled alerting rule: name, expression, labels and annotations."""
    return [
        {"name": r.name, "expr": r.expr, "labels": r.labels, "annotations": r.annotations}
        for r in AlertRule.objects.filter(enabled=True, kind=AlertRule.Kind.ALERT)
    ]


def sync_states() -> list[dict]:
    """Where each backend stands against what the portal holds."""
    return [
        {
            "target": s.target,
            "label": s.get_target_display(),
            "status": s.status,
            "error": s.error,
            "changed_at": s.changed_at,
            "last_success_at": s.last_success_at,
        }
        for s in SyncState.objects.order_by("target")
    ]


# ---- incidents -----------------------------------------------------------------------------
#
# People's actions on an incident. Each locks the incident, checks the move is allowed, appends
# to its timeline, audits, and tells the incident desk after commit. Callers find the incident
# through `visible_incidents(access)` first, so nobody acts on one they may not see.

ACK_TARGET_SEVERITIES = ("P0", "P1", "P2", "P3")
MAX_NOTE = 10_000


def visible_incidents(access):
    """The incidents `access` may see: security ones only with VIEW_SECURITY_INCIDENTS."""
    from tenants.roles import Perm

    if not access.can(Perm.VIEW_INCIDENTS):
        return Incident.objects.none()
    incidents = Incident.objects.all()
    if not access.can(Perm.VIEW_SECURITY_INCIDENTS):
        incidents = incidents.exclude(category=Category.SECURITY)
    return incidents


def actable_incidents(access):
    """The incidents `access` may act on: those it sees, and for a `write` token (which acts
    without listing) those a `read` token would see. Security incidents need their own
    permission either way."""
    from tenants.roles import Access, Perm

    if not access.can(Perm.MANAGE_INCIDENTS):
        return Incident.objects.none()
    if not access.can(Perm.VIEW_INCIDENTS):
        access = Access(perms=access.perms | {Perm.VIEW_INCIDENTS}, role=access.role)
    return visible_incidents(access)


def _locked_incident(incident_id) -> Incident:
    return Incident.objects.select_for_update().get(public_id=incident_id)


def _append(
    incident: Incident,
    kind: str,
    *,
    actor: audit.Actor,
    action: str,
    text: str = "",
    detail: dict | None = None,
    before: dict | None = None,
    after: dict | None = None,
    fields: tuple[str, ...] = (),
) -> IncidentEvent:
    now = timezone.now()
    event = timeline.entry(incident, kind, at=now, actor=actor.label, text=text, detail=detail)
    incident.updated_at = now
    incident.save(update_fields=[*fields, "timeline_head", "updated_at"])
    event.save()
    audit.record(actor=actor, action=action, obj=incident, before=before, after=after)
    incident_live.push_on_commit([(incident.public_id, incident.is_security)])
    return event


@transaction.atomic
def acknowledge_incident(*, incident_id, actor: audit.Actor) -> Incident:
    incident = _locked_incident(incident_id)
    if incident.status == Incident.Status.RESOLVED:
        raise ValidationError(
            {"status": ["A resolved incident cannot be acknowledged; reopen it."]}
        )
    if incident.status == Incident.Status.ACKNOWLEDGED:
        return incident  # a second click, or two people at once: one acknowledgement
    incident.status = Incident.Status.ACKNOWLEDGED
    incident.acknowledged_at = timezone.now()
    incident.acknowledged_by = actor.label[:254]
    _append(
        incident,
        IncidentEvent.Kind.ACKNOWLEDGED,
        actor=actor,
        action=AuditAction.INCIDENT_ACKNOWLEDGED,
        before={"status": Incident.Status.TRIGGERED},
        after={"status": incident.status},
        fields=("status", "acknowledged_at", "acknowledged_by"),
    )
    return incident


def _assignable_member(membership_id, incident: Incident):
    """The member of this tenant with that membership id, able to see the incident."""
    from django.db import connection

    from tenants.models import Membership
    from tenants.roles import Perm, access_for_role

    try:
        membership_id = uuid.UUID(str(membership_id))
    except ValueError:
        raise ValidationError({"assignee": ["No such member of this tenant."]}) from None

    membership = (
        Membership.objects.filter(
            public_id=membership_id,
            tenant__schema_name=connection.schema_name,
            user__is_active=True,
        )
        .select_related("user")
        .first()
    )
    if membership is None:
        raise ValidationError({"assignee": ["No such member of this tenant."]})
    access = access_for_role(membership.role)
    needed = Perm.VIEW_SECURITY_INCIDENTS if incident.is_security else Perm.VIEW_INCIDENTS
    if not access.can(needed):
        raise ValidationError(
            {
                "assignee": [
                    f"{membership.user.email} cannot see this incident (role {membership.role})."
                ]
            }
        )
    return membership.user


@transaction.atomic
def assign_incident(*, incident_id, assignee, actor: audit.Actor) -> Incident:
    """Assign to a member (their membership id), or unassign with None."""
    incident = _locked_incident(incident_id)
    before = {"assignee": incident.assignee_email or None}
    if assignee in (None, ""):
        user_id, email = None, ""
    else:
        user = _assignable_member(assignee, incident)
        user_id, email = user.pk, user.email
    if user_id == incident.assignee_id:
        return incident
    incident.assignee_id, incident.assignee_email = user_id, email
    _append(
        incident,
        IncidentEvent.Kind.ASSIGNED,
        actor=actor,
        action=AuditAction.INCIDENT_ASSIGNED,
        text=f"Assigned to {email}." if email else "Unassigned.",
        detail={"assignee": email or None},
        before=before,
        after={"assignee": email or None},
        fields=("assignee_id", "assignee_email"),
    )
    return incident


@transaction.atomic
def add_incident_note(*, incident_id, text: str, actor: audit.Actor) -> IncidentEvent:
    if not text.strip():
        raise ValidationError({"text": ["Write the note."]})
    if len(text) > MAX_NOTE:
        raise ValidationError({"text": [f"At most {MAX_NOTE} characters."]})
    incident = _locked_incident(incident_id)
    return _append(
        incident,
        IncidentEvent.Kind.NOTE,
        actor=actor,
        action=AuditAction.INCIDENT_NOTE_ADDED,
        text=text,
        after={"note": text[:200]},
    )


@transaction.atomic
def silence_incident(
    *, incident_id, duration: timedelta, comment: str, actor: audit.Actor
) -> Silence:
    """Silence this incident's alert (every label of it) in Alertmanager for `duration`."""
    if not timedelta(minutes=1) <= duration <= timedelta(days=30):
        raise ValidationError({"duration": ["Between 1 minute and 30 days."]})
    incident = _locked_incident(incident_id)
    matchers = [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(incident.labels.items())
        if name != "tenant"
    ]
    ends_at = timezone.now() + duration
    silence = create_silence(
        matchers=matchers,
        ends_at=ends_at,
        comment=comment or f"Silenced from incident {incident.alertname}",
        actor=actor,
    )
    _append(
        incident,
        IncidentEvent.Kind.SILENCED,
        actor=actor,
        action=AuditAction.INCIDENT_SILENCED,
        text=comment,
        detail={"silence": str(silence.public_id), "until": ends_at},
        after={"silence": str(silence.public_id), "until": ends_at},
    )
    return silence


@transaction.atomic
def resolve_incident(*, incident_id, actor: audit.Actor, note: str = "") -> Incident:
    incident = _locked_incident(incident_id)
    if incident.status == Incident.Status.RESOLVED:
        return incident
    before = {"status": incident.status}
    incident.status = Incident.Status.RESOLVED
    incident.resolved_at = timezone.now()
    incident.resolved_by = actor.label[:254]
    _append(
        incident,
        IncidentEvent.Kind.RESOLVED,
        actor=actor,
        action=AuditAction.INCIDENT_RESOLVED,
        text=note,
        before=before,
        after={"status": incident.status},
        fields=("status", "resolved_at", "resolved_by"),
    )
    return incident


@transaction.atomic
def reopen_incident(*, incident_id, actor: audit.Actor, reason: str = "") -> Incident:
    incident = _locked_incident(incident_id)
    if incident.status != Incident.Status.RESOLVED:
        raise ValidationError({"status": ["Only a resolved incident can be reopened."]})
    # Back to where people stood before: acknowledged stays acknowledged.
    incident.status = (
        Incident.Status.ACKNOWLEDGED if incident.acknowledged_at else Incident.Status.TRIGGERED
    )
    incident.resolved_at, incident.resolved_by = None, ""
    _append(
        incident,
        IncidentEvent.Kind.REOPENED,
        actor=actor,
        action=AuditAction.INCIDENT_REOPENED,
        text=reason,
        before={"status": Incident.Status.RESOLVED},
        after={"status": incident.status},
        fields=("status", "resolved_at", "resolved_by"),
    )
    return incident


@transaction.atomic
def flag_personal_data_breach(*, incident_id, actor: audit.Actor) -> Incident:
    """Start the GDPR 72-hour clock (art. 33) on a security incident."""
    incident = _locked_incident(incident_id)
    if not incident.is_security:
        raise ValidationError(
            {"category": ["Only a security incident can be flagged as a personal-data breach."]}
        )
    if incident.breach_flagged_at:
        return incident
    incident.breach_flagged_at = timezone.now()
    incident.breach_flagged_by = actor.label[:254]
    _append(
        incident,
        IncidentEvent.Kind.BREACH_FLAGGED,
        actor=actor,
        action=AuditAction.INCIDENT_BREACH_FLAGGED,
        text="Personal-data breach: the supervisory authority must be notified within 72 hours.",
        detail={"deadline": breach_deadline(incident)},
        after={"breach_flagged_at": incident.breach_flagged_at},
        fields=("breach_flagged_at", "breach_flagged_by"),
    )
    return incident


BREACH_NOTICE_WINDOW = timedelta(hours=72)


def breach_deadline(incident: Incident) -> datetime | None:
    if incident.breach_flagged_at is None:
        return None
    return incident.breach_flagged_at + BREACH_NOTICE_WINDOW


@transaction.atomic
def record_breach_notice(
    *, incident_id, recipient: str, notified_at: datetime, actor: audit.Actor
) -> Incident:
    """Who was told of the breach, when (the authority, data subjects, a processor)."""
    incident = _locked_incident(incident_id)
    if incident.breach_flagged_at is None:
        raise ValidationError({"recipient": ["Flag the incident as a personal-data breach first."]})
    if notified_at > timezone.now() + timedelta(minutes=5):
        raise ValidationError({"notified_at": ["The notification cannot be in the future."]})
    if notified_at < incident.started_at - timedelta(days=1):
        raise ValidationError({"notified_at": ["That is before the incident started."]})
    fields: tuple[str, ...] = ()
    if incident.authority_notified_at is None:
        incident.authority_notified_at = notified_at
        fields = ("authority_notified_at",)
    late = notified_at > breach_deadline(incident)
    _append(
        incident,
        IncidentEvent.Kind.AUTHORITY_NOTIFIED,
        actor=actor,
        action=AuditAction.INCIDENT_BREACH_NOTICE,
        text=f"{recipient} notified" + (" (after the 72-hour deadline)" if late else ""),
        detail={"recipient": recipient, "notified_at": notified_at, "late": late},
        after={"recipient": recipient, "notified_at": notified_at},
        fields=fields,
    )
    return incident


def ack_targets() -> dict[str, int]:
    """Minutes within which each severity's incidents should be acknowledged."""
    from alerts.models import default_ack_targets

    row = AlertingSettings.objects.only("ack_targets").first()
    return {**default_ack_targets(), **(row.ack_targets if row else {})}


@transaction.atomic
def update_ack_targets(*, targets: dict[str, int], actor: audit.Actor) -> dict[str, int]:
    clean = {}
    for severity in ACK_TARGET_SEVERITIES:
        value = targets.get(severity)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_080:
            raise ValidationError({severity: ["Minutes between 1 and 10080 (a week)."]})
        clean[severity] = value
    row = AlertingSettings.objects.select_for_update().first()
    if row is None:
        raise ValidationError({"__all__": ["Alerting is not set up for this tenant yet."]})
    before = ack_targets()
    if before == clean:
        return clean
    # update(): saving the row would move `rotated_at`, which dates the intake secret.
    AlertingSettings.objects.filter(pk=row.pk).update(ack_targets=clean)
    audit.record(
        actor=actor,
        action=AuditAction.ACK_TARGETS_UPDATED,
        object_type="alerts.alertingsettings",
        object_repr="Acknowledgement targets",
        before=before,
        after=clean,
    )
    return clean


def incident_times(since: datetime) -> list[dict]:
    """Severity, start, acknowledgement and resolution of every incident since `since`
    (for the compliance checks and the desk's MTTA/MTTR)."""
    return list(
        Incident.objects.filter(started_at__gte=since).values(
            "severity", "category", "started_at", "acknowledged_at", "resolved_at"
        )
    )


@transaction.atomic
def raise_portal_incident(
    *, alertname: str, summary: str, severity: str, category: str, actor: audit.Actor
) -> Incident | None:
    """An incident the portal itself detected (e.g. a broken audit chain), not an alert.

    At most one open incident per `alertname`: while it is open, the same finding adds nothing.
    Its receivers are the severity's policy, sent to by the portal (Alertmanager never saw it).
    Returns the new incident, or None when one is already open.
    """
    import hashlib

    fingerprint = "portal:" + hashlib.sha256(alertname.encode()).hexdigest()[:24]
    open_one = (
        Incident.objects.select_for_update()
        .filter(fingerprint=fingerprint)
        .exclude(status=Incident.Status.RESOLVED)
    )
    if open_one.exists():
        return None
    now = timezone.now()
    labels = {"alertname": alertname, "severity": severity, "category": category}
    incident = Incident(
        fingerprint=fingerprint,
        started_at=now,
        alertname=alertname,
        severity=severity,
        category=category,
        service="portal",
        summary=summary[:500],
        labels=labels,
        annotations={"summary": summary},
    )
    fired = timeline.entry(
        incident, IncidentEvent.Kind.FIRED, at=now, actor=actor.label, text=summary
    )
    incident.save()
    fired.save()
    audit.record(actor=actor, action=AuditAction.INCIDENT_RAISED, obj=incident, after=labels)
    incident_live.push_on_commit([(incident.public_id, incident.is_security)])
    transaction.on_commit(lambda: _queue_portal_incident_notice(incident.public_id))
    return incident


def _queue_portal_incident_notice(incident_id) -> None:
    from alerts.tasks import notify_portal_incident

    notify_portal_incident.delay(str(incident_id))


# ---- figures for the tenant's dashboards ------------------------------------------------------


def open_incident_counts() -> dict[str, int]:
    """Incidents not resolved, per severity (every severity, zero included), and those of the
    security category under "security"; one query."""
    return (
        Incident.objects.exclude(status=Incident.Status.RESOLVED)
        .order_by()
        .aggregate(
            **{severity: Count("pk", filter=Q(severity=severity)) for severity in Severity.values},
            security=Count("pk", filter=Q(category=Category.SECURITY)),
        )
    )
