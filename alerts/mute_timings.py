"""Maintenance windows: named weekly windows, as Alertmanager `time_intervals` entries.

The form validates a window a person describes (days of the week, a start and an end time, a
time zone) and turns it into the entry `alerts.services.save_mute_timing` stores; `is_muted`
answers whether a moment falls in stored entries, for the preview of who would be told.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django import forms
from django.core.exceptions import ValidationError

from alerts.forms import clean_text

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]*")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class MuteTimingForm(forms.Form):
    """One named weekly window: on these days, from start to end (end may be 24:00)."""

    name = forms.CharField(label="Name", max_length=100, strip=False)
    weekdays = forms.MultipleChoiceField(
        label="Days",
        choices=[(day, day.capitalize()) for day in WEEKDAYS],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one day."},
    )
    start_time = forms.CharField(
        label="From", max_length=5, widget=forms.TimeInput(attrs={"type": "time"})
    )
    end_time = forms.CharField(
        label="Until", max_length=5, widget=forms.TextInput(attrs={"placeholder": "24:00"})
    )
    location = forms.CharField(
        label="Time zone",
        max_length=64,
        required=False,
        initial="UTC",
        help_text="An IANA time zone, e.g. Europe/Berlin; UTC if empty.",
    )

    def clean_name(self) -> str:
        name = clean_text(self.cleaned_data["name"], field="Name", max_length=100)
        if not _NAME.fullmatch(name):
            raise ValidationError(
                "Name: use letters, digits, spaces, '.', '_' and '-', starting with a letter "
                "or digit."
            )
        return name

    def _time(self, field: str, label: str) -> str:
        value = (self.cleaned_data.get(field) or "").strip()
        if not _TIME.fullmatch(value):
            raise ValidationError(f"{label}: give a time as HH:MM, e.g. 22:00.")
        return value

    def clean_start_time(self) -> str:
        return self._time("start_time", "From")

    def clean_end_time(self) -> str:
        return self._time("end_time", "Until")

    def clean_location(self) -> str:
        value = (self.cleaned_data.get("location") or "").strip() or "UTC"
        if value != "UTC" and value not in available_timezones():
            raise ValidationError("Time zone: not a known IANA time zone, e.g. Europe/Berlin.")
        return value

    def clean(self):
        data = super().clean()
        start, end = data.get("start_time"), data.get("end_time")
        if start and end and _minutes(end) <= _minutes(start):
            self.add_error(
                "end_time",
                "Until: must be after From (for a window across midnight, make two windows).",
            )
        return data

    def intervals(self) -> list[dict]:
        """The window as Alertmanager `time_intervals` entries."""
        data = self.cleaned_data
        chosen = [day for day in WEEKDAYS if day in data["weekdays"]]
        entry: dict = {
            "weekdays": chosen,
            "times": [{"start_time": data["start_time"], "end_time": data["end_time"]}],
        }
        if data["location"] != "UTC":
            entry["location"] = data["location"]
        return [entry]


def describe(intervals: list[dict]) -> str:
    """A window in words: 'saturday, sunday 00:00–24:00 (UTC)'."""
    parts = []
    for entry in intervals or []:
        days = ", ".join(entry.get("weekdays") or ["every day"])
        times = "; ".join(
            f"{t.get('start_time', '00:00')}–{t.get('end_time', '24:00')}"
            for t in entry.get("times") or [{}]
        )
        parts.append(f"{days} {times} ({entry.get('location', 'UTC')})")
    return " · ".join(parts) or "always"


def _weekday_set(specs: list[str]) -> set[int]:
    days: set[int] = set()
    for spec in specs:
        first, _, last = str(spec).lower().partition(":")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            continue
        start = WEEKDAYS.index(first)
        end = WEEKDAYS.index(last) if last else start
        days.update(range(start, end + 1))
    return days


def _in_entry(entry: dict, moment: datetime) -> bool:
    try:
        zone = ZoneInfo(entry.get("location") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = moment.astimezone(zone)
    weekdays = entry.get("weekdays")
    if weekdays and local.weekday() not in _weekday_set(weekdays):
        return False
    times = entry.get("times")
    if not times:
        return True
    now = local.hour * 60 + local.minute + local.second / 60
    for span in times:
        try:
            start = _minutes(span.get("start_time", "00:00"))
            end = _minutes(span.get("end_time", "24:00"))
        except ValueError:
            continue
        if start <= now < end:
            return True
    return False


def is_muted(intervals: list[dict], moment: datetime) -> bool:
    """Whether `moment` (aware) falls in any of the entries (weekdays, times, location)."""
    return any(_in_entry(entry, moment) for entry in intervals or [])
