"""Admin registrations: the platform admin (public host) and each tenant's admin site.

Writes made here go through the same services as the pages and the API, so they are validated
and audited the same way.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django_otp.plugins.otp_static import admin as _otp_static_admin  # noqa: F401 (registers first)
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp import admin as _otp_totp_admin  # noqa: F401 (registers first)
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import get_public_schema_name

from tenants import audit, services
from tenants.accounts.services import deactivate_user, reset_two_factor
from tenants.actions import AuditAction
from tenants.admin_site import TenantModelAdmin, tenant_admin_site
from tenants.models import ApiToken, AuditEvent, Domain, Membership, Tenant
from tenants.provisioning import deactivate_tenant, provision_tenant, reactivate_tenant


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _initial_values_of_changed_fields(form) -> dict:
    """The "before" of an admin change: what the changed fields held when the form opened."""
    return {field: form.initial.get(field) for field in form.changed_data}


class ServiceErrorsMixin:
    """Services refuse some changes only they can judge (e.g. "a tenant keeps one admin").

    Their ValidationError ends the admin's transaction, so nothing is written; the person sees
    the reason instead of a server error.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            return self._refused(request, exc)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:
            return self._refused(request, exc)

    def _refused(self, request, exc: ValidationError):
        self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())


# ---- platform admin (public host, superusers) ----------------------------------------------------


class TenantProvisionForm(forms.ModelForm):
    slug = forms.CharField(
        max_length=63,
        help_text="Lowercase letters, digits and hyphens, starting with a letter; the tenant's "
        "address becomes slug.base-domain.",
    )
    admin_email = forms.EmailField(
        required=False, help_text="Becomes the tenant's first admin and gets an invitation e-mail."
    )

    class Meta:
        model = Tenant
        fields = ["name"]


@admin.register(Tenant)
class TenantAdmin(ServiceErrorsMixin, admin.ModelAdmin):
    list_display = ["name", "schema_name", "is_active", "created_at"]
    search_fields = ["name", "schema_name"]
    readonly_fields = ["schema_name", "public_id", "created_at"]
    actions = ["deactivate", "reactivate"]

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

    def get_queryset(self, request):
        # The public schema is the platform itself, not a tenant to rename or deactivate.
        return super().get_queryset(request).exclude(schema_name=get_public_schema_name())

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        if change:
            self._save_change(obj, form, actor)
            return
        tenant = provision_tenant(
            slug=form.cleaned_data["slug"],
            name=form.cleaned_data["name"],
            admin_email=form.cleaned_data.get("admin_email") or None,
            actor=actor,
        )
        obj.pk = tenant.pk
        obj.schema_name = tenant.schema_name

    def _save_change(self, obj, form, actor) -> None:
        # The name is the only other editable field; the service checks and audits it.
        if "name" in form.changed_data:
            services.rename_tenant(tenant=obj, name=form.cleaned_data["name"], actor=actor)
        if "is_active" in form.changed_data:
            # Through the service: audited, and `tenant_deactivated` closes live connections.
            change_activity = reactivate_tenant if obj.is_active else deactivate_tenant
            change_activity(tenant=obj, actor=actor)

    @admin.action(description="Deactivate selected tenants")
    def deactivate(self, request, queryset):
        for tenant in queryset:
            deactivate_tenant(tenant=tenant, actor=audit.Actor.from_request(request))

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request, queryset):
        for tenant in queryset:
            reactivate_tenant(tenant=tenant, actor=audit.Actor.from_request(request))


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain"]

    def get_readonly_fields(self, request, obj=None):
        # Pointing a host at another tenant would hand that tenant's address (and its users'
        # bookmarks and tokens' target) to someone else: remove and add instead.
        return ["tenant"] if obj else []

    def save_model(self, request, obj, form, change):
        before = _initial_values_of_changed_fields(form) if change else None
        super().save_model(request, obj, form, change)
        audit.record(
            actor=audit.Actor.from_request(request),
            action=AuditAction.DOMAIN_UPDATED if change else AuditAction.DOMAIN_ADDED,
            obj=obj,
            tenant=obj.tenant,
            before=before,
            after={"domain": obj.domain, "is_primary": obj.is_primary},
        )

    def delete_model(self, request, obj):
        audit.record(
            actor=audit.Actor.from_request(request),
            action=AuditAction.DOMAIN_REMOVED,
            obj=obj,
            tenant=obj.tenant,
            before={"domain": obj.domain},
        )
        super().delete_model(request, obj)


class MembershipAdminMixin(ServiceErrorsMixin):
    """Membership writes through the services: validated (one admin stays) and audited."""

    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "tenant"] if obj else []

    def membership_tenant(self, request, obj):
        return obj.tenant

    def new_member_email(self, form, obj) -> str:
        return obj.user.email

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        tenant = self.membership_tenant(request, obj)
        if change:
            saved = services.change_role(
                tenant=tenant, membership_id=obj.public_id, role=obj.role, actor=actor
            )
        else:
            saved = services.add_member(
                tenant=tenant, email=self.new_member_email(form, obj), role=obj.role, actor=actor
            )
        # The admin logs the object it saved: give it the row the service wrote.
        for field in ("pk", "public_id", "user", "tenant", "role", "created_at"):
            setattr(obj, field, getattr(saved, field))

    def delete_model(self, request, obj):
        services.remove_member(
            tenant=self.membership_tenant(request, obj),
            membership_id=obj.public_id,
            actor=audit.Actor.from_request(request),
        )


@admin.register(Membership)
class MembershipAdmin(MembershipAdminMixin, admin.ModelAdmin):
    list_filter = ["role", "tenant"]


class PlatformUserAdmin(ServiceErrorsMixin, UserAdmin):
    """People are deactivated, never deleted (the trail names them); every change is audited."""

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        if deactivating:
            obj.is_active = True  # the service makes that change, once the rest is saved
        super().save_model(request, obj, form, change)
        if deactivating:
            # Refused if they are a tenant's only admin; sends `user_deactivated` on commit.
            deactivate_user(user=obj, actor=audit.Actor.from_request(request))

    def log_addition(self, request, obj, message):
        super().log_addition(request, obj, message)
        self._audit(request, obj, "user.added")

    def log_change(self, request, obj, message):
        super().log_change(request, obj, message)
        self._audit(request, obj, "user.changed", message)

    def _audit(self, request, obj, action, message=None):
        # The password is never recorded, only that it changed (the admin's change message).
        changed = [
            field
            for entry in (message or [])
            for field in entry.get("changed", {}).get("fields", [])
        ]
        audit.record(
            actor=audit.Actor.from_request(request),
            action=action,
            obj=obj,
            tenant=None,
            after={
                "email": obj.email,
                "is_active": obj.is_active,
                "is_superuser": obj.is_superuser,
                "changed": changed,
            },
        )


admin.site.unregister(User)
admin.site.unregister(Group)  # roles live in tenants.roles; Django groups are not used
admin.site.register(User, PlatformUserAdmin)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    exclude = ["secret_hash"]
    list_display = ["name", "tenant", "prefix", "scopes", "created_at", "revoked_at"]
    list_filter = ["tenant"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["occurred_at", "tenant", "seq", "actor_label", "action", "object_repr"]
    list_filter = ["action", "tenant"]
    search_fields = ["actor_label", "action", "object_repr"]


# django-otp's own admin shows each app's secret (and its QR code) and edits apps unaudited;
# its recovery-code admin would add and edit codes unaudited. Recovery codes go with the app
# when the platform resets it (`reset_two_factor`).
admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)


@admin.register(TOTPDevice)
class AuthenticatorAppAdmin(admin.ModelAdmin):
    """People's authenticator apps: listed, and removed for someone who lost theirs (audited,
    through the service). Never added or edited here; the secret is never shown."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__email"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        reset_two_factor(device=obj, actor=audit.Actor.from_request(request))

    def delete_queryset(self, request, queryset):
        for device in queryset:
            self.delete_model(request, device)


# ---- tenant admin (tenant host, the tenant's admins) ---------------------------------------------


class TenantMembershipForm(forms.ModelForm):
    email = forms.EmailField(required=False, help_text="E-mail of the person to add.")

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

    def membership_tenant(self, request, obj):
        return request.tenant

    def new_member_email(self, form, obj) -> str:
        return form.cleaned_data.get("email") or ""


@admin.register(ApiToken, site=tenant_admin_site)
class TenantApiTokenAdmin(TenantModelAdmin):
    exclude = ["secret_hash"]
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
