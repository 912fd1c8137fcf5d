"""Dashboard pages; views stay thin and write through `dashboards.services`."""

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from dashboards import services
from dashboards.models import Dashboard
from tenants import audit
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_list(request):
    if request.method == "POST":
        return _create_dashboard(request)
    return _list_page(request)


@require_perm(Perm.EDIT_DASHBOARDS)
def _create_dashboard(request):
    try:
        dashboard = services.create_dashboard(
            title=request.POST.get("title", ""),
            description=request.POST.get("description", ""),
            actor=audit.Actor.from_request(request),
        )
    except ValidationError as exc:
        return _list_page(request, errors=exc.message_dict)
    return redirect("dashboard-detail", dashboard_id=dashboard.public_id)


def _list_page(request, errors=None):
    context = {"dashboards": services.list_dashboards(), "errors": errors or {}}
    return render(request, "dashboards/list.html", context, status=400 if errors else 200)


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_detail(request, dashboard_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    return render(request, "dashboards/detail.html", {"dashboard": dashboard})
