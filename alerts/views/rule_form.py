"""The rule editor's form: what a person types, checked by `alerts.forms.AlertRuleForm`.

People write labels one per line (`team=payments`) and annotations in their own fields; this
form turns them into the values the shared form validates, and puts that form's errors back on
the fields a person sees, so the page and the API refuse the same input for the same reasons.
"""

from __future__ import annotations

import json

from django import forms

from alerts.forms import AlertRuleForm
from alerts.models import AlertRule, Category, RuleGroup, Severity
from alerts.preview import DEFAULT_RANGE, RANGES

MAX_LABEL_LINES = 30


def labels_to_text(labels: dict) -> str:
    return "\n".join(f"{name}={value}" for name, value in sorted((labels or {}).items()))


def parse_label_lines(text: str) -> dict[str, str]:
    """`name=value` per line (blank lines skipped); ValidationError naming the bad line."""
    labels: dict[str, str] = {}
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) > MAX_LABEL_LINES:
        raise forms.ValidationError(f"Labels: at most {MAX_LABEL_LINES} labels.")
    for number, line in enumerate(lines, start=1):
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise forms.ValidationError(f"Labels: line {number} is not name=value.")
        if name.strip() in labels:
            raise forms.ValidationError(f"Labels: '{name.strip()[:50]}' is given twice.")
        labels[name.strip()] = value.strip()
    return labels


class RulePageForm(forms.Form):
    group = forms.ChoiceField(label="Group")
    kind = forms.ChoiceField(label="Kind", choices=AlertRule.Kind.choices)
    name = forms.CharField(
        label="Name", max_length=200, strip=False, help_text="Alert name, or recorded series."
    )
    expr = forms.CharField(
        label="Expression (PromQL)",
        max_length=10_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
    )
    for_duration = forms.CharField(
        label="For", required=False, max_length=20, help_text="e.g. 5m: how long before firing."
    )
    keep_firing_for = forms.CharField(label="Keep firing for", required=False, max_length=20)
    severity = forms.ChoiceField(label="Severity", choices=Severity.choices, initial=Severity.P2)
    category = forms.ChoiceField(label="Category", choices=Category.choices)
    labels_text = forms.CharField(
        label="Extra labels",
        required=False,
        max_length=31_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "team=payments"}),
        help_text="One name=value per line.",
    )
    summary = forms.CharField(label="Summary", required=False, max_length=4000, strip=False)
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=4000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    runbook_url = forms.CharField(label="Runbook URL", required=False, max_length=4000)
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    preview_range = forms.ChoiceField(
        label="Preview over the last",
        choices=[(key, key) for key in RANGES],
        initial=DEFAULT_RANGE,
        required=False,
    )

    def __init__(self, *args, schema: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.rule_values: dict = {}
        self.fields["group"].choices = [
            (str(g.public_id), g.name) for g in RuleGroup.objects.order_by("name")
        ]

    @classmethod
    def initial_for(cls, rule: AlertRule) -> dict:
        annotations = rule.annotations or {}
        return {
            "group": str(rule.group.public_id),
            "kind": rule.kind,
            "name": rule.name,
            "expr": rule.expr,
            "for_duration": rule.for_duration,
            "keep_firing_for": rule.keep_firing_for,
            "severity": rule.severity,
            "category": rule.category,
            "labels_text": labels_to_text(rule.labels),
            "summary": annotations.get("summary", ""),
            "description": annotations.get("description", ""),
            "runbook_url": annotations.get("runbook_url", ""),
            "enabled": rule.enabled,
        }

    def clean(self):
        data = super().clean()
        try:
            labels = parse_label_lines(data.get("labels_text", ""))
        except forms.ValidationError as exc:
            self.add_error("labels_text", exc)
            labels = {}
        annotations = {
            key: data.get(key, "")
            for key in ("summary", "description", "runbook_url")
            if data.get(key, "")
        }
        shared = AlertRuleForm(
            data={
                "kind": data.get("kind", ""),
                "name": data.get("name", ""),
                "expr": data.get("expr", ""),
                "for_duration": data.get("for_duration", ""),
                "keep_firing_for": data.get("keep_firing_for", ""),
                "severity": data.get("severity", ""),
                "category": data.get("category", ""),
                "labels": json.dumps(labels),
                "annotations": json.dumps(annotations),
                "enabled": data.get("enabled", False),
            },
            schema=self.schema,
        )
        if not shared.is_valid():
            for name, errors in shared.errors.items():
                for error in errors:
                    target = self._field_for(name, error)
                    # A field this form refused already (e.g. a NUL) was given empty: one
                    # reason is enough.
                    if target is None or target not in self.errors:
                        self.add_error(target, error)
            return data
        self.rule_values = dict(shared.cleaned_data)
        return data

    def _field_for(self, name: str, message: str) -> str | None:
        """Where a shared form's error shows on this page."""
        if name == "labels":
            return "labels_text"
        if name == "annotations":
            for key in ("runbook_url", "description", "summary"):
                if key in message.lower():
                    return key
            return "summary"
        return name if name in self.fields else None
