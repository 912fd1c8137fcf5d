"""Dashboards in each tenant's admin site; writes go through `dashboards.services`."""

from django.contrib import admin

from dashboards import services
from dashboards.models import Dashboard
from tenants import audit
from tenants.admin_site import TenantModelAdmin, tenant_admin_site


@admin.register(Dashboard, site=tenant_admin_site)
class DashboardAdmin(TenantModelAdmin):
    tenant_field = None  # rows of the tenant's own schema
    list_display = ["title", "updated_at"]
    fields = ["title", "description"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        if change:
            services.update_dashboard(
                dashboard_id=obj.public_id,
                title=obj.title,
                description=obj.description,
                actor=actor,
            )
        else:
            created = services.create_dashboard(
                title=obj.title, description=obj.description, actor=actor
            )
            obj.pk = created.pk
