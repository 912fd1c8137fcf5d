"""Dashboards in each tenant's admin site; writes go through `dashboards.services`."""

from django.contrib import admin
from django.core.exceptions import ValidationError

from dashboards import grafana_push, services
from dashboards.models import Dashboard, GrafanaPush, MetricDefinition, Panel
from tenants import audit
from tenants.access import request_access
from tenants.admin import ReadOnlyAdminMixin, ServiceErrorsMixin
from tenants.admin_site import TenantModelAdmin, tenant_admin_site
from tenants.roles import Perm


@admin.register(Dashboard, site=tenant_admin_site)
class DashboardAdmin(TenantModelAdmin):
    tenant_field = None  # rows of the tenant's own schema
    list_display = ["title", "updated_at"]
    fields = ["title", "description"]

    def delete_model(self, request, obj):
        services.delete_dashboard(
            dashboard_id=obj.public_id, actor=audit.Actor.from_request(request)
        )

    def has_delete_permission(self, request, obj=None):
        # One at a time, through the service (the bulk action would skip the audit).
        return False if obj is None else super().has_delete_permission(request, obj)

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


@admin.register(MetricDefinition, site=tenant_admin_site)
class MetricDefinitionAdmin(ServiceErrorsMixin, TenantModelAdmin):
    tenant_field = None
    list_display = ["name", "type", "category", "unit", "cardinality_limit"]
    list_filter = ["type", "category"]
    search_fields = ["name", "help"]
    fields = ["name", "type", "unit", "help", "labels", "category", "cardinality_limit"]

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        actor = audit.Actor.from_request(request)
        values = {name: getattr(obj, name) for name in services.METRIC_FIELDS}
        if change:
            services.update_metric(metric_id=obj.public_id, actor=actor, **values)
        else:
            obj.pk = services.create_metric(actor=actor, **values).pk

    def delete_model(self, request, obj):
        services.delete_metric(metric_id=obj.public_id, actor=audit.Actor.from_request(request))

    def has_delete_permission(self, request, obj=None):
        return False if obj is None else super().has_delete_permission(request, obj)


@admin.register(Panel, site=tenant_admin_site)
class PanelAdmin(TenantModelAdmin):
    tenant_field = None
    list_display = ["title", "dashboard", "kind", "source", "metric", "position"]
    list_filter = ["kind", "source"]
    search_fields = ["title", "metric", "promql"]
    list_select_related = ["dashboard"]

    def has_add_permission(self, request):
        return False  # panels are added on their dashboard's page

    def has_change_permission(self, request, obj=None):
        return False  # ... and edited there, with the query checked

    def delete_model(self, request, obj):
        services.delete_panel(panel_id=obj.public_id, actor=audit.Actor.from_request(request))

    def has_delete_permission(self, request, obj=None):
        return False if obj is None else super().has_delete_permission(request, obj)


@admin.register(GrafanaPush, site=tenant_admin_site)
class GrafanaPushAdmin(ReadOnlyAdminMixin, TenantModelAdmin):
    """Dashboards kept in Grafana, and removals still owed. Read-only (pushes start on the
    dashboard's page or in the API; "Stop pushing" also takes Grafana's copy out): pushing again
    and stopping are list actions through `dashboards.grafana_push`."""

    tenant_field = None
    list_display = ["title", "status", "grafana_version", "last_attempt_at", "error"]
    list_filter = ["status"]
    search_fields = ["title", "grafana_uid", "error"]
    actions = ["push_again", "stop_pushing"]
    readonly_fields = [
        "title",
        "dashboard",
        "grafana_uid",
        "status",
        "grafana_version",
        "grafana_url",
        "error",
        "attempts",
        "changed_at",
        "last_attempt_at",
        "last_success_at",
        "skipped",
    ]
    fields = readonly_fields

    def has_edit_dashboards_permission(self, request) -> bool:
        return request_access(request).can(Perm.EDIT_DASHBOARDS)

    def _each(self, request, queryset, work, done: str) -> None:
        def call(row, actor):
            if row.dashboard is None:
                raise ValidationError("being removed.")
            work(dashboard_id=row.dashboard.public_id, actor=actor)

        rows = queryset.select_related("dashboard")
        self.each_through_service(request, rows, call, f"dashboard(s) {done}")

    @admin.action(description="Push again now", permissions=["edit_dashboards"])
    def push_again(self, request, queryset):
        self._each(request, queryset, grafana_push.push_again, "queued for Grafana")

    @admin.action(
        description="Stop pushing (deletes Grafana's copy)", permissions=["edit_dashboards"]
    )
    def stop_pushing(self, request, queryset):
        self._each(request, queryset, grafana_push.stop_push, "no longer pushed")
