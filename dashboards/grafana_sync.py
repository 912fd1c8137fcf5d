"""Keep the dashboards a tenant pushes to Grafana in step with the portal, in its own folder.

A pass builds the model, makes sure the tenant's folder exists, saves the dashboard over what
Grafana holds (the portal's copy is the source), and records the outcome on `GrafanaPush`, which
the dashboard page shows. Passes are idempotent; a push that started before the dashboard
changed again leaves it pending, for the push that change queued. Callers run in the tenant's
schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from dashboards.grafana_export import folder_uid, grafana_dashboard
from dashboards.models import GrafanaPush
from portal.backends.base import BackendError
from portal.backends.grafana import GrafanaBackend
from portal.tasks import queue
from tenants.fanout import current_tenant

Status = GrafanaPush.Status
# A failed push is tried again by the reconciler after this, doubling per attempt, at most a day.
RETRY_AFTER = timedelta(minutes=1)
RETRY_AFTER_MAX = timedelta(days=1)


@dataclass(frozen=True)
class PushResult:
    status: str
    error: str = ""
    transient: bool = False


def _fail(push_id: int, *, started, message: str) -> None:
    with transaction.atomic():
        row = GrafanaPush.objects.select_for_update().filter(pk=push_id).first()
        if row is None or row.status == Status.REMOVING:
            return  # stopped meanwhile: the removal decides what happens next
        row.status = Status.FAILED
        row.error = message
        row.attempts += 1
        row.last_attempt_at = started
        row.save()


def push(dashboard_id) -> PushResult:
    """Push the dashboard (its public id) to Grafana if the tenant keeps it there."""
    row = GrafanaPush.objects.select_related("dashboard").filter(dashboard__public_id=dashboard_id)
    row = row.first()
    if row is None or row.status == Status.REMOVING:
        return PushResult("skipped")
    started = timezone.now()
    backend = GrafanaBackend()
    if not backend.configured:
        _fail(row.pk, started=started, message="Grafana is not connected (GRAFANA_URL is unset).")
        return PushResult(Status.FAILED, "Grafana is not connected.")
    dashboard = row.dashboard
    built = grafana_dashboard(
        dashboard,
        list(dashboard.panels.all()),
        schema=connection.schema_name,
        datasource_uid=settings.GRAFANA_DATASOURCE_UID,
    )
    tenant = current_tenant()
    try:
        with backend:
            folder = backend.ensure_folder(folder_uid(tenant), tenant.name)
            answer = backend.save_dashboard(
                built.model,
                folder_uid=str(folder.get("uid") or folder_uid(tenant)),
                message="Pushed from the monitoring portal",
            )
    except BackendError as exc:
        _fail(row.pk, started=started, message=str(exc))
        return PushResult(Status.FAILED, str(exc), transient=not exc.permanent)
    version = answer.get("version")
    url = answer.get("url")
    with transaction.atomic():
        row = GrafanaPush.objects.select_for_update().filter(pk=row.pk).first()
        if row is None or row.status == Status.REMOVING:
            return PushResult("skipped")
        stale = row.changed_at > started
        row.status = Status.PENDING if stale else Status.SYNCED
        row.title = dashboard.title
        row.error = ""
        row.attempts = 0
        row.last_attempt_at = started
        row.last_success_at = timezone.now()
        row.applied_hash = built.digest
        row.grafana_version = version if isinstance(version, int) and version >= 0 else None
        row.grafana_url = _grafana_link(url)
        row.skipped = built.skipped
        row.save()
    return PushResult(row.status)


def _grafana_link(path: object) -> str:
    """Grafana's link to the dashboard: only a path on Grafana itself is kept."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return ""
    return settings.GRAFANA_URL.rstrip("/") + path[:400]


def remove(push_id: int) -> PushResult:
    """Take a stopped (or deleted) dashboard out of Grafana, then forget it."""
    row = GrafanaPush.objects.filter(pk=push_id, status=Status.REMOVING).first()
    if row is None:
        return PushResult("skipped")
    started = timezone.now()
    backend = GrafanaBackend()
    if backend.configured:
        try:
            with backend:
                backend.delete_dashboard(row.grafana_uid)
        except BackendError as exc:
            GrafanaPush.objects.filter(pk=row.pk, status=Status.REMOVING).update(
                error=str(exc), attempts=row.attempts + 1, last_attempt_at=started
            )
            return PushResult(Status.REMOVING, str(exc), transient=not exc.permanent)
    # Without Grafana there is nothing to take out: it never got, or no longer has, this one.
    GrafanaPush.objects.filter(pk=row.pk, status=Status.REMOVING).delete()
    return PushResult("removed")


def due(now=None):
    """Rows the reconciler acts on: pending pushes, removals, failed pushes past their backoff."""
    now = now or timezone.now()
    rows = []
    for row in GrafanaPush.objects.filter(
        Q(status__in=[Status.PENDING, Status.FAILED, Status.REMOVING])
    ).select_related("dashboard"):
        if row.status == Status.FAILED and row.last_attempt_at is not None:
            wait = min(RETRY_AFTER * (2 ** min(row.attempts, 20)), RETRY_AFTER_MAX)
            if row.last_attempt_at + wait > now:
                continue
        rows.append(row)
    return rows


def request_on_commit(*, dashboard_id=None, push_id=None) -> None:
    """Queue a push (or a removal) once the transaction commits; the reconciler catches what
    the queue loses."""
    schema = connection.schema_name

    def request() -> None:
        from dashboards import tasks

        # If the broker is down, the row still says what is owed: the reconciler queues it.
        with schema_context(schema):
            if push_id is not None:
                queue(tasks.remove_from_grafana, push_id, what="a Grafana removal")
            else:
                queue(tasks.push_to_grafana, str(dashboard_id), what="a Grafana push")

    transaction.on_commit(request)
