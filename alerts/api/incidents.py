"""Incidents in the API: the desk's list and filters, one incident with its timeline, and the
actions people take on it (acknowledge, assign, note, silence, resolve, reopen).

Rows always come through `alerts.services.visible_incidents`: security incidents only for those
who may see them (never a token), anything else is the same 404 as an unknown id. Every action
is the matching function of `alerts.services` (validated, timelined, audited). A `write` token
may act on an incident it cannot list, and gets the incident back as its action left it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from alerts import incident_forms, services, timeline
from alerts.models import Category, Incident, IncidentEvent, Severity
from tenants import audit
from tenants.access import request_access
from tenants.api.schema import text_pattern
from tenants.api.serializers import FormSerializer
from tenants.api.viewsets import TenantViewSet
from tenants.forms import PortalForm, TextField
from tenants.roles import Perm

MAX_SILENCE_MINUTES = incident_forms.MAX_SILENCE_MINUTES
SERVICE_MAX = Incident._meta.get_field("service").max_length
ASSIGNEE_MAX = Incident._meta.get_field("assignee_email").max_length
OPEN = "open"
STATUS_FILTERS = (OPEN, *Incident.Status.values)
NO_ASSIGNEE = "none"
# RFC 3339, as the schema's `date-time` says: a date, a time and an offset (or Z).
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _choice(values, label: str) -> forms.ChoiceField:
    message = f"Choose one of: {', '.join(values)}."
    return forms.ChoiceField(
        choices=[(v, v) for v in values],
        label=label,
        required=False,
        error_messages={"invalid_choice": message},
    )


# ---- list filters ------------------------------------------------------------------------------


class IsoDateTimeField(forms.Field):
    """An RFC 3339 date and time with its offset, e.g. 2026-01-31T18:00:00Z; empty: none."""

    def to_python(self, value) -> datetime | None:
        # Not trimmed: the schema's `date-time` has no spaces around it either.
        if not value:
            return None
        message = "Give a date and time with its offset, e.g. 2026-01-31T18:00:00Z."
        if not _DATE_TIME.fullmatch(value):
            raise DjangoValidationError(message)
        try:
            # In UTC at once: an offset near year 1 or 9999 cannot be compared otherwise.
            return datetime.fromisoformat(value.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            raise DjangoValidationError(message) from None


class IncidentQueryForm(PortalForm):
    """The API's filters; each optional, an empty one is no filter.

    Unlike the desk's (`alerts.incident_filters`: "me", "last 24 hours", a member picked from a
    list), these are absolute, so a script's query means the same whoever runs it and when.
    """

    severity = _choice(Severity.values, "Severity")
    status = _choice(STATUS_FILTERS, "Status")
    category = _choice(Category.values, "Category")
    service = TextField(label="Service", max_length=SERVICE_MAX, required=False)
    assignee = TextField(label="Assignee", max_length=ASSIGNEE_MAX, required=False)
    started_after = IsoDateTimeField(label="Started after", required=False)
    started_before = IsoDateTimeField(label="Started before", required=False)

    def clean(self):
        data = super().clean()
        after, before = data.get("started_after"), data.get("started_before")
        if after and before and before < after:
            self.add_error("started_before", "Give a time after started_after.")
        return data

    def apply(self, incidents: QuerySet) -> QuerySet:
        """`incidents` narrowed by the cleaned filters."""
        data = self.cleaned_data
        if data.get("severity"):
            incidents = incidents.filter(severity=data["severity"])
        if data.get("status") == OPEN:
            incidents = incidents.exclude(status=Incident.Status.RESOLVED)
        elif data.get("status"):
            incidents = incidents.filter(status=data["status"])
        if data.get("category"):
            incidents = incidents.filter(category=data["category"])
        if data.get("service"):
            incidents = incidents.filter(service=data["service"])
        assignee = data.get("assignee")
        if assignee and assignee.lower() == NO_ASSIGNEE:
            incidents = incidents.filter(assignee_id__isnull=True)
        elif assignee:
            incidents = incidents.filter(assignee_email__iexact=assignee)
        if data.get("started_after"):
            incidents = incidents.filter(started_at__gte=data["started_after"])
        if data.get("started_before"):
            incidents = incidents.filter(started_at__lt=data["started_before"])
        return incidents


_TEXT_FILTERS = {"service": SERVICE_MAX, "assignee": ASSIGNEE_MAX}


def filtered_incidents(incidents: QuerySet, params: Mapping[str, str]) -> QuerySet:
    """`incidents` narrowed by the query string; a bad filter is a 400 naming it."""
    sent = {name: params[name] for name in IncidentQueryForm.base_fields if name in params}
    # The form trims before it counts; the schema's limit is on the text as sent.
    too_long = {
        name: [f"Use at most {limit} characters (this has {len(sent[name])})."]
        for name, limit in _TEXT_FILTERS.items()
        if len(sent.get(name, "")) > limit
    }
    if too_long:
        raise ValidationError(too_long)
    form = IncidentQueryForm(sent)
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    return form.apply(incidents)


class _FilterText(serializers.Serializer):
    """Names the filter form so the schema states its text rules (see `text_pattern`)."""

    form_class = IncidentQueryForm
    service = serializers.CharField()
    assignee = serializers.CharField()


def _enum(name: str, values, description: str) -> OpenApiParameter:
    schema = {"type": "string", "enum": [*values, ""]}
    return OpenApiParameter(name, schema, description=f"{description} Empty: any.")


def _text(name: str, limit: int, description: str) -> OpenApiParameter:
    pattern = text_pattern(_FilterText().fields[name])
    schema = {"type": "string", "maxLength": limit, "pattern": pattern}
    return OpenApiParameter(name, schema, description=description)


def _moment(name: str, description: str) -> OpenApiParameter:
    schema = {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]
    }
    return OpenApiParameter(
        name, schema, description=f"{description}, with its offset (RFC 3339); empty: none."
    )


INCIDENT_FILTER_PARAMETERS = [
    _enum("severity", Severity.values, "P0 (critical) to P3 (info)."),
    _enum(
        "status",
        STATUS_FILTERS,
        "`open` is triggered or acknowledged; or one status.",
    ),
    _enum("category", Category.values, "The alert's category."),
    _text("service", SERVICE_MAX, "The service (the alert's `service` label, else `job`)."),
    _text(
        "assignee",
        ASSIGNEE_MAX,
        "The assignee's e-mail address (any case), or `none` for unassigned incidents.",
    ),
    _moment("started_after", "Started at or after this time"),
    _moment("started_before", "Started before this time"),
]


# ---- action input ------------------------------------------------------------------------------


def _limit(form_class: type[forms.Form], name: str) -> int:
    """The length the shared form allows, so the schema states the page's own limit."""
    return form_class.base_fields[name].max_length


class SilenceIncidentForm(PortalForm):
    """The page offers set durations; a script gives minutes, within the page's bounds."""

    duration_minutes = forms.IntegerField(
        label="Duration (minutes)",
        min_value=1,
        max_value=MAX_SILENCE_MINUTES,
        error_messages={
            "required": f"Give the minutes to silence for, 1 to {MAX_SILENCE_MINUTES}.",
            "invalid": f"A whole number of minutes, 1 to {MAX_SILENCE_MINUTES}.",
            "min_value": f"A whole number of minutes, 1 to {MAX_SILENCE_MINUTES}.",
            "max_value": f"At most {MAX_SILENCE_MINUTES} minutes (30 days).",
        },
    )
    # The page's own field: the same label, limit and rules.
    comment = incident_forms.SilenceForm.base_fields["comment"]


class NoteInput(FormSerializer):
    """A note for the timeline."""

    form_class = incident_forms.NoteForm
    text = serializers.CharField(
        max_length=_limit(incident_forms.NoteForm, "text"), trim_whitespace=False
    )


class ResolveInput(FormSerializer):
    """Resolve, optionally saying why."""

    form_class = incident_forms.ResolveForm
    note = serializers.CharField(
        max_length=_limit(incident_forms.ResolveForm, "note"),
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Why, or what fixed it; shown on the timeline.",
    )


class ReopenInput(FormSerializer):
    """Reopen, saying why."""

    form_class = incident_forms.ReopenForm
    reason = serializers.CharField(
        max_length=_limit(incident_forms.ReopenForm, "reason"),
        trim_whitespace=False,
        help_text="Shown on the timeline.",
    )


class SilenceIncidentInput(FormSerializer):
    """How long to silence the incident's alert for, and why."""

    form_class = SilenceIncidentForm
    duration_minutes = serializers.IntegerField(min_value=1, max_value=MAX_SILENCE_MINUTES)
    comment = serializers.CharField(
        max_length=_limit(SilenceIncidentForm, "comment"),
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Shown in Alertmanager and on the timeline; a default names the incident.",
    )

    def to_internal_value(self, data):
        # JSON sends the minutes as a number; the form reads text (as a page's input sends it).
        if isinstance(data, Mapping) and "duration_minutes" in data:
            minutes = data["duration_minutes"]
            if not isinstance(minutes, int) or isinstance(minutes, bool):
                raise serializers.ValidationError(
                    {"duration_minutes": ["Send a whole number of minutes."]}
                )
            data = {**data, "duration_minutes": str(minutes)}
        return super().to_internal_value(data)


class AssignInput(serializers.Serializer):
    """Who works the incident: a member, or nobody."""

    assignee = serializers.UUIDField(
        allow_null=True,
        help_text="A member's id (see /api/v1/members/), or null to unassign.",
    )

    def to_internal_value(self, data):
        # Explicit: a body without `assignee` must not unassign, and the id must be written as a
        # UUID (DRF would also take a number or a `urn:uuid:` form).
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Send a JSON object."]}
            )
        if "assignee" not in data:
            raise serializers.ValidationError(
                {"assignee": ["Send a member's id, or null to unassign."]}
            )
        value = data["assignee"]
        if value is None:
            return {"assignee": None}
        if not isinstance(value, str) or not _UUID.fullmatch(value):
            raise serializers.ValidationError(
                {"assignee": ["Send a member's id (a UUID), or null to unassign."]}
            )
        return {"assignee": value.lower()}


# ---- representations ---------------------------------------------------------------------------


class IncidentEventSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        read_only=True, help_text=f"One of: {', '.join(IncidentEvent.Kind.values)}."
    )
    detail = serializers.DictField(
        read_only=True, help_text="What the entry names: receivers, assignee, silence..."
    )

    class Meta:
        model = IncidentEvent
        fields = ["kind", "at", "actor", "text", "detail"]
        read_only_fields = fields


class IncidentBreachSerializer(serializers.Serializer):
    flagged_at = serializers.DateTimeField(
        allow_null=True, help_text="Flagged as a personal-data breach (GDPR art. 33)."
    )
    flagged_by = serializers.CharField()
    deadline = serializers.DateTimeField(
        allow_null=True, help_text="72 hours after it was flagged: notify the authority by then."
    )
    authority_notified_at = serializers.DateTimeField(allow_null=True)


class IncidentSerializer(serializers.ModelSerializer):
    """An incident as the desk lists it."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    # Plain strings in answers (the filters document the choices): one enum per choice set.
    category = serializers.CharField(read_only=True, help_text=", ".join(Category.values) + ".")
    status = serializers.CharField(
        read_only=True, help_text="Where people stand: triggered, acknowledged or resolved."
    )
    alert_state = serializers.CharField(
        read_only=True, help_text="What Alertmanager last said: firing or resolved."
    )
    assignee = serializers.SerializerMethodField(help_text="The assignee's e-mail address.")
    rule = serializers.UUIDField(
        source="rule.public_id",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="The alert rule that fired, if it is one of this tenant's rules.",
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "alertname",
            "severity",
            "category",
            "service",
            "summary",
            "status",
            "alert_state",
            "assignee",
            "rule",
            "started_at",
            "ended_at",
            "acknowledged_at",
            "resolved_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_assignee(self, incident: Incident) -> str | None:
        return incident.assignee_email or None


class IncidentDetailSerializer(IncidentSerializer):
    """One incident: its labels and annotations, who did what, and its timeline."""

    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    annotations = serializers.DictField(child=serializers.CharField(), read_only=True)
    timeline = IncidentEventSerializer(
        source="events", many=True, read_only=True, help_text="Oldest first."
    )
    timeline_intact = serializers.SerializerMethodField(
        help_text="Every timeline entry chains to the one before it (nothing changed or removed)."
    )
    breach = serializers.SerializerMethodField(
        help_text="Personal-data breach handling; security incidents only (null otherwise)."
    )

    class Meta(IncidentSerializer.Meta):
        fields = [
            *IncidentSerializer.Meta.fields,
            "labels",
            "annotations",
            "generator_url",
            "acknowledged_by",
            "resolved_by",
            "timeline",
            "timeline_intact",
            "breach",
        ]
        read_only_fields = fields

    def get_timeline_intact(self, incident: Incident) -> bool:
        return timeline.verify(incident).intact

    @extend_schema_field(IncidentBreachSerializer(allow_null=True))
    def get_breach(self, incident: Incident) -> dict | None:
        if not incident.is_security:
            return None
        return {
            "flagged_at": incident.breach_flagged_at,
            "flagged_by": incident.breach_flagged_by,
            "deadline": services.breach_deadline(incident),
            "authority_notified_at": incident.authority_notified_at,
        }


# ---- the resource ------------------------------------------------------------------------------


# Service errors name the service's arguments; the API names its own fields.
_FIELD_NAMES = {"duration": "duration_minutes"}
MANAGE = Perm.MANAGE_INCIDENTS
DONE = {200: IncidentDetailSerializer}


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Incidents: one per alert occurrence, worked by people. Security incidents are listed only
    for security staff and admins (never for a token); others get 404 for them."""

    model = Incident
    tenant_field = None
    serializer_class = IncidentSerializer
    action_permissions = {
        "list": Perm.VIEW_INCIDENTS,
        "retrieve": Perm.VIEW_INCIDENTS,
        "acknowledge": MANAGE,
        "assign": MANAGE,
        "add_note": MANAGE,
        "silence": MANAGE,
        "resolve": MANAGE,
        "reopen": MANAGE,
    }

    def get_serializer_class(self):
        return IncidentSerializer if self.action == "list" else IncidentDetailSerializer

    def base_queryset(self) -> QuerySet:
        access = request_access(self.request)
        if self.action == "list":
            rows = filtered_incidents(services.visible_incidents(access), self.request.query_params)
        elif self.action == "retrieve":
            rows = services.visible_incidents(access).prefetch_related("events")
        else:
            rows = services.actable_incidents(access)
        # Newest first; the id breaks ties so pages neither repeat nor skip a row.
        return rows.select_related("rule").order_by("-started_at", "-id")

    @extend_schema(parameters=INCIDENT_FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _act(self, incident: Incident, work: Callable[..., object]) -> Response:
        """Run `work(incident_id=..., actor=...)` on `incident`; answer the incident as now."""
        try:
            work(incident_id=incident.public_id, actor=audit.Actor.from_request(self.request))
        except DjangoValidationError as exc:
            if not hasattr(exc, "error_dict"):
                raise
            raise ValidationError(
                {_FIELD_NAMES.get(name, name): errors for name, errors in exc.message_dict.items()}
            ) from None
        current = Incident.objects.prefetch_related("events").select_related("rule")
        return Response(IncidentDetailSerializer(current.get(pk=incident.pk)).data)

    # Each action finds the incident first: an unknown or invisible one is a 404 whatever the body.

    @extend_schema(request=None, responses=DONE)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, id=None):
        """Acknowledge: someone is on it. Again on an acknowledged incident changes nothing; a
        resolved one must be reopened first (400)."""
        return self._act(self.get_object(), services.acknowledge_incident)

    @extend_schema(request=AssignInput, responses=DONE)
    @action(detail=True, methods=["post"])
    def assign(self, request, id=None):
        """Assign to a member who may see the incident, or unassign (null)."""
        incident = self.get_object()
        data = self.validated(AssignInput)
        return self._act(incident, partial(services.assign_incident, assignee=data["assignee"]))

    @extend_schema(request=NoteInput, responses=DONE)
    @action(detail=True, methods=["post"], url_path="notes")
    def add_note(self, request, id=None):
        """Add a note to the timeline (it cannot be changed or removed afterwards)."""
        incident = self.get_object()
        data = self.validated(NoteInput)
        return self._act(incident, partial(services.add_incident_note, text=data["text"]))

    @extend_schema(request=SilenceIncidentInput, responses=DONE)
    @action(detail=True, methods=["post"])
    def silence(self, request, id=None):
        """Silence the incident's alert (all its labels) in Alertmanager for a while; the
        timeline entry names the silence (see /api/v1/silences/)."""
        incident = self.get_object()
        data = self.validated(SilenceIncidentInput)
        work = partial(
            services.silence_incident,
            duration=timedelta(minutes=data["duration_minutes"]),
            comment=data.get("comment") or "",
        )
        return self._act(incident, work)

    @extend_schema(request=ResolveInput, responses=DONE)
    @action(detail=True, methods=["post"])
    def resolve(self, request, id=None):
        """Resolve the incident (again on a resolved one changes nothing)."""
        incident = self.get_object()
        data = self.validated(ResolveInput)
        return self._act(incident, partial(services.resolve_incident, note=data.get("note") or ""))

    @extend_schema(request=ReopenInput, responses=DONE)
    @action(detail=True, methods=["post"])
    def reopen(self, request, id=None):
        """Reopen a resolved incident: back to acknowledged if it was, else triggered."""
        incident = self.get_object()
        data = self.validated(ReopenInput)
        work = partial(services.reopen_incident, reason=data["reason"])
        return self._act(incident, work)
