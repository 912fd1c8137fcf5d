"""Writes to dashboards, each with its audit event. Callers run inside the tenant's schema.

Callers pass values `dashboards.forms.DashboardForm` has cleaned; they are checked again here,
since the admin and commands call these services too.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from dashboards.forms import DESCRIPTION_MAX, TITLE_MAX
from dashboards.models import Dashboard
from tenants import audit
from tenants.forms import check_text


def _checked(name: str, value: str, *, max_length: int, multiline: bool = False) -> str:
    try:
        return check_text(value or "", max_length=max_length, multiline=multiline)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}) from None


def _clean_title(title: str) -> str:
    title = _checked("title", title, max_length=TITLE_MAX)
    if not title:
        raise ValidationError({"title": ["This field is required."]})
    return title


def _clean_description(description: str) -> str:
    return _checked("description", description, max_length=DESCRIPTION_MAX, multiline=True)


@transaction.atomic
def create_dashboard(*, title: str, description: str = "", actor: audit.Actor) -> Dashboard:
    dashboard = Dashboard.objects.create(
        title=_clean_title(title), description=_clean_description(description)
    )
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
        dashboard.description = _clean_description(description)
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
