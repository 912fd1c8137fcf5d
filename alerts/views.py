"""Alerting pages. Rules, receivers and incidents arrive with the alerting issues."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.VIEW_ALERTS)
@require_GET
def rule_list(request):
    return render(request, "alerts/rules.html")


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_list(request):
    return render(request, "alerts/incidents.html")
