"""Dashboard pages; views stay thin and write through `dashboards.services`."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from dashboards import services
from dashboards.forms import DashboardForm
from dashboards.models import Dashboard
from tenants import audit
from tenants.access import request_access
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


def _require_edit(request) -> None:
    if not request_access(request).can(Perm.EDIT_DASHBOARDS):
        raise PermissionDenied(f"Your role does not allow this ({Perm.EDIT_DASHBOARDS}).")


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_list(request):
    form = DashboardForm()
    if request.method == "POST":
        _require_edit(request)
        form = DashboardForm(request.POST)
        if form.is_valid():
            try:
                dashboard = services.create_dashboard(
                    actor=audit.Actor.from_request(request), **form.cleaned_data
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    context = {"dashboards": services.list_dashboards(), "form": form}
    return render(request, "dashboards/list.html", context, status=400 if form.errors else 200)


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_detail(request, dashboard_id):
    """The dashboard; its editors change the title and description here too."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    initial = {"title": dashboard.title, "description": dashboard.description}
    form = DashboardForm(initial=initial)
    if request.method == "POST":
        _require_edit(request)
        form = DashboardForm(request.POST, initial=initial)
        if form.is_valid():
            try:
                services.update_dashboard(
                    dashboard_id=dashboard.public_id,
                    actor=audit.Actor.from_request(request),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, "Dashboard saved.")
                return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    context = {"dashboard": dashboard, "form": form}
    return render(request, "dashboards/detail.html", context, status=400 if form.errors else 200)
