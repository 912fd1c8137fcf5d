"""The audit actions of the dashboards app."""

from __future__ import annotations

from enum import StrEnum

from tenants import audit


@audit.register_actions
class AuditAction(StrEnum):
    """What `dashboards` records; the values are what the trail stores and filters on."""

    DASHBOARD_CREATED = "dashboard.created"
    DASHBOARD_UPDATED = "dashboard.updated"
