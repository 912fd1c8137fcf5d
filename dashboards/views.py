"""Dashboard pages; views stay thin and write through `dashboards.services`."""

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from dashboards import services
from dashboards.models import Dashboard
from tenants import audit
from tenants.decorators import require_perm
from tenants.roles import Perm, request_access


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_list(request):
    errors = {}
    if request.method == "POST":
        if not request_access(request).can(Perm.EDIT_DASHBOARDS):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Your role cannot create dashboards.")
        try:
            dashboard = services.create_dashboard(
                title=request.POST.get("title", ""),
                description=request.POST.get("description", ""),
                actor=audit.Actor.from_request(request),
            )
            return redirect("dashboard-detail", dashboard_id=dashboard.public_id)
        except ValidationError as exc:
            errors = exc.message_dict
    return render(
        request,
        "dashboards/list.html",
        {"dashboards": services.list_dashboards(), "errors": errors},
        status=400 if errors else 200,
    )


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_detail(request, dashboard_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    return render(request, "dashboards/detail.html", {"dashboard": dashboard})
