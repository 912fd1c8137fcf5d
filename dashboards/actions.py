"""The audit actions of the dashboards app."""

from __future__ import annotations

from enum import StrEnum

from tenants import audit


@audit.register_actions
class AuditAction(StrEnum):
    """What `dashboards` records; the values are what the trail stores and filters on."""

    DASHBOARD_CREATED = "dashboard.created"
    DASHBOARD_UPDATED = "dashboard.updated"
    DASHBOARD_DELETED = "dashboard.deleted"
    DASHBOARD_ARRANGED = "dashboard.arranged"
    DASHBOARD_IMPORTED = "dashboard.imported"
    GRAFANA_PUSH_STARTED = "dashboard.grafana_push_started"
    GRAFANA_PUSH_STOPPED = "dashboard.grafana_push_stopped"
    GRAFANA_PUSH_RETRIED = "dashboard.grafana_push_retried"
    PANEL_CREATED = "dashboard.panel_created"
    PANEL_UPDATED = "dashboard.panel_updated"
    PANEL_DELETED = "dashboard.panel_deleted"
    METRIC_CREATED = "metric.created"
    METRIC_UPDATED = "metric.updated"
    METRIC_DELETED = "metric.deleted"
    METRIC_SETTINGS_UPDATED = "metric.settings_updated"
