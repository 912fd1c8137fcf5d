"""Silences: create (matchers, start, end, comment) and expire; applied in Alertmanager, shown
with who created them and whether Alertmanager has them yet."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts import services
from alerts.forms import SilenceForm
from alerts.models import Silence
from alerts.views.common import Target, actor, add_service_errors, require_edit, sync_view
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

MAX_MATCHER_LINES = 20
_MATCHER = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def parse_matcher_lines(text: str) -> list[dict]:
    """`name=value`, `name!=value`, `name=~regex`, `name!~regex`, one per line; values may be
    quoted. ValidationError naming the line that is none of these."""
    matchers = []
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) > MAX_MATCHER_LINES:
        raise ValidationError(f"Matchers: at most {MAX_MATCHER_LINES}.")
    for number, line in enumerate(lines, start=1):
        match = _MATCHER.match(line)
        if match is None:
            raise ValidationError(
                f"Matchers: line {number} is not name=value (or !=, =~, !~ for regular "
                "expressions)."
            )
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        matchers.append(
            {"name": name, "value": value, "isRegex": "~" in op, "isEqual": not op.startswith("!")}
        )
    return matchers


def matchers_text(matchers: list[dict]) -> str:
    ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return ", ".join(
        f'{m["name"]}{ops[(bool(m.get("isRegex")), bool(m.get("isEqual", True)))]}"{m["value"]}"'
        for m in matchers or []
    )


class SilencePageForm(forms.Form):
    """What a person types; validated by `alerts.forms.SilenceForm`."""

    matchers_text = forms.CharField(
        label="Matchers",
        max_length=20_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": 'alertname="HighErrorRate"'}),
        help_text="One per line: name=value, name!=value, name=~regex, name!~regex.",
    )
    starts_at = forms.CharField(
        label="Start (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Now if empty.",
    )
    ends_at = forms.CharField(
        label="End (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    comment = forms.CharField(
        label="Comment", max_length=1000, strip=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def clean(self):
        data = super().clean()
        try:
            matchers = parse_matcher_lines(data.get("matchers_text", ""))
        except ValidationError as exc:
            self.add_error("matchers_text", exc)
            return data
        shared = SilenceForm(
            data={
                "matchers": json.dumps(matchers),
                "starts_at": data.get("starts_at", ""),
                "ends_at": data.get("ends_at", ""),
                "comment": data.get("comment", ""),
            }
        )
        if not shared.is_valid():
            for name, errors in shared.errors.items():
                target = "matchers_text" if name == "matchers" else name
                for error in errors:
                    self.add_error(target if target in self.fields else None, error)
            return data
        self.silence_values = dict(shared.cleaned_data)
        return data


def _state(silence: Silence, now) -> str:
    if silence.expired_at or silence.ends_at <= now:
        return "expired"
    if silence.starts_at > now:
        return "scheduled"
    return "active"


def _render(request, form, status=200):
    now = timezone.now()
    rows = [
        {
            "silence": s,
            "matchers": matchers_text(s.matchers),
            "state": _state(s, now),
        }
        for s in Silence.objects.all()[:200]
    ]
    context = {"rows": rows, "form": form, "sync": sync_view(Target.SILENCES)}
    return render(request, "alerts/silences.html", context, status=status)


@require_perm(Perm.VIEW_ALERTS)
def silence_list(request):
    if request.method == "POST":
        require_edit(request)
        form = SilencePageForm(request.POST)
        if form.is_valid():
            try:
                services.create_silence(actor=actor(request), **form.silence_values)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Silence created; Alertmanager applies it shortly.")
                return redirect("alert-silences")
        return _render(request, form, status=400)
    ends = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    return _render(request, SilencePageForm(initial={"ends_at": ends}))


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def silence_expire(request, silence_id):
    require_edit(request)
    silence = get_object_or_404(Silence, public_id=silence_id)
    services.expire_silence(silence_id=silence.public_id, actor=actor(request))
    messages.success(request, "Silence expired; its alerts notify again.")
    return redirect("alert-silences")
