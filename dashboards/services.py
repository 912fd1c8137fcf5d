"""Writes to dashboards, each with its audit event. Callers run inside the tenant's schema."""

from django.core.exceptions import ValidationError
from django.db import transaction

from dashboards.models import Dashboard
from tenants import audit


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise ValidationError({"title": ["A title of 1 to 200 characters is required."]})
    return title


@transaction.atomic
def create_dashboard(*, title: str, description: str = "", actor: audit.Actor) -> Dashboard:
    dashboard = Dashboard.objects.create(title=_clean_title(title), description=description or "")
    audit.record(
        actor=actor,
        action="dashboard.created",
        obj=dashboard,
        after={"title": dashboard.title, "description": dashboard.description},
    )
    return dashboard


@transaction.atomic
def update_dashboard(
    *,
    dashboard_id,
    title: str | None = None,
    description: str | None = None,
    actor: audit.Actor,
) -> Dashboard:
    dashboard = Dashboard.objects.select_for_update().get(public_id=dashboard_id)
    before = {"title": dashboard.title, "description": dashboard.description}
    if title is not None:
        dashboard.title = _clean_title(title)
    if description is not None:
        dashboard.description = description
    after = {"title": dashboard.title, "description": dashboard.description}
    if after == before:
        return dashboard  # nothing changed: nothing to record
    dashboard.save()
    audit.record(
        actor=actor,
        action="dashboard.updated",
        obj=dashboard,
        before=before,
        after=after,
    )
    return dashboard


def list_dashboards():
    return Dashboard.objects.all()
