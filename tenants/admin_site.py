"""The Django admin on a tenant host: for that tenant's admins (by membership), that tenant's data.

Tenant admins are not Django staff, so access and every model permission are decided by
`tenants.roles`, never by `is_staff` or Django's global permission tables.
"""

from functools import wraps

from csp.decorators import csp_update
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from tenants import audit
from tenants.access import request_access
from tenants.roles import Perm

# Django's admin sets inline styles from its scripts; allow inline styles (never scripts) there.
_admin_csp = csp_update({"style-src": ["'unsafe-inline'"]})


class PortalAdminSiteMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Bulk delete bypasses the services (no audit event, no "one admin stays" rule).
        self.disable_action("delete_selected")

    def admin_view(self, view, cacheable=False):
        return _admin_csp(super().admin_view(view, cacheable))


class PlatformAdminSite(PortalAdminSiteMixin, admin.AdminSite):
    """The public host's admin: platform superusers only."""

    site_header = "Platform administration"
    site_title = "Platform administration"

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser


class TenantAdminSite(PortalAdminSiteMixin, admin.AdminSite):
    site_header = "Tenant administration"
    site_title = "Tenant administration"
    index_title = "Manage this tenant"

    def has_permission(self, request) -> bool:
        return request.user.is_active and request_access(request).can(Perm.ADMIN_SITE)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def members_only(request, *args, **kwargs):
            # Django would send a signed-in non-admin to the login page; this is a plain 403.
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied("Only this tenant's admins may use its admin site.")
            return inner(request, *args, **kwargs)

        return members_only

    def login(self, request, extra_context=None):
        # One sign-in page for the whole tenant host; a member without the admin role gets 403.
        if request.user.is_authenticated:
            if not self.has_permission(request):
                raise PermissionDenied("Only this tenant's admins may use its admin site.")
            target = request.GET.get("next", "")
            safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
            return redirect(target if target and safe else "tenant_admin:index")
        return redirect_to_login(request.GET.get("next") or request.get_full_path())

    def each_context(self, request):
        context = super().each_context(request)
        context["site_header"] = f"{request.tenant.name}: administration"
        return context

    def get_urls(self):
        # Django's "view on site" redirect (/admin/r/<content type>/<id>/) looks objects up by
        # database id across every model, shared tables included: it would tell whether ids
        # exist. Nothing on a tenant site may link to it either.
        for model_admin in self._registry.values():
            model_admin.view_on_site = False
        return [url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"]


class TenantModelAdmin(admin.ModelAdmin):
    """Permissions from the tenant role; querysets limited to the current tenant."""

    tenant_field: str | None = "tenant"
    view_on_site = False  # see TenantAdminSite.get_urls

    def _is_admin(self, request) -> bool:
        return request_access(request).can(Perm.ADMIN_SITE)

    def each_through_service(self, request, rows, call, done: str) -> None:
        """A list action: `call(row, actor)` (a service) for every selected row. A row the
        service refuses is reported with its reason; the others are still done."""
        actor = audit.Actor.from_request(request)
        changed = 0
        for row in rows:
            try:
                call(row, actor)
            except ValidationError as exc:
                self.message_user(request, f"{row}: {' '.join(exc.messages)}", messages.WARNING)
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{changed} {done}.", messages.SUCCESS)

    def has_module_permission(self, request):
        return self._is_admin(request)

    def has_view_permission(self, request, obj=None):
        return self._is_admin(request)

    def has_add_permission(self, request):
        return self._is_admin(request)

    def has_change_permission(self, request, obj=None):
        return self._is_admin(request)

    def has_delete_permission(self, request, obj=None):
        return self._is_admin(request)

    # Django's LogEntry table is shared by all tenants and keyed by per-schema ids, so a tenant
    # site must neither write nor show it: the tenant's audit trail is the record.
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None

    def history_view(self, request, object_id, extra_context=None):
        raise Http404("See the audit trail for this tenant's history.")

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self.tenant_field:
            qs = qs.filter(**{self.tenant_field: request.tenant})
        return qs


tenant_admin_site = TenantAdminSite(name="tenant_admin")
