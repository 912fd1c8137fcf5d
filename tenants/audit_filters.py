"""The audit trail's filters, validated in one place for the page, the CSV export and the API."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

TEXT_MAX = 100
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9999, 12, 30)  # the day after must still be a date
PAGE_MAX = 1_000_000
_ACTION_RE = re.compile(r"^[a-z0-9_.]*$")


def no_control_characters(value: str) -> None:
    """Refuse line breaks, tabs and other control or format characters (NUL has its own check)."""
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} and ch != "\x00" for ch in value):
        raise ValidationError(
            "Control characters (such as tabs or line breaks) are not allowed.",
            code="control_characters",
        )


def _text_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=TEXT_MAX,
        help_text=help_text,
        validators=[no_control_characters],
    )


def _day_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        validators=[MinValueValidator(FIRST_DAY), MaxValueValidator(LAST_DAY)],
        widget=forms.DateInput(
            attrs={"type": "date", "min": FIRST_DAY.isoformat(), "max": LAST_DAY.isoformat()}
        ),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


class AuditFilterForm(forms.Form):
    """What the trail may be narrowed by; every bad value is an error on its own field."""

    action = _text_field("Action", "An action or its start, e.g. token. for every token event.")
    actor = _text_field("Who", "Part of the name of the person, token or system.")
    text = _text_field("Object", "Part of the object's description.")
    date_from = _day_field("From (UTC)")
    date_to = _day_field("To (UTC)")
    page = forms.IntegerField(
        label="Page", required=False, min_value=1, max_value=PAGE_MAX, widget=forms.HiddenInput
    )

    FILTERS = ("action", "actor", "text", "date_from", "date_to")

    def clean_action(self) -> str:
        action = self.cleaned_data["action"].lower()
        if not _ACTION_RE.match(action):
            raise ValidationError(
                "Use lower-case letters, digits, '.' and '_' only, e.g. member.added or token.",
                code="invalid_action",
            )
        return action

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("date_from"), cleaned.get("date_to")
        if first and last and first > last:
            self.add_error("date_to", "Must be on or after the From date.")
        return cleaned

    def event_filters(self) -> dict[str, Any]:
        """Keyword arguments for `tenants.audit.events_for` (call after `is_valid()`)."""
        data = self.cleaned_data
        return {
            "action": data.get("action") or "",
            "actor": data.get("actor") or "",
            "text": data.get("text") or "",
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }

    def is_filtered(self) -> bool:
        """Whether any filter narrows the trail (call after `is_valid()`)."""
        return any(self.cleaned_data.get(name) for name in self.FILTERS)

    def validated_filters(self) -> dict[str, Any]:
        """The filters for `events_for`; raises ValidationError keyed by field when any is bad."""
        if not self.is_valid():
            raise ValidationError(self.errors.as_data())
        return self.event_filters()
