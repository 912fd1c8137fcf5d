"""Forms of the compliance pages: attest, add evidence, name an owner."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.utils import timezone

from compliance.models import Evidence
from compliance.services import ATTESTABLE, NOTE_MAX, REASON_MAX, TITLE_MAX

LONGEST_EXPIRY = timedelta(days=3 * 366)


def end_of_day(day: date) -> datetime:
    """The moment a date-only expiry ends: the start of the next day, portal time."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _future_day(day: date | None, *, required: bool) -> date | None:
    if day is None:
        if required:
            raise forms.ValidationError("Choose the date it expires.")
        return None
    today = timezone.localdate()
    if day < today:
        raise forms.ValidationError("The date is in the past.")
    if day > today + LONGEST_EXPIRY:
        raise forms.ValidationError("Choose a date within three years.")
    return day


class AttestForm(forms.Form):
    status = forms.ChoiceField(choices=[(s.value, s.label) for s in ATTESTABLE])
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=REASON_MAX)
    expires_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    evidence_title = forms.CharField(max_length=TITLE_MAX, required=False)
    evidence_file = forms.FileField(required=False)
    evidence_url = forms.CharField(max_length=2000, required=False)

    def clean_expires_on(self):
        return _future_day(self.cleaned_data.get("expires_on"), required=True)

    def clean(self):
        data = super().clean()
        has_evidence = data.get("evidence_file") or data.get("evidence_url")
        if has_evidence and not data.get("evidence_title"):
            self.add_error("evidence_title", "Give the evidence a title.")
        return data


class EvidenceForm(forms.Form):
    kind = forms.ChoiceField(choices=Evidence.Kind.choices)
    title = forms.CharField(max_length=TITLE_MAX)
    file = forms.FileField(required=False)
    url = forms.CharField(max_length=2000, required=False)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=NOTE_MAX, required=False
    )
    record_type = forms.CharField(max_length=100, required=False)
    record_id = forms.CharField(max_length=64, required=False)
    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_expires_on(self):
        return _future_day(self.cleaned_data.get("expires_on"), required=False)


class OwnerForm(forms.Form):
    owner = forms.ChoiceField(required=False)
    review_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, members: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "— nobody —"), *members]
