from django.urls import path

from dashboards import import_views, views

urlpatterns = [
    path("dashboards/", views.dashboard_list, name="dashboards"),
    path("dashboards/<uuid:dashboard_id>/", views.dashboard_detail, name="dashboard-page"),
    path(
        "dashboards/<uuid:dashboard_id>/delete/",
        views.dashboard_delete,
        name="dashboard-delete",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/layout/",
        views.dashboard_layout,
        name="dashboard-layout",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/export.json",
        views.dashboard_export,
        name="dashboard-export",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/grafana/",
        views.dashboard_grafana,
        name="dashboard-grafana",
    ),
    path("dashboards/import/", import_views.dashboard_import, name="dashboard-import"),
    path(
        "dashboards/import/<slug:token>/",
        import_views.dashboard_import_report,
        name="dashboard-import-report",
    ),
    path("dashboards/metrics/", views.metric_catalog, name="metric-catalog"),
    path("dashboards/metrics/<uuid:metric_id>/delete/", views.metric_delete, name="metric-delete"),
    path(
        "dashboards/<uuid:dashboard_id>/panels/new/",
        views.panel_create,
        name="dashboard-panel-new",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/panels/<uuid:panel_id>/",
        views.panel_edit,
        name="dashboard-panel-edit",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/panels/<uuid:panel_id>/delete/",
        views.panel_delete,
        name="dashboard-panel-delete",
    ),
    path(
        "dashboards/<uuid:dashboard_id>/panels/<uuid:panel_id>.csv",
        views.panel_csv,
        name="dashboard-panel-csv",
    ),
]
