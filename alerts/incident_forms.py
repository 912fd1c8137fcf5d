"""Validation of the actions people take on an incident, shared by the incident page and the API.

Each form cleans text with `tenants.forms.check_text` (NFC, trimmed, no control characters, within
length) and names the field it refuses; the services in `alerts.services` then check what needs
the incident itself (its status, who may be assigned) and raise errors keyed by the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.db import connection

from alerts.models import Incident
from alerts.services import MAX_NOTE
from tenants.forms import PortalForm, TextField, check_text
from tenants.models import Membership
from tenants.roles import Perm, access_for_role

SILENCE_COMMENT_MAX = 1000
REOPEN_REASON_MAX = 2000
RECIPIENT_MAX = 300
# Alertmanager takes longer silences, but an incident's silence is a pause, not a mute: a month.
MAX_SILENCE_MINUTES = 30 * 24 * 60
SILENCE_DURATIONS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "24h": timedelta(hours=24),
}
CUSTOM = "custom"
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class ActionForm(PortalForm):
    """An action without input (acknowledge, flag as a breach): only the service can refuse it."""


class NoteForm(PortalForm):
    # Named as the service names it, so its refusals land under this field.
    text = TextField(
        label="Note",
        max_length=MAX_NOTE,
        multiline=True,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


@dataclass(frozen=True)
class Member:
    """A member of the tenant who could be assigned an incident."""

    public_id: str
    user_id: int
    email: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.email} ({self.role})"


def assignable_members(incident: Incident) -> list[Member]:
    """The tenant's active members whose role lets them see `incident`, by e-mail."""
    needed = Perm.VIEW_SECURITY_INCIDENTS if incident.is_security else Perm.VIEW_INCIDENTS
    rows = (
        Membership.objects.filter(tenant__schema_name=connection.schema_name, user__is_active=True)
        .select_related("user")
        .order_by("user__email")
    )
    return [
        Member(str(m.public_id), m.user_id, m.user.email, m.get_role_display())
        for m in rows
        if access_for_role(m.role).can(needed)
    ]


class AssignForm(PortalForm):
    assignee = forms.ChoiceField(label="Assignee", required=False)

    def __init__(self, *args, members: list[Member], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        field.choices = [("", "Unassigned")] + [(m.public_id, m.label) for m in members]
        # Django's message repeats the value sent; this one says what may be sent.
        field.error_messages["invalid_choice"] = (
            "Choose a member of this tenant who can see this incident, or Unassigned."
        )

    def clean_assignee(self) -> str | None:
        return self.cleaned_data["assignee"] or None


class SilenceForm(PortalForm):
    duration = forms.ChoiceField(
        label="For",
        choices=[
            ("15m", "15 minutes"),
            ("1h", "1 hour"),
            ("4h", "4 hours"),
            ("24h", "24 hours"),
            (CUSTOM, "Custom (minutes)"),
        ],
        initial="1h",
        error_messages={
            "required": "Choose one of: 15m, 1h, 4h, 24h, custom.",
            "invalid_choice": "Choose one of: 15m, 1h, 4h, 24h, custom.",
        },
    )
    custom_minutes = forms.IntegerField(
        label="Custom minutes",
        required=False,
        min_value=1,
        max_value=MAX_SILENCE_MINUTES,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_SILENCE_MINUTES, "step": 1}),
        error_messages={
            "invalid": f"A whole number of minutes, 1 to {MAX_SILENCE_MINUTES}.",
            "min_value": f"A whole number of minutes, 1 to {MAX_SILENCE_MINUTES}.",
            "max_value": f"At most {MAX_SILENCE_MINUTES} minutes (30 days).",
        },
    )
    comment = TextField(label="Why", max_length=SILENCE_COMMENT_MAX, required=False)

    def clean(self):
        data = super().clean()
        choice = data.get("duration")
        if choice == CUSTOM:
            minutes = data.get("custom_minutes")
            if minutes is None and "custom_minutes" not in self.errors:
                self.add_error("custom_minutes", "Give the number of minutes for a custom silence.")
            elif minutes is not None:
                data["delta"] = timedelta(minutes=minutes)
        elif choice in SILENCE_DURATIONS:
            data["delta"] = SILENCE_DURATIONS[choice]
        return data


class ResolveForm(PortalForm):
    note = TextField(
        label="Resolution note",
        max_length=MAX_NOTE,
        multiline=True,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ReopenForm(PortalForm):
    reason = TextField(
        label="Why reopen",
        max_length=REOPEN_REASON_MAX,
        multiline=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why the incident is reopened."},
    )


class LocalDateTimeField(forms.DateTimeField):
    """A date and time as a `datetime-local` input sends it, in UTC; text with control
    characters is no date (the parser would otherwise ignore some of them)."""

    def to_python(self, value):
        if isinstance(value, str):
            try:
                value = check_text(value, max_length=40)
            except ValidationError:
                raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        return super().to_python(value)


class BreachNoticeForm(PortalForm):
    """Who was told of a personal-data breach, and when (the service checks the time's range)."""

    recipient = TextField(
        label="Who was notified",
        max_length=RECIPIENT_MAX,
        widget=forms.TextInput(
            attrs={"placeholder": "The supervisory authority, the people affected, a processor…"}
        ),
        error_messages={"required": "Say who was notified."},
    )
    notified_at = LocalDateTimeField(
        label="When (UTC)",
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        error_messages={
            "required": "Give the date and time, e.g. 2030-01-31T18:00.",
            "invalid": "Give a date and time, e.g. 2030-01-31T18:00.",
        },
    )


def minutes_words(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days * 24} hours" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "1 hour" if hours == 1 else f"{hours} hours"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
