"""The incident desk's list: filtered, counted per severity, kept live by its rows fragment; the
30-day MTTA/MTTR and target breaches; the acknowledgement targets an admin sets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from alerts import incident_stats, services
from alerts.incident_filters import IncidentFilterForm
from alerts.models import Incident
from alerts.views.common import actor, add_service_errors
from tenants import audit
from tenants.access import request_access
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

PAGE_SIZE = 50
SUMMARY_SHOWN = 300
# The filter form's id: its requests (and only those) move the address bar along.
FILTER_FORM_ID = "incident-filters"
STATUS_BADGES = {
    Incident.Status.TRIGGERED: "badge-bad",
    Incident.Status.ACKNOWLEDGED: "badge-warn",
    Incident.Status.RESOLVED: "badge-ok",
}


class AckTargetsForm(forms.Form):
    """Minutes within which each severity's incidents should be acknowledged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for severity in services.ACK_TARGET_SEVERITIES:
            self.fields[severity] = forms.IntegerField(
                label=f"{severity} (minutes)",
                min_value=1,
                max_value=10_080,
                error_messages={
                    "required": "Give the minutes.",
                    "invalid": "Minutes as a whole number.",
                    "min_value": "At least 1 minute.",
                    "max_value": "At most 10080 minutes (a week).",
                },
            )

    def full_clean(self) -> None:
        super().full_clean()
        if self.errors and self.is_bound:
            # A refused value is shown back without control characters (NUL included), cut short.
            shown = self.data.copy()
            for name in self.errors:
                if name in shown:
                    shown[name] = audit.clean_label(shown.get(name, ""), 20)
            self.data = shown


@dataclass(frozen=True)
class Row:
    """One incident as the list shows it."""

    incident: Incident
    summary: str
    status_badge: str
    ack: str  # "overdue", "late" or ""
    ack_due_at: datetime
    started_ago: str


def _ago(then: datetime, now: datetime) -> str:
    if now - then < timedelta(minutes=1):
        return "just now"
    return f"{timesince(then, now, depth=1)} ago"


def _rows(incidents, targets: dict[str, int], now: datetime) -> list[Row]:
    rows = []
    for incident in incidents:
        summary = incident.summary if incident.summary != incident.alertname else ""
        if len(summary) > SUMMARY_SHOWN:
            summary = summary[: SUMMARY_SHOWN - 1] + "…"
        rows.append(
            Row(
                incident=incident,
                summary=summary,
                status_badge=STATUS_BADGES.get(incident.status, "badge-muted"),
                ack=incident_stats.ack_state(incident, targets, now),
                ack_due_at=incident_stats.ack_due_at(incident, targets),
                started_ago=_ago(incident.started_at, now),
            )
        )
    return rows


def _listing(request) -> tuple[dict, int]:
    """The list's context for this request's filters, and the status to answer with."""
    access = request_access(request)
    form = IncidentFilterForm(
        request.GET, access=access, tenant=request.tenant, user_id=request.user.pk
    )
    if not form.is_valid():
        return {"form": form, "listed": False}, 400
    now = timezone.now()
    targets = services.ack_targets()
    visible = services.visible_incidents(access)
    incidents = (
        form.apply(visible, now=now)
        .defer("labels", "annotations", "generator_url")
        .order_by("-started_at", "-id")  # newest first, and the same order on every page
    )
    page = Paginator(incidents, PAGE_SIZE).get_page(form.cleaned_data.get("page") or 1)
    counts = incident_stats.severity_counts(incidents, targets, now)
    context = {
        "form": form,
        "listed": True,
        "page": page,
        "rows": _rows(page.object_list, targets, now),
        "counts": counts,
        "overdue_total": sum(c.overdue for c in counts),
        "filtered": form.is_filtered(),
        "chosen": form.chosen(),
        "now": now,
    }
    return context, 200


def _page(request, *, targets_form: AckTargetsForm | None = None, status: int = 200):
    context, listing_status = _listing(request)
    access = request_access(request)
    now = timezone.now()
    targets = services.ack_targets()
    stats = incident_stats.window_stats(services.visible_incidents(access), targets, now)
    if targets_form is None and access.can(Perm.MANAGE_SETTINGS):
        targets_form = AckTargetsForm(initial=targets)
    context.update(
        {
            "stats": [
                {
                    "row": s,
                    "mtta": incident_stats.duration_text(s.mtta),
                    "mttr": incident_stats.duration_text(s.mttr),
                    "target": incident_stats.minutes_text(s.target_minutes),
                }
                for s in stats
            ],
            "breaches_total": sum(s.breaches for s in stats),
            "targets_form": targets_form,
        }
    )
    return render(request, "alerts/incidents.html", context, status=max(status, listing_status))


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_list(request):
    return _page(request)


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_rows(request):
    """The rows and counts alone, for the filter form and the live refetch."""
    context, status = _listing(request)
    response = render(request, "alerts/_incident_rows.html", context, status=status)
    if status == 200 and request.htmx and request.htmx.trigger == FILTER_FORM_ID:
        # Filters chosen in the form belong in the address: reload, share and back keep them.
        query = context["form"].query()
        push_url(response, reverse("incidents") + (f"?{query}" if query else ""))
    return response


@require_perm(Perm.VIEW_INCIDENTS)
@require_perm(Perm.MANAGE_SETTINGS)
@require_POST
def ack_targets_update(request):
    form = AckTargetsForm(request.POST)
    if form.is_valid():
        try:
            services.update_ack_targets(targets=dict(form.cleaned_data), actor=actor(request))
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Acknowledgement targets saved.")
            return redirect("incidents")
    return _page(request, targets_form=form, status=400)
