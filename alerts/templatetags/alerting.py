"""Template tags for other pages that show where alerting stands (the tenant home)."""

from __future__ import annotations

from django import template

from alerts.models import SyncState
from alerts.views.common import SyncView, sync_view

register = template.Library()


@register.simple_tag
def alerting_sync() -> dict[str, SyncView]:
    """{backend name as the status rows show it: that backend's sync state for this tenant}."""
    return {
        "Prometheus": sync_view(SyncState.Target.PROMETHEUS_RULES),
        "Alertmanager": sync_view(SyncState.Target.ALERTMANAGER),
    }
