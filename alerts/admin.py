"""Alerting in each tenant's admin site, for bulk inspection and repair.

Saves and deletes go through `alerts.services` after the shared forms of `alerts.forms` have
checked the input, so an admin change is validated and audited like any other. Receiver secrets
are never shown (only their hint); sync state and the notification log are read-only. Incidents
are read-only too (their timeline is the record), with acknowledge and resolve as list actions.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db import connection
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from alerts import services, timeline
from alerts.forms import (
    AlertRuleForm,
    NotificationPolicyForm,
    ReceiverForm,
    RuleGroupForm,
    SilenceForm,
)
from alerts.models import (
    AlertRule,
    Incident,
    MuteTiming,
    NotificationLog,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Silence,
    SyncState,
)
from alerts.mute_timings import describe
from tenants import audit
from tenants.access import request_access
from tenants.admin_site import TenantModelAdmin, tenant_admin_site
from tenants.roles import Perm


class SharedFormMixin:
    """A ModelForm whose input is checked by one of the shared alerting forms."""

    shared_class: type[forms.Form]
    shared_values: dict

    def shared_kwargs(self) -> dict:
        return {}

    def shared_data(self, data: dict) -> dict:
        return data

    def clean(self):
        data = super().clean()
        shared = self.shared_class(data=self.shared_data(dict(data)), **self.shared_kwargs())
        if not shared.is_valid():
            for name, errors in shared.errors.items():
                field = name if name in self.fields and name not in self.errors else None
                for error in errors:
                    self.add_error(field, error)
        self.shared_values = dict(shared.cleaned_data) if shared.is_valid() else {}
        self.shared = shared
        return data


class ServiceAdmin(TenantModelAdmin):
    """Rows of the tenant's own schema; the services refuse what the database would allow."""

    tenant_field = None

    def _actor(self, request) -> audit.Actor:
        return audit.Actor.from_request(request)

    def save_related(self, request, form, formsets, change):
        # Relations are written by the services, with the object, in one audited change.
        return None


# ---- groups and rules --------------------------------------------------------------------------


class RuleGroupAdminForm(SharedFormMixin, forms.ModelForm):
    shared_class = RuleGroupForm

    class Meta:
        model = RuleGroup
        fields = ["name", "interval"]


@admin.register(RuleGroup, site=tenant_admin_site)
class RuleGroupAdmin(ServiceAdmin):
    form = RuleGroupAdminForm
    list_display = ["name", "interval", "rule_count", "updated_at"]
    search_fields = ["name"]

    def get_queryset(self, request):
        # One query for the whole list rather than a count per row.
        return super().get_queryset(request).annotate(rules_counted=Count("rules"))

    @admin.display(description="Rules")
    def rule_count(self, group: RuleGroup) -> int:
        return group.rules_counted

    def save_model(self, request, obj, form, change):
        values = form.shared_values
        if change:
            services.update_group(group_id=obj.public_id, actor=self._actor(request), **values)
        else:
            obj.pk = services.create_group(actor=self._actor(request), **values).pk

    def delete_model(self, request, obj):
        services.delete_group(group_id=obj.public_id, actor=self._actor(request))

    def delete_queryset(self, request, queryset):
        for group in queryset:
            self.delete_model(request, group)


class AlertRuleAdminForm(SharedFormMixin, forms.ModelForm):
    shared_class = AlertRuleForm

    class Meta:
        model = AlertRule
        fields = [
            "group",
            "kind",
            "name",
            "expr",
            "for_duration",
            "keep_firing_for",
            "severity",
            "category",
            "labels",
            "annotations",
            "enabled",
        ]

    def shared_kwargs(self) -> dict:
        return {"schema": connection.schema_name}

    def shared_data(self, data: dict) -> dict:
        for name in ("labels", "annotations"):
            if isinstance(data.get(name), dict):
                data[name] = json.dumps(data[name])
        return data


@admin.register(AlertRule, site=tenant_admin_site)
class AlertRuleAdmin(ServiceAdmin):
    form = AlertRuleAdminForm
    list_display = ["name", "group", "kind", "severity", "category", "enabled", "updated_at"]
    list_filter = ["group", "kind", "severity", "category", "enabled"]
    search_fields = ["name", "expr"]
    list_select_related = ["group"]

    def save_model(self, request, obj, form, change):
        values = form.shared_values
        if change:
            services.update_rule(
                rule_id=obj.public_id,
                group_id=obj.group.public_id,
                actor=self._actor(request),
                **values,
            )
        else:
            obj.pk = services.create_rule(
                group_id=obj.group.public_id, actor=self._actor(request), **values
            ).pk

    def delete_model(self, request, obj):
        services.delete_rule(rule_id=obj.public_id, actor=self._actor(request))

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            self.delete_model(request, rule)


# ---- receivers ---------------------------------------------------------------------------------


class ReceiverAdminForm(SharedFormMixin, forms.ModelForm):
    """The receiver's settings by kind; the secret is asked for, never shown."""

    shared_class = ReceiverForm
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Never shown. Leave blank to keep the stored one.",
    )
    channel = forms.CharField(label="Slack channel", required=False)
    to = forms.CharField(label="E-mail address", required=False)
    smarthost = forms.CharField(label="SMTP server (host:port)", required=False)
    from_address = forms.CharField(label="Sender address", required=False)
    auth_username = forms.CharField(label="SMTP user name", required=False)
    require_tls = forms.BooleanField(required=False, initial=True)
    url = forms.CharField(label="PagerDuty Events API URL", required=False)

    class Meta:
        model = Receiver
        fields = ["name", "kind", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            settings = self.instance.settings or {}
            for field, key in (
                ("channel", "channel"),
                ("to", "to"),
                ("smarthost", "smarthost"),
                ("from_address", "from"),
                ("auth_username", "auth_username"),
                ("require_tls", "require_tls"),
                ("url", "url"),
            ):
                if key in settings:
                    self.initial[field] = settings[key]
            hint = self.instance.secret_hint or "not set"
            self.fields["secret"].help_text = f"Stored: {hint}. Leave blank to keep it."

    def shared_kwargs(self) -> dict:
        return {"editing": bool(self.instance.pk)}


@admin.register(Receiver, site=tenant_admin_site)
class ReceiverAdmin(ServiceAdmin):
    form = ReceiverAdminForm
    list_display = ["name", "kind", "secret_hint", "enabled", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    fields = [
        "name",
        "kind",
        "secret",
        "channel",
        "to",
        "smarthost",
        "from_address",
        "auth_username",
        "require_tls",
        "url",
        "enabled",
    ]

    def has_delete_permission(self, request, obj=None):
        # A receiver named by a policy is kept until the policy lets go of it.
        if obj is not None and obj.policies.exists():
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        values = {
            "name": form.shared_values["name"],
            "kind": form.shared_values["kind"],
            "settings": form.shared.receiver_settings(),
            "secret": form.shared_values["secret"],
            "enabled": form.shared_values["enabled"],
        }
        if change:
            services.update_receiver(
                receiver_id=obj.public_id, actor=self._actor(request), **values
            )
        else:
            obj.pk = services.create_receiver(actor=self._actor(request), **values).pk

    def delete_model(self, request, obj):
        services.delete_receiver(receiver_id=obj.public_id, actor=self._actor(request))

    def delete_queryset(self, request, queryset):
        for receiver in queryset:
            self.delete_model(request, receiver)


# ---- policies, windows, silences ---------------------------------------------------------------


class NotificationPolicyAdminForm(SharedFormMixin, forms.ModelForm):
    shared_class = NotificationPolicyForm

    class Meta:
        model = NotificationPolicy
        fields = [
            "receivers",
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "mute_timings",
        ]

    def shared_data(self, data: dict) -> dict:
        receivers = data.get("receivers") or []
        mutes = data.get("mute_timings") or []
        data["receivers"] = json.dumps([str(r.public_id) for r in receivers])
        data["mute_timings"] = json.dumps([m.name for m in mutes])
        data["group_by"] = json.dumps(data.get("group_by") or [])
        return data


@admin.register(NotificationPolicy, site=tenant_admin_site)
class NotificationPolicyAdmin(ServiceAdmin):
    form = NotificationPolicyAdminForm
    list_display = ["severity", "group_wait", "group_interval", "repeat_interval", "updated_at"]
    filter_horizontal = ["receivers", "mute_timings"]

    def has_add_permission(self, request):
        return False  # one policy per severity, created with the tenant

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.update_policy(
            severity=obj.severity, actor=self._actor(request), **form.shared_values
        )


@admin.register(MuteTiming, site=tenant_admin_site)
class MuteTimingAdmin(ServiceAdmin):
    """Maintenance windows are made on the notification policy page; here they are listed."""

    list_display = ["name", "window"]
    readonly_fields = ["name", "window"]
    fields = ["name", "window"]

    @admin.display(description="When")
    def window(self, timing: MuteTiming) -> str:
        return describe(timing.intervals)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SilenceAdminForm(SharedFormMixin, forms.ModelForm):
    shared_class = SilenceForm

    class Meta:
        model = Silence
        fields = ["matchers", "starts_at", "ends_at", "comment"]

    def shared_data(self, data: dict) -> dict:
        data["matchers"] = json.dumps(data.get("matchers"))
        return data


@admin.register(Silence, site=tenant_admin_site)
class SilenceAdmin(ServiceAdmin):
    form = SilenceAdminForm
    list_display = ["comment", "starts_at", "ends_at", "created_by", "expired_at", "synced"]
    list_filter = ["synced"]
    actions = ["expire"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["matchers", "starts_at", "ends_at", "comment", "created_by", "expired_at"]

    def has_change_permission(self, request, obj=None):
        # A silence is never edited, only expired (the list's action): it opens read-only.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = services.create_silence(actor=self._actor(request), **form.shared_values).pk

    @admin.action(description="Expire the selected silences")
    def expire(self, request, queryset):
        for silence in queryset:
            services.expire_silence(silence_id=silence.public_id, actor=self._actor(request))
        self.message_user(request, f"{queryset.count()} silence(s) expired.")


class ReadOnlyAdmin(ServiceAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncState, site=tenant_admin_site)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = ["target", "status", "last_attempt_at", "last_success_at", "attempts", "error"]


@admin.register(NotificationLog, site=tenant_admin_site)
class NotificationLogAdmin(ReadOnlyAdmin):
    list_display = ["sent_at", "receiver_name", "kind", "reason", "outcome", "detail"]
    list_filter = ["outcome", "kind"]
    search_fields = ["receiver_name", "reason"]


# ---- incidents ---------------------------------------------------------------------------------


@admin.register(Incident, site=tenant_admin_site)
class IncidentAdmin(ServiceAdmin):
    """Incidents for bulk inspection; people work them on the incident desk. Nothing here edits
    or deletes one: acknowledge and resolve are list actions through the services."""

    list_display = ["severity", "alertname", "status", "started_at", "assignee"]
    list_filter = ["severity", "status", "category", "alert_state", "started_at"]
    search_fields = ["alertname", "service", "summary", "fingerprint", "assignee_email"]
    ordering = ["-started_at", "-id"]
    actions = ["acknowledge", "resolve"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "alertname",
                    "severity",
                    "category",
                    "service",
                    "summary",
                    "status",
                    "alert_state",
                    "assignee",
                ]
            },
        ),
        (
            "When and by whom",
            {
                "fields": [
                    "started_at",
                    "ended_at",
                    "acknowledged_at",
                    "acknowledged_by",
                    "resolved_at",
                    "resolved_by",
                ]
            },
        ),
        ("Alert", {"fields": ["labels", "annotations", "generator_url", "rule", "fingerprint"]}),
        (
            "Personal-data breach",
            {"fields": ["breach_flagged_at", "breach_flagged_by", "authority_notified_at"]},
        ),
        ("Timeline", {"fields": ["timeline_intact", "timeline"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    def get_queryset(self, request):
        # Security incidents only for those who may see them, as on the desk and in the API.
        rows = services.visible_incidents(request_access(request))
        return rows.order_by(*self.get_ordering(request))

    def has_add_permission(self, request):
        return False  # incidents come from Alertmanager

    def has_change_permission(self, request, obj=None):
        return False  # the page opens read-only; the actions are the way to change one

    def has_delete_permission(self, request, obj=None):
        return False

    def has_manage_incidents_permission(self, request) -> bool:
        return request_access(request).can(Perm.MANAGE_INCIDENTS)

    @admin.display(description="Assignee", ordering="assignee_email")
    def assignee(self, incident: Incident) -> str:
        return incident.assignee_email or "-"

    @admin.display(description="Chain of custody", boolean=True)
    def timeline_intact(self, incident: Incident) -> bool:
        return timeline.verify(incident).intact

    @admin.display(description="Entries")
    def timeline(self, incident: Incident) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (event.at, event.get_kind_display(), event.actor, event.text)
                for event in incident.events.order_by("at", "id")
            ),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>What</th><th>Who</th><th>Text</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    def _each(self, request, queryset, work, done: str) -> None:
        self.each_through_service(
            request,
            queryset,
            lambda incident, actor: work(incident_id=incident.public_id, actor=actor),
            f"incident(s) {done}",
        )

    @admin.action(description="Acknowledge", permissions=["manage_incidents"])
    def acknowledge(self, request, queryset):
        self._each(request, queryset, services.acknowledge_incident, "acknowledged")

    @admin.action(description="Resolve", permissions=["manage_incidents"])
    def resolve(self, request, queryset):
        self._each(request, queryset, services.resolve_incident, "resolved")
