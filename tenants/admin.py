"""Admin registrations: the platform admin (public host) and each tenant's admin site.

Writes made here go through the same services as the pages and the API, so they are validated
and audited the same way.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from tenants import audit, services
from tenants.admin_site import TenantModelAdmin, tenant_admin_site
from tenants.models import ApiToken, AuditEvent, Domain, Membership, Tenant
from tenants.provisioning import provision_tenant
from tenants.roles import Role


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ---- platform admin (public host, superusers) ----------------------------------------------------


class TenantProvisionForm(forms.ModelForm):
    slug = forms.CharField(
        max_length=63, help_text="Lowercase letters, digits, underscores; becomes <slug>.<domain>."
    )
    admin_email = forms.EmailField(required=False, help_text="Becomes the tenant's first admin.")

    class Meta:
        model = Tenant
        fields = ["name"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "schema_name", "is_active", "created_at"]
    search_fields = ["name", "schema_name"]
    readonly_fields = ["schema_name", "public_id", "created_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TenantProvisionForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["slug", "name", "admin_email"]
        return ["schema_name", "name", "is_active", "public_id", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def has_delete_permission(self, request, obj=None):
        # Deleting drops a schema with all its data; deactivate instead.
        return False

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        if change:
            before = {k: form.initial.get(k) for k in form.changed_data}
            obj.save()
            audit.record(
                actor=actor,
                action="tenant.updated",
                obj=obj,
                tenant=obj,
                before=before,
                after={k: form.cleaned_data[k] for k in form.changed_data},
            )
            return
        try:
            tenant = provision_tenant(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                admin_email=form.cleaned_data.get("admin_email") or None,
                actor=actor,
            )
        except ValidationError as exc:
            # Surface the reason on the form instead of a 500.
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            raise
        obj.pk = tenant.pk
        obj.schema_name = tenant.schema_name

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
            from django.shortcuts import redirect

            return redirect(request.get_full_path())


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record(
            actor=audit.Actor.from_request(request),
            action="domain.updated" if change else "domain.added",
            obj=obj,
            tenant=obj.tenant,
            after={"domain": obj.domain, "is_primary": obj.is_primary},
        )

    def delete_model(self, request, obj):
        audit.record(
            actor=audit.Actor.from_request(request),
            action="domain.removed",
            obj=obj,
            tenant=obj.tenant,
            before={"domain": obj.domain},
        )
        super().delete_model(request, obj)


class MembershipAdminMixin:
    """Role changes and removals through the services: validated (one admin stays) and audited."""

    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "tenant"] if obj else []

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        if change:
            services.change_role(
                tenant=obj.tenant, membership_id=obj.public_id, role=obj.role, actor=actor
            )
        else:
            invitation = services.add_member(
                tenant=obj.tenant, email=obj.user.email, role=obj.role, actor=actor
            )
            obj.pk = invitation.membership.pk

    def delete_model(self, request, obj):
        services.remove_member(
            tenant=obj.tenant, membership_id=obj.public_id, actor=audit.Actor.from_request(request)
        )


@admin.register(Membership)
class MembershipAdmin(MembershipAdminMixin, admin.ModelAdmin):
    list_filter = ["role", "tenant"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "prefix", "scopes", "created_at", "revoked_at"]
    list_filter = ["tenant"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "tenant", "seq", "actor_label", "action", "object_repr"]
    list_filter = ["action", "tenant"]
    search_fields = ["actor_label", "action", "object_repr"]


# ---- tenant admin (tenant host, the tenant's admins) ---------------------------------------------


class TenantMembershipForm(forms.ModelForm):
    email = forms.EmailField(required=False, help_text="For a new member.")

    class Meta:
        model = Membership
        fields = ["role"]


@admin.register(Membership, site=tenant_admin_site)
class TenantMembershipAdmin(MembershipAdminMixin, TenantModelAdmin):
    list_display = ["user", "role", "created_at"]
    form = TenantMembershipForm

    def get_fields(self, request, obj=None):
        return ["role"] if obj else ["email", "role"]

    def get_readonly_fields(self, request, obj=None):
        return []

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        if change:
            services.change_role(
                tenant=request.tenant, membership_id=obj.public_id, role=obj.role, actor=actor
            )
            return
        invitation = services.add_member(
            tenant=request.tenant,
            email=form.cleaned_data.get("email") or "",
            role=obj.role or Role.EXECUTIVE,
            actor=actor,
        )
        obj.pk = invitation.membership.pk


@admin.register(ApiToken, site=tenant_admin_site)
class TenantApiTokenAdmin(TenantModelAdmin):
    list_display = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # issued on the Tokens page, where the secret is shown once

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            services.revoke_token(
                tenant=request.tenant,
                token_id=token.public_id,
                actor=audit.Actor.from_request(request),
            )


@admin.register(AuditEvent, site=tenant_admin_site)
class TenantAuditEventAdmin(TenantModelAdmin):
    list_display = ["occurred_at", "seq", "actor_label", "action", "object_repr"]
    list_filter = ["action"]
    search_fields = ["actor_label", "action", "object_repr"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
