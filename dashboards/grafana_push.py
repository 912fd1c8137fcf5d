"""Keeping a dashboard in Grafana: start, stop, push again, and what every change must do.

Verbs as in `dashboards.services`: keyword-only actor, atomic, audited in the same transaction,
errors keyed by field (`grafana`). The push itself happens after commit, in a task
(`dashboards.grafana_sync`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dashboards import grafana_sync
from dashboards.actions import AuditAction
from dashboards.grafana_export import dashboard_uid
from dashboards.models import Dashboard, GrafanaPush
from portal.backends.grafana import GrafanaBackend
from tenants import audit

Status = GrafanaPush.Status


def state_of(dashboard: Dashboard) -> GrafanaPush | None:
    """Where the dashboard stands in Grafana; None if the tenant does not keep it there."""
    return GrafanaPush.objects.filter(dashboard=dashboard).exclude(status=Status.REMOVING).first()


def dashboard_changed(dashboard: Dashboard) -> None:
    """Called inside every write that changes what Grafana shows: push it again after commit."""
    updated = (
        GrafanaPush.objects.filter(dashboard=dashboard)
        .exclude(status=Status.REMOVING)
        .update(status=Status.PENDING, changed_at=timezone.now(), title=dashboard.title)
    )
    if updated:
        grafana_sync.request_on_commit(dashboard_id=dashboard.public_id)


def dashboard_deleting(dashboard: Dashboard) -> None:
    """Called inside `delete_dashboard`: Grafana's copy goes too, after commit."""
    row = GrafanaPush.objects.select_for_update().filter(dashboard=dashboard).first()
    if row is not None:
        _to_removal(row)


def _to_removal(row: GrafanaPush) -> None:
    row.status = Status.REMOVING
    row.dashboard = None
    row.error = ""
    row.attempts = 0
    row.save()
    grafana_sync.request_on_commit(push_id=row.pk)


@transaction.atomic
def start_push(*, dashboard_id, actor: audit.Actor) -> GrafanaPush:
    """Keep the dashboard in the tenant's Grafana folder from now on; pushed after commit."""
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    if not GrafanaBackend().configured:
        raise ValidationError(
            {"grafana": ["Grafana is not connected: the platform sets GRAFANA_URL and its token."]}
        )
    uid = dashboard_uid(dashboard.public_id)
    # One row per uid: kept (pushed already), or a removal still owed, taken back by this push.
    row = GrafanaPush.objects.select_for_update().filter(grafana_uid=uid).first()
    if row is not None and row.status != Status.REMOVING:
        raise ValidationError({"grafana": ["This dashboard is already pushed to Grafana."]})
    if row is None:
        row = GrafanaPush(grafana_uid=uid)
    now = timezone.now()
    row.dashboard = dashboard
    row.title = dashboard.title
    row.status = Status.PENDING
    row.changed_at = now
    row.error = ""
    row.attempts = 0
    row.save()
    audit.record(
        actor=actor,
        action=AuditAction.GRAFANA_PUSH_STARTED,
        obj=dashboard,
        after={"grafana_uid": uid, "title": dashboard.title},
    )
    grafana_sync.request_on_commit(dashboard_id=dashboard.public_id)
    return row


def _pushed(dashboard_id) -> tuple[Dashboard, GrafanaPush]:
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    row = (
        GrafanaPush.objects.select_for_update()
        .filter(dashboard=dashboard)
        .exclude(status=Status.REMOVING)
        .first()
    )
    if row is None:
        raise ValidationError({"grafana": ["This dashboard is not pushed to Grafana."]})
    return dashboard, row


@transaction.atomic
def push_again(*, dashboard_id, actor: audit.Actor) -> GrafanaPush:
    """Push now, without waiting for the failed push's backoff."""
    dashboard, row = _pushed(dashboard_id)
    row.status = Status.PENDING
    row.changed_at = timezone.now()
    row.save(update_fields=["status", "changed_at"])
    audit.record(
        actor=actor,
        action=AuditAction.GRAFANA_PUSH_RETRIED,
        obj=dashboard,
        before={"error": row.error} if row.error else None,
    )
    grafana_sync.request_on_commit(dashboard_id=dashboard.public_id)
    return row


@transaction.atomic
def stop_push(*, dashboard_id, actor: audit.Actor) -> None:
    """Stop keeping the dashboard in Grafana and take Grafana's copy out (after commit)."""
    dashboard, row = _pushed(dashboard_id)
    audit.record(
        actor=actor,
        action=AuditAction.GRAFANA_PUSH_STOPPED,
        obj=dashboard,
        before={"grafana_uid": row.grafana_uid, "status": row.status},
    )
    _to_removal(row)
