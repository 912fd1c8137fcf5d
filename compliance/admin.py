"""Controls and evidence in each tenant's admin site (bulk inspection and repair); every write
goes through `compliance.services`, so it is validated and audited like any other."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from compliance import services
from compliance.models import ControlStatus, Evidence, Source
from tenants import audit
from tenants.admin_site import TenantModelAdmin, tenant_admin_site


class AttestationForm(forms.ModelForm):
    """Checks an attestation as the service will, so a refusal shows on the field."""

    class Meta:
        model = ControlStatus
        fields = ["status", "reason", "expires_at"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None or self.instance.source != Source.ATTESTATION:
            return data
        try:
            services.check_attestation(
                control_code=self.instance.control_code,
                status=data.get("status", ""),
                reason=data.get("reason", ""),
                expires_at=data.get("expires_at"),
            )
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                target = field if field in self.fields else None
                for problem in problems:
                    self.add_error(target, problem)
        return data


@admin.register(ControlStatus, site=tenant_admin_site)
class ControlStatusAdmin(TenantModelAdmin):
    tenant_field = None  # rows of the tenant's own schema
    form = AttestationForm
    list_display = ["control_code", "status", "source", "owner_email", "review_date", "expires_at"]
    list_filter = ["status", "source"]
    search_fields = ["control_code", "reason", "owner_email"]
    fields = [
        "control_code",
        "status",
        "source",
        "reason",
        "expires_at",
        "owner_email",
        "review_date",
        "updated_at",
        "updated_by",
    ]

    def get_readonly_fields(self, request, obj=None):
        editable = {"status", "reason", "expires_at"}
        if obj is not None and obj.source == Source.ATTESTATION:
            return [f for f in self.fields if f not in editable]
        return list(self.fields)  # automated results change only when the check says so

    def has_add_permission(self, request):
        return False  # statuses come from checks and attestations

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        services.attest(
            control_code=obj.control_code,
            status=obj.status,
            reason=obj.reason,
            expires_at=obj.expires_at,
            actor=audit.Actor.from_request(request),
        )


@admin.register(Evidence, site=tenant_admin_site)
class EvidenceAdmin(TenantModelAdmin):
    tenant_field = None
    list_display = ["control_code", "title", "kind", "added_at", "added_by", "expires_at"]
    list_filter = ["kind"]
    search_fields = ["control_code", "title"]
    readonly_fields = [
        "control_code",
        "kind",
        "title",
        "file",
        "content_type",
        "size",
        "url",
        "note",
        "record_type",
        "record_id",
        "expires_at",
        "added_at",
        "added_by",
    ]

    def has_add_permission(self, request):
        return False  # added on the control's page, where the upload is checked

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.remove_evidence(evidence_id=obj.public_id, actor=audit.Actor.from_request(request))

    def delete_queryset(self, request, queryset):
        actor = audit.Actor.from_request(request)
        for evidence in queryset:
            services.remove_evidence(evidence_id=evidence.public_id, actor=actor)
