"""The incident list's filters: the query string, validated field by field, as a queryset.

The page, its rows fragment (refetched live) and the pushed address all read the same form, so a
filter means the same thing wherever it is applied. Every refused value is an error on its own
field; nothing here ever raises for what a visitor typed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import QuerySet

from alerts.models import Category, Incident, Severity
from tenants import audit
from tenants.audit_filters import no_control_characters
from tenants.models import Membership
from tenants.roles import Access, Perm, Role, access_for_role

SERVICE_MAX = 200  # as long as the incident's own field
PAGE_MAX = 1_000_000

OPEN = "open"
ALL = "all"
STATUS_CHOICES = [
    (OPEN, "Open"),
    (Incident.Status.TRIGGERED, "Triggered"),
    (Incident.Status.ACKNOWLEDGED, "Acknowledged"),
    (Incident.Status.RESOLVED, "Resolved"),
    (ALL, "All"),
]
_STATUSES = {
    OPEN: [Incident.Status.TRIGGERED, Incident.Status.ACKNOWLEDGED],
    Incident.Status.TRIGGERED: [Incident.Status.TRIGGERED],
    Incident.Status.ACKNOWLEDGED: [Incident.Status.ACKNOWLEDGED],
    Incident.Status.RESOLVED: [Incident.Status.RESOLVED],
}

TIME_CHOICES = [
    (ALL, "Any time"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
]
_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

ME = "me"
UNASSIGNED = "unassigned"
FILTERS = ("severity", "status", "category", "service", "assignee", "time")
# What an absent (or empty) value means; these are left out of the address.
DEFAULTS = {"status": OPEN, "time": ALL}


def _choice(label: str, choices: list, what: str) -> forms.ChoiceField:
    # The refused value is not echoed back: it may hold anything, NUL bytes included.
    return forms.ChoiceField(
        label=label,
        required=False,
        choices=choices,
        error_messages={"invalid_choice": f"Choose one of the listed {what}."},
    )


def _members_who_see_incidents(tenant) -> list[tuple[str, str]]:
    """(membership id, e-mail) of the tenant's active members whose role shows incidents."""
    if tenant is None:
        return []
    roles = [r for r in Role.values if access_for_role(r).can(Perm.VIEW_INCIDENTS)]
    members = (
        Membership.objects.filter(tenant=tenant, user__is_active=True, role__in=roles)
        .select_related("user")
        .order_by("user__email")
    )
    return [(str(m.public_id), m.user.email) for m in members]


class IncidentFilterForm(forms.Form):
    """What the incident list may be narrowed by, for one viewer.

    `access` decides whether the security category can be chosen; `tenant` lists the members an
    incident can be assigned to; `user_id` is who "me" is.
    """

    severity = _choice("Severity", [("", "Any"), *Severity.choices], "severities")
    status = _choice("Status", STATUS_CHOICES, "statuses")
    category = _choice("Category", [], "categories")
    service = forms.CharField(
        label="Service",
        required=False,
        max_length=SERVICE_MAX,
        validators=[no_control_characters],
        widget=forms.TextInput(attrs={"placeholder": "exact name", "autocomplete": "off"}),
    )
    assignee = _choice("Assignee", [], "assignees")
    time = _choice("Started", TIME_CHOICES, "time ranges")
    page = forms.IntegerField(
        label="Page",
        required=False,
        min_value=1,
        max_value=PAGE_MAX,
        widget=forms.HiddenInput,
        error_messages={"invalid": "Give the page as a whole number."},
    )

    def __init__(self, data=None, *, access: Access, tenant=None, user_id=None) -> None:
        super().__init__(data)
        self.user_id = user_id
        categories = [
            (value, label)
            for value, label in Category.choices
            if value != Category.SECURITY or access.can(Perm.VIEW_SECURITY_INCIDENTS)
        ]
        self.fields["category"].choices = [("", "Any"), *categories]
        self.fields["assignee"].choices = [
            ("", "Anyone"),
            (ME, "Me"),
            (UNASSIGNED, "Unassigned"),
            *_members_who_see_incidents(tenant),
        ]
        self.tenant = tenant

    def full_clean(self) -> None:
        super().full_clean()
        if self.errors and self.is_bound:
            # A refused text is shown back in its field without control characters, cut short.
            shown = self.data.copy()
            for name in ("service",):
                if name in self.errors and name in shown:
                    shown[name] = audit.clean_label(shown.get(name, ""), SERVICE_MAX)
            self.data = shown

    def clean_assignee(self) -> Any:
        value = self.cleaned_data.get("assignee") or ""
        if value in ("", ME, UNASSIGNED):
            return value
        # A member's id, among the choices: find whose account it is.
        user_id = (
            Membership.objects.filter(public_id=value, tenant=self.tenant)
            .values_list("user_id", flat=True)
            .first()
        )
        if user_id is None:  # removed since the page was drawn
            raise forms.ValidationError("That person is no longer a member of this tenant.")
        return user_id

    def chosen(self) -> dict[str, Any]:
        """The filters as applied, defaults filled in (call after `is_valid()`)."""
        data = self.cleaned_data
        return {name: data.get(name) or DEFAULTS.get(name, "") for name in FILTERS}

    def is_filtered(self) -> bool:
        """Whether anything narrows the list beyond the defaults (call after `is_valid()`)."""
        chosen = self.chosen()
        return any(chosen[name] != DEFAULTS.get(name, "") for name in FILTERS)

    def query(self) -> str:
        """The query string of these filters, defaults left out ("" when there is none)."""
        params = []
        for name in FILTERS:
            raw = str(self.data.get(name, "")).strip() if self.is_bound else ""
            if raw and raw != DEFAULTS.get(name):
                params.append((name, raw))
        return urlencode(params)

    def apply(self, incidents: QuerySet[Incident], *, now: datetime) -> QuerySet[Incident]:
        """`incidents` (already what the viewer may see) narrowed by these filters."""
        chosen = self.chosen()
        if chosen["severity"]:
            incidents = incidents.filter(severity=chosen["severity"])
        if chosen["status"] != ALL:
            incidents = incidents.filter(status__in=_STATUSES[chosen["status"]])
        if chosen["category"]:
            incidents = incidents.filter(category=chosen["category"])
        if chosen["service"]:
            incidents = incidents.filter(service=chosen["service"])
        assignee = chosen["assignee"]
        if assignee == ME:
            # Nobody signed in is nobody's "me" (a filter on None would mean unassigned).
            if self.user_id is None:
                return incidents.none()
            incidents = incidents.filter(assignee_id=self.user_id)
        elif assignee == UNASSIGNED:
            incidents = incidents.filter(assignee_id__isnull=True)
        elif assignee:
            incidents = incidents.filter(assignee_id=assignee)
        if chosen["time"] in _WINDOWS:
            incidents = incidents.filter(started_at__gte=now - _WINDOWS[chosen["time"]])
        return incidents
