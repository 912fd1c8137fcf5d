"""The incident desk (arrives with the incidents issue)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_list(request):
    return render(request, "alerts/incidents.html")
