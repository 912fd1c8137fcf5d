"""Validation of every alerting write, shared by the pages, the API and the admin.

Each form turns raw input into clean values and names the field it refuses; services take those
values and check what needs the database (duplicates, references).
"""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from alerts.durations import parse_duration
from alerts.models import AlertRule, Category, Receiver, Severity
from alerts.outbound import OutboundURLError, check_outbound_url
from alerts.promql import PromQLError, scope_to_tenant
from tenants.forms import check_text

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ALERT_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Labels the portal sets itself: a rule may not override where its alerts go.
RESERVED_LABELS = {"tenant", "severity", "category", "alertname"}
ANNOTATION_KEYS = ("summary", "description", "runbook_url")
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")


def clean_text(value, *, field: str, max_length: int, required: bool = True) -> str:
    """The portal's one text check (`tenants.forms.check_text`: NFC, trimmed, no control or
    bidirectional-override characters, at most `max_length`; line breaks and tabs allowed), its
    messages led by `field`, plus "required"."""
    try:
        value = check_text(str(value or ""), max_length=max_length, multiline=True)
    except ValidationError as exc:
        raise ValidationError(f"{field}: {' '.join(exc.messages)}") from None
    if required and not value:
        raise ValidationError(f"{field} is required.")
    return value


def clean_duration(value: str, *, field: str, required: bool) -> str:
    value = (value or "").strip()
    if not value and not required:
        return ""
    try:
        parse_duration(value)
    except ValueError as exc:
        raise ValidationError(f"{field}: {exc}.") from None
    return value


def _mapping(value, field: str) -> dict:
    """A JSON object given as a dict or as JSON text."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError(f"{field} must be a JSON object of names to text.") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object of names to text.")
    return value


def clean_labels(value, *, field: str = "Labels") -> dict[str, str]:
    labels = _mapping(value, field)
    if len(labels) > 30:
        raise ValidationError(f"{field}: at most 30 labels.")
    clean: dict[str, str] = {}
    for name, text in labels.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValidationError(
                f"{field}: '{str(name)[:50]}' is not a label name (letters, digits and _, "
                "not starting with a digit or __)."
            )
        if name in RESERVED_LABELS:
            raise ValidationError(f"{field}: '{name}' is set by the portal and cannot be given.")
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise ValidationError(f"{field}: the value of '{name}' must be text.")
        clean[name] = clean_text(text, field=f"{field} '{name}'", max_length=1000)
    return dict(sorted(clean.items()))


def clean_annotations(value) -> dict[str, str]:
    annotations = _mapping(value, "Annotations")
    unknown = sorted(set(annotations) - set(ANNOTATION_KEYS))
    if unknown:
        raise ValidationError(
            f"Annotations: unknown key(s) {', '.join(str(k)[:50] for k in unknown)}; "
            f"use {', '.join(ANNOTATION_KEYS)}."
        )
    clean = {}
    for key in ANNOTATION_KEYS:
        text = clean_text(
            annotations.get(key, ""), field=f"Annotation {key}", max_length=4000, required=False
        )
        if key == "runbook_url" and text and not re.fullmatch(r"https?://\S+", text):
            raise ValidationError("Annotation runbook_url must be an http(s) URL.")
        if text:
            clean[key] = text
    return clean


class RuleGroupForm(forms.Form):
    name = forms.CharField(label="Group name", max_length=200, strip=False)
    interval = forms.CharField(label="Evaluation interval", max_length=20, initial="1m")

    def clean_name(self) -> str:
        name = clean_text(self.cleaned_data["name"], field="Group name", max_length=200)
        if "/" in name:
            raise ValidationError("Group name must not contain '/'.")
        return name

    def clean_interval(self) -> str:
        return clean_duration(
            self.cleaned_data["interval"], field="Evaluation interval", required=True
        )


class AlertRuleForm(forms.Form):
    """An alerting or recording rule. `schema` is the tenant's, for the scoping check."""

    kind = forms.ChoiceField(choices=AlertRule.Kind.choices, initial=AlertRule.Kind.ALERT)
    name = forms.CharField(max_length=200, strip=False)
    expr = forms.CharField(label="Expression", max_length=10_000, strip=False)
    for_duration = forms.CharField(label="For", required=False, max_length=20)
    keep_firing_for = forms.CharField(label="Keep firing for", required=False, max_length=20)
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.P2)
    category = forms.ChoiceField(choices=Category.choices, initial=Category.AVAILABILITY)
    labels = forms.JSONField(required=False)
    annotations = forms.JSONField(required=False)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, schema: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema = schema

    def clean_name(self) -> str:
        return clean_text(self.cleaned_data["name"], field="Name", max_length=200)

    def clean_expr(self) -> str:
        expr = clean_text(self.cleaned_data["expr"], field="Expression", max_length=10_000)
        try:
            scope_to_tenant(expr, self.schema)
        except PromQLError as exc:
            where = f" (at character {exc.position})" if exc.position is not None else ""
            raise ValidationError(f"Expression: {exc.reason}{where}.") from None
        return expr

    def clean_for_duration(self) -> str:
        return clean_duration(self.cleaned_data["for_duration"], field="For", required=False)

    def clean_keep_firing_for(self) -> str:
        return clean_duration(
            self.cleaned_data["keep_firing_for"], field="Keep firing for", required=False
        )

    def clean_labels(self) -> dict:
        return clean_labels(self.cleaned_data.get("labels"))

    def clean_annotations(self) -> dict:
        return clean_annotations(self.cleaned_data.get("annotations"))

    def clean(self):
        data = super().clean()
        kind, name = data.get("kind"), data.get("name")
        if name and kind == AlertRule.Kind.ALERT and not ALERT_NAME.fullmatch(name):
            self.add_error(
                "name", "An alert name uses letters, digits and _, not starting with a digit."
            )
        if name and kind == AlertRule.Kind.RECORD and not METRIC_NAME.fullmatch(name):
            self.add_error("name", "A recorded series name uses letters, digits, _ and :.")
        if kind == AlertRule.Kind.RECORD:
            for field in ("for_duration", "keep_firing_for"):
                if data.get(field):
                    self.add_error(field, "Recording rules have no 'for' durations.")
        return data


class ReceiverForm(forms.Form):
    """A receiver: settings by kind, and its secret (required when created, kept when blank on
    an edit, never shown back)."""

    name = forms.CharField(max_length=100, strip=False)
    kind = forms.ChoiceField(choices=Receiver.Kind.choices)
    secret = forms.CharField(required=False, max_length=2000, strip=False)
    channel = forms.CharField(label="Slack channel", required=False, max_length=80)
    to = forms.CharField(label="E-mail address", required=False, max_length=254)
    smarthost = forms.CharField(label="SMTP server (host:port)", required=False, max_length=255)
    from_address = forms.CharField(label="Sender address", required=False, max_length=254)
    auth_username = forms.CharField(label="SMTP user name", required=False, max_length=254)
    require_tls = forms.BooleanField(required=False, initial=True)
    url = forms.CharField(label="Events API URL", required=False, max_length=2000)
    enabled = forms.BooleanField(required=False, initial=True)

    SECRET_LABELS = {
        Receiver.Kind.SLACK: "Slack webhook URL",
        Receiver.Kind.MSTEAMS: "Teams incoming webhook URL",
        Receiver.Kind.EMAIL: "SMTP password",
        Receiver.Kind.SMS: "Phone number",
        Receiver.Kind.PAGERDUTY: "PagerDuty routing key",
        Receiver.Kind.WEBHOOK: "Webhook URL",
    }

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing

    def clean_name(self) -> str:
        return clean_text(self.cleaned_data["name"], field="Name", max_length=100)

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if not kind:
            return data
        label = self.SECRET_LABELS[kind]
        try:
            secret = clean_text(
                data.get("secret", ""), field=label, max_length=2000, required=False
            )
        except ValidationError as exc:
            self.add_error("secret", exc)
            return data
        if not secret and not self.editing and kind != Receiver.Kind.EMAIL:
            self.add_error("secret", f"{label} is required.")
        if secret and kind in (Receiver.Kind.SLACK, Receiver.Kind.MSTEAMS, Receiver.Kind.WEBHOOK):
            try:
                check_outbound_url(secret)
            except OutboundURLError as exc:
                self.add_error("secret", f"{label}: {exc}.")
        if secret and kind == Receiver.Kind.SMS and not PHONE.fullmatch(secret):
            self.add_error(
                "secret", "Phone number must be in international form, e.g. +4155550100."
            )
        if kind == Receiver.Kind.PAGERDUTY and data.get("url"):
            try:
                check_outbound_url(data["url"])
            except OutboundURLError as exc:
                self.add_error("url", f"Events API URL: {exc}.")
        if kind == Receiver.Kind.EMAIL:
            to = (data.get("to") or "").strip()
            try:
                forms.EmailField().clean(to)
            except ValidationError:
                self.add_error("to", "E-mail address: a valid address is required.")
            host = (data.get("smarthost") or "").strip()
            if host and not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", host):
                self.add_error("smarthost", "SMTP server must be host:port.")
        if kind == Receiver.Kind.SLACK and data.get("channel"):
            try:
                data["channel"] = clean_text(data["channel"], field="Slack channel", max_length=80)
            except ValidationError as exc:
                self.add_error("channel", exc)
        data["secret"] = secret
        return data

    def receiver_settings(self) -> dict:
        """The non-secret settings kept for this kind."""
        data, kind = self.cleaned_data, self.cleaned_data["kind"]
        if kind == Receiver.Kind.SLACK:
            return {"channel": data.get("channel", "")} if data.get("channel") else {}
        if kind == Receiver.Kind.PAGERDUTY:
            return {"url": data["url"]} if data.get("url") else {}
        if kind == Receiver.Kind.EMAIL:
            settings = {"to": data["to"].strip(), "require_tls": bool(data.get("require_tls"))}
            for key, field in (
                ("smarthost", "smarthost"),
                ("from", "from_address"),
                ("auth_username", "auth_username"),
            ):
                if data.get(field):
                    settings[key] = data[field].strip()
            return settings
        return {}


class NotificationPolicyForm(forms.Form):
    receivers = forms.JSONField(required=False)  # list of receiver public ids
    group_by = forms.JSONField(required=False)
    group_wait = forms.CharField(max_length=20, initial="30s")
    group_interval = forms.CharField(max_length=20, initial="5m")
    repeat_interval = forms.CharField(max_length=20, initial="4h")
    mute_timings = forms.JSONField(required=False)  # list of mute timing names

    def clean_group_by(self) -> list[str]:
        value = self.cleaned_data.get("group_by") or ["alertname"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Group by must be a list of label names.")
        for name in value:
            if name != "..." and not LABEL_NAME.fullmatch(name):
                raise ValidationError(f"Group by: '{name[:50]}' is not a label name.")
        return list(dict.fromkeys(value))

    def _durations(self, field: str, label: str) -> str:
        return clean_duration(self.cleaned_data[field], field=label, required=True)

    def clean_group_wait(self) -> str:
        return self._durations("group_wait", "Group wait")

    def clean_group_interval(self) -> str:
        return self._durations("group_interval", "Group interval")

    def clean_repeat_interval(self) -> str:
        return self._durations("repeat_interval", "Repeat interval")

    def _string_list(self, field: str, label: str) -> list[str]:
        value = self.cleaned_data.get(field) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(f"{label} must be a list.")
        return list(dict.fromkeys(value))

    def clean_receivers(self) -> list[str]:
        return self._string_list("receivers", "Receivers")

    def clean_mute_timings(self) -> list[str]:
        return self._string_list("mute_timings", "Mute timings")


class SilenceForm(forms.Form):
    matchers = forms.JSONField()
    starts_at = forms.DateTimeField(required=False)
    ends_at = forms.DateTimeField()
    comment = forms.CharField(max_length=1000, strip=False)

    def clean_comment(self) -> str:
        return clean_text(self.cleaned_data["comment"], field="Comment", max_length=1000)

    def clean_matchers(self) -> list[dict]:
        value = self.cleaned_data["matchers"]
        if not isinstance(value, list) or not value or len(value) > 20:
            raise ValidationError("Matchers: give 1 to 20 matchers.")
        clean = []
        for matcher in value:
            if not isinstance(matcher, dict):
                raise ValidationError("Matchers: each matcher is {name, value, isRegex}.")
            name = matcher.get("name")
            if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
                raise ValidationError(f"Matchers: '{str(name)[:50]}' is not a label name.")
            if name == "tenant":
                raise ValidationError("Matchers: 'tenant' is set by the portal.")
            text = clean_text(matcher.get("value", ""), field=f"Matcher '{name}'", max_length=1000)
            is_regex = bool(matcher.get("isRegex", False))
            if is_regex:
                try:
                    re.compile(text)
                except re.error as exc:
                    raise ValidationError(f"Matcher '{name}': invalid regex ({exc}).") from None
            clean.append(
                {
                    "name": name,
                    "value": text,
                    "isRegex": is_regex,
                    "isEqual": bool(matcher.get("isEqual", True)),
                }
            )
        return clean

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must be after the start.")
        return data
