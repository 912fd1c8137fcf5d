"""Alerting in the API: representations, and input checked by the forms the pages use.

Input serializers name the shared form (`alerts.forms`); the declared fields describe the input
for the OpenAPI document and are enforced as JSON types here (text as strings, flags as
booleans, labels as an object of strings), then the form cleans the values and names the field
it refuses, as on the pages. A partial update is checked as the whole object it would make.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django import forms
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from alerts.forms import (
    AlertRuleForm,
    NotificationPolicyForm,
    ReceiverForm,
    RuleGroupForm,
    SilenceForm,
)
from alerts.models import (
    AlertRule,
    Category,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Severity,
    Silence,
)
from alerts.preview import receiver_is_usable
from alerts.rulefile_import import MAX_FILE_BYTES

# What `alerts.forms.clean_text` accepts once trimmed: no control characters but tab and newline.
_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
_REQUIRED_TEXT = r"^\s*[^\x00-\x08\x0b-\x1f\x7f-\x9f\s][^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
_DURATION = r"^\s*(?:[0-9]+(?:y|w|d|h|m|s|ms))+\s*$"
_OPTIONAL_DURATION = r"^\s*(?:(?:[0-9]+(?:y|w|d|h|m|s|ms))+)?\s*$"
_RULE_NAME = r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*$"
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


def _text(max_length: int, *, required: bool = True, **kwargs) -> serializers.RegexField:
    """Text as the alerting forms take it (the pattern documents it; the form enforces it)."""
    return serializers.RegexField(
        _REQUIRED_TEXT if required else _TEXT,
        max_length=max_length,
        required=required,
        allow_blank=not required,
        trim_whitespace=False,
        **kwargs,
    )


def _duration(*, required: bool, **kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        _DURATION if required else _OPTIONAL_DURATION,
        max_length=20,
        required=required,
        allow_blank=not required,
        **kwargs,
    )


class _TypeError(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _checked(field: serializers.Field, value):
    """`value` if its JSON type fits the declared field, else _TypeError with what to send."""
    if isinstance(field, serializers.BooleanField):
        if not isinstance(value, bool):
            raise _TypeError("Send true or false.")
        return value
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _TypeError("Send an object whose values are strings.")
        return json.dumps(value)
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            raise _TypeError("Send a list.")
        child = field.child
        if isinstance(child, serializers.Serializer):
            if not all(isinstance(item, dict) for item in value):
                raise _TypeError("Send a list of objects.")
            for item in value:
                _check_object(child, item)
        elif not all(isinstance(item, str) for item in value):
            raise _TypeError("Send a list of strings.")
        return json.dumps(value)
    if isinstance(field, serializers.Serializer):
        if not isinstance(value, dict):
            raise _TypeError("Send an object.")
        _check_object(field, value)
        return json.dumps(value)
    if not isinstance(value, str):
        raise _TypeError("Send a string.")
    return value


def _check_object(serializer: serializers.Serializer, value: dict) -> None:
    unknown = sorted(set(value) - set(serializer.fields))
    if unknown:
        raise _TypeError(f"Unknown key(s): {', '.join(str(k)[:50] for k in unknown)}.")
    for name, child in serializer.fields.items():
        if name not in value:
            if child.required:
                raise _TypeError(f"'{name}' is required.")
            continue
        try:
            _checked(child, value[name])
        except _TypeError as exc:
            raise _TypeError(f"{name}: {exc.message}") from None


class AlertFormSerializer(serializers.Serializer):
    """Input checked as JSON types by the declared fields, then cleaned by `form_class`.

    Context: `form_kwargs` for the form, and `current` (the object's values as the form takes
    them) for a partial update, which is checked as the whole result.
    """

    form_class: type[forms.Form]

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Send a JSON object."]}
            )
        values: dict = {}
        errors: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            if field.read_only or name not in data:
                continue
            try:
                values[name] = _checked(field, data[name])
            except _TypeError as exc:
                errors[name] = [exc.message]
        if errors:
            raise serializers.ValidationError(errors)
        if not self.partial:
            missing = [
                name
                for name, field in self.fields.items()
                if field.required and not field.read_only and name not in data
            ]
            if missing:
                raise serializers.ValidationError(
                    {name: ["This field is required."] for name in missing}
                )
        merged = {**self.context.get("current", {}), **values}
        form = self.form_class(data=merged, **self.context.get("form_kwargs", {}))
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    (api_settings.NON_FIELD_ERRORS_KEY if name == "__all__" else name): list(errs)
                    for name, errs in form.errors.items()
                }
            )
        cleaned = dict(form.cleaned_data)
        for name in self.fields:
            if name not in form.fields and name in merged:
                cleaned[name] = merged[name]
        self.form = form
        return cleaned


# ---- rule groups -------------------------------------------------------------------------------


class RuleGroupInput(AlertFormSerializer):
    form_class = RuleGroupForm
    name = serializers.RegexField(
        r"^\s*[^\x00-\x08\x0b-\x1f\x7f-\x9f\s/][^\x00-\x08\x0b-\x1f\x7f-\x9f/]*$",
        max_length=200,
        trim_whitespace=False,
        help_text="Unique in the tenant; no '/'.",
    )
    interval = _duration(required=False, help_text="Evaluation interval, e.g. 1m (default).")

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and not self.partial and "interval" not in data:
            data = {**data, "interval": "1m"}
        return super().to_internal_value(data)


class RuleGroupSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    rules = serializers.SerializerMethodField(help_text="Number of rules in the group.")

    class Meta:
        model = RuleGroup
        fields = ["id", "name", "interval", "rules", "created_at", "updated_at"]

    def get_rules(self, group: RuleGroup) -> int:
        counted = getattr(group, "rules_counted", None)  # annotated by the API's queryset
        return group.rules.count() if counted is None else counted


# ---- rules -------------------------------------------------------------------------------------


class RuleAnnotationsInput(serializers.Serializer):
    summary = _text(4000, required=False)
    description = _text(4000, required=False)
    runbook_url = serializers.RegexField(
        r"^\s*(?:https?://\S+)?\s*$", max_length=4000, required=False, allow_blank=True
    )


class AlertRuleInput(AlertFormSerializer):
    """Pass `form_kwargs={"schema": <tenant schema>}` in the context."""

    form_class = AlertRuleForm
    group = serializers.UUIDField(help_text="The rule group (its id).")
    kind = serializers.ChoiceField(choices=AlertRule.Kind.choices, required=False)
    name = serializers.RegexField(
        _RULE_NAME,
        max_length=200,
        trim_whitespace=False,
        help_text="Alert name (letters, digits, _), or the recorded series (also ':').",
    )
    expr = _text(10_000, help_text="PromQL; the tenant's matcher is added when it runs.")
    for_duration = _duration(required=False)
    keep_firing_for = _duration(required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    category = serializers.ChoiceField(choices=Category.choices, required=False)
    labels = serializers.DictField(
        child=serializers.CharField(max_length=1000, allow_blank=True),
        required=False,
        help_text="Extra labels; tenant, severity, category and alertname are the portal's.",
    )
    annotations = RuleAnnotationsInput(required=False)
    enabled = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and not self.partial:
            defaults = {"kind": "alert", "severity": "P2", "category": "availability"}
            data = {**defaults, "enabled": True, **data}
        return super().to_internal_value(data)


def rule_form_values(rule: AlertRule) -> dict:
    """A stored rule as AlertRuleInput's form takes it (the base of a partial update)."""
    return {
        "group": str(rule.group.public_id),
        "kind": rule.kind,
        "name": rule.name,
        "expr": rule.expr,
        "for_duration": rule.for_duration,
        "keep_firing_for": rule.keep_firing_for,
        "severity": rule.severity,
        "category": rule.category,
        "labels": json.dumps(rule.labels or {}),
        "annotations": json.dumps(rule.annotations or {}),
        "enabled": rule.enabled,
    }


class RuleAnnotations(serializers.Serializer):
    summary = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    runbook_url = serializers.CharField(required=False)


class AlertRuleSerializer(serializers.ModelSerializer):
    """A rule; `state` is what Prometheus evaluates now (context `live`: states or None)."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    group = serializers.UUIDField(source="group.public_id", read_only=True)
    group_name = serializers.CharField(source="group.name", read_only=True)
    # Plain strings in answers (the request documents the choices): one enum per choice set.
    kind = serializers.CharField(read_only=True, help_text="alert or record.")
    category = serializers.CharField(
        read_only=True, help_text="availability, performance, security, compliance or business."
    )
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    annotations = RuleAnnotations(read_only=True)
    state = serializers.SerializerMethodField(
        help_text=(
            "firing, pending or inactive in Prometheus now; not_loaded (not in Prometheus yet), "
            "disabled, or unknown (Prometheus not connected or not answering)."
        )
    )

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "group",
            "group_name",
            "kind",
            "name",
            "expr",
            "for_duration",
            "keep_firing_for",
            "severity",
            "category",
            "labels",
            "annotations",
            "enabled",
            "state",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(
        serializers.ChoiceField(
            choices=["firing", "pending", "inactive", "not_loaded", "disabled", "unknown"]
        )
    )
    def get_state(self, rule: AlertRule) -> str:
        if not rule.enabled:
            return "disabled"
        live = self.context.get("live")
        if live is None:
            return "unknown"
        found = live.get((rule.group.name, rule.name))
        return found.state if found else "not_loaded"


# ---- receivers ---------------------------------------------------------------------------------


class ReceiverInput(AlertFormSerializer):
    """Pass `form_kwargs={"editing": True}` for an update: a blank secret keeps the stored one."""

    form_class = ReceiverForm
    name = _text(100)
    kind = serializers.ChoiceField(choices=Receiver.Kind.choices)
    secret = _text(
        2000,
        required=False,
        help_text=(
            "Write-only: the webhook URL (Slack, Teams, webhook; https, public), PagerDuty "
            "routing key, phone number (SMS, +4155550100) or SMTP password (e-mail). Never "
            "returned."
        ),
    )
    channel = _text(80, required=False, help_text="Slack channel.")
    to = _text(254, required=False, help_text="E-mail address (e-mail receivers).")
    smarthost = serializers.RegexField(
        r"^\s*(?:[A-Za-z0-9.-]+:[0-9]{1,5})?\s*$",
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="SMTP server host:port (e-mail receivers).",
    )
    from_address = _text(254, required=False, help_text="Sender address (e-mail receivers).")
    auth_username = _text(254, required=False, help_text="SMTP user name (e-mail receivers).")
    require_tls = serializers.BooleanField(required=False)
    url = _text(2000, required=False, help_text="PagerDuty Events API URL (optional).")
    enabled = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        """The values `alerts.services.create_receiver` / `update_receiver` take."""
        if isinstance(data, Mapping) and not self.partial:
            data = {"enabled": True, "require_tls": True, **data}
        cleaned = super().to_internal_value(data)
        return {
            "name": cleaned["name"],
            "kind": cleaned["kind"],
            "settings": self.form.receiver_settings(),
            "secret": cleaned["secret"],
            "enabled": cleaned["enabled"],
        }


def receiver_form_values(receiver: Receiver) -> dict:
    settings = receiver.settings or {}
    return {
        "name": receiver.name,
        "kind": receiver.kind,
        "secret": "",
        "channel": settings.get("channel", ""),
        "to": settings.get("to", ""),
        "smarthost": settings.get("smarthost", ""),
        "from_address": settings.get("from", ""),
        "auth_username": settings.get("auth_username", ""),
        "require_tls": settings.get("require_tls", True),
        "url": settings.get("url", ""),
        "enabled": receiver.enabled,
    }


class ReceiverSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    kind = serializers.CharField(
        read_only=True, help_text="slack, msteams, email, sms, pagerduty or webhook."
    )
    settings = serializers.DictField(read_only=True, help_text="Non-secret settings by kind.")
    secret_hint = serializers.CharField(
        read_only=True, help_text="The secret's last characters (…abcd), or empty if unset."
    )
    usable = serializers.SerializerMethodField(
        help_text="Enabled and configured: Alertmanager sends to it."
    )
    policies = serializers.SerializerMethodField(
        help_text="Severities whose notification policy names it."
    )

    class Meta:
        model = Receiver
        fields = [
            "id",
            "name",
            "kind",
            "settings",
            "secret_hint",
            "enabled",
            "usable",
            "policies",
            "created_at",
            "updated_at",
        ]

    def get_usable(self, receiver: Receiver) -> bool:
        return receiver_is_usable(receiver)

    def get_policies(self, receiver: Receiver) -> list[str]:
        return sorted(p.severity for p in receiver.policies.all())


# ---- notification policies ---------------------------------------------------------------------


class NotificationPolicyInput(AlertFormSerializer):
    form_class = NotificationPolicyForm
    receivers = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="Receiver ids."
    )
    group_by = serializers.ListField(
        child=serializers.RegexField(r"^(?:[a-zA-Z_][a-zA-Z0-9_]*|\.\.\.)$"),
        required=False,
        help_text="Label names alerts are grouped by ('...' for all); alertname if empty.",
    )
    group_wait = _duration(required=False)
    group_interval = _duration(required=False)
    repeat_interval = _duration(required=False)
    mute_timings = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Maintenance window names."
    )


def policy_form_values(policy: NotificationPolicy) -> dict:
    return {
        "receivers": json.dumps([str(r.public_id) for r in policy.receivers.all()]),
        "group_by": json.dumps(policy.group_by or []),
        "group_wait": policy.group_wait,
        "group_interval": policy.group_interval,
        "repeat_interval": policy.repeat_interval,
        "mute_timings": json.dumps([m.name for m in policy.mute_timings.all()]),
    }


class NotificationPolicySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    receivers = serializers.SerializerMethodField()
    group_by = serializers.ListField(child=serializers.CharField(), read_only=True)
    mute_timings = serializers.SerializerMethodField()

    class Meta:
        model = NotificationPolicy
        fields = [
            "id",
            "severity",
            "receivers",
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "mute_timings",
            "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_receivers(self, policy: NotificationPolicy) -> list[str]:
        return sorted(str(r.public_id) for r in policy.receivers.all())

    def get_mute_timings(self, policy: NotificationPolicy) -> list[str]:
        return sorted(m.name for m in policy.mute_timings.all())


# ---- silences ----------------------------------------------------------------------------------


class MatcherSerializer(serializers.Serializer):
    name = serializers.RegexField(_LABEL_NAME, help_text="A label name; not tenant.")
    value = _text(1000)
    isRegex = serializers.BooleanField(required=False, default=False)  # noqa: N815 (API v2 name)
    isEqual = serializers.BooleanField(required=False, default=True)  # noqa: N815 (API v2 name)


class SilenceInput(AlertFormSerializer):
    form_class = SilenceForm
    matchers = serializers.ListField(child=MatcherSerializer(), min_length=1, max_length=20)
    starts_at = serializers.DateTimeField(required=False, help_text="Now if left out.")
    ends_at = serializers.DateTimeField(help_text="In the future, after starts_at.")
    comment = _text(1000)


class SilenceSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    matchers = MatcherSerializer(many=True, read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = [
            "id",
            "matchers",
            "starts_at",
            "ends_at",
            "comment",
            "created_by",
            "expired_at",
            "synced",
            "state",
            "created_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["active", "scheduled", "expired"]))
    def get_state(self, silence: Silence) -> str:
        now = timezone.now()
        if silence.expired_at or silence.ends_at <= now:
            return "expired"
        return "scheduled" if silence.starts_at > now else "active"


# ---- rule file ---------------------------------------------------------------------------------


class RuleFileImportSerializer(serializers.Serializer):
    content = serializers.CharField(
        max_length=MAX_FILE_BYTES,
        trim_whitespace=False,
        help_text="The rule file (YAML, as `promtool check rules` accepts).",
    )
    dry_run = serializers.BooleanField(
        required=False, default=True, help_text="Only say what would change (default)."
    )
    remove_missing = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Remove enabled rules that are not in the file (disabled ones stay).",
    )

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            if "content" in data and not isinstance(data["content"], str):
                errors["content"] = ["Send a string."]
            for name in ("dry_run", "remove_missing"):
                if name in data and not isinstance(data[name], bool):
                    errors[name] = ["Send true or false."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class RuleFileGroupChange(serializers.Serializer):
    name = serializers.CharField()
    interval = serializers.CharField(required=False)
    interval_before = serializers.CharField(required=False)


class RuleFileGroupChanges(serializers.Serializer):
    added = RuleFileGroupChange(many=True)
    changed = RuleFileGroupChange(many=True)
    removed = serializers.ListField(child=serializers.CharField())


class RuleFileRuleChange(serializers.Serializer):
    group = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField(), required=False)


class RuleFileRuleChanges(serializers.Serializer):
    added = RuleFileRuleChange(many=True)
    changed = RuleFileRuleChange(many=True)
    removed = RuleFileRuleChange(many=True)
    unchanged = serializers.IntegerField()
    kept_disabled = serializers.IntegerField()


class RuleFileSeverityMapping(serializers.Serializer):
    label = serializers.CharField()
    severity = serializers.CharField()
    rules = serializers.IntegerField()


class RuleFilePlanSerializer(serializers.Serializer):
    applied = serializers.BooleanField(help_text="False for a dry run.")
    groups = RuleFileGroupChanges()
    rules = RuleFileRuleChanges()
    severity_mapping = RuleFileSeverityMapping(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class RuleFileRule(serializers.Serializer):
    alert = serializers.CharField(required=False, help_text="An alerting rule's name.")
    record = serializers.CharField(required=False, help_text="A recording rule's series.")
    expr = serializers.CharField()
    keep_firing_for = serializers.CharField(required=False)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    annotations = serializers.DictField(child=serializers.CharField(), required=False)

    def get_fields(self):
        fields = super().get_fields()
        # `for` is a Python keyword: declared here under its YAML name.
        fields["for"] = serializers.CharField(required=False)
        return fields


class RuleFileGroup(serializers.Serializer):
    name = serializers.CharField()
    interval = serializers.CharField()
    rules = RuleFileRule(many=True)


class RuleFileDocumentSerializer(serializers.Serializer):
    """The exported rule file, as a YAML reader sees it."""

    groups = RuleFileGroup(many=True)
