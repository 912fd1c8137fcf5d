"""Every alerting write a person or token can make, each audited, each followed by a sync.

Callers run inside the tenant's schema and pass values already validated by `alerts.forms`;
these functions check what needs the database (duplicates, references) and raise
ValidationError keyed by field. After commit, the backends are brought in step by Celery.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from alerts import sync_queue
from alerts.models import (
    AlertingSettings,
    AlertRule,
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
    return [
        {"name": r.name, "kind": r.kind, "ready": bool(r.enabled and r.secret)}
        for r in policy.receivers.order_by("name")
    ]


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
