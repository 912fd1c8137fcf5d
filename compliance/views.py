"""Compliance pages. The framework catalog and assessments arrive with the compliance issues."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.pages.decorators import require_perm
from tenants.roles import Perm

FRAMEWORKS = ["ISO 27001", "SOC 2", "GDPR / CCPA", "PCI DSS", "HIPAA"]


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def overview(request):
    return render(request, "compliance/overview.html", {"frameworks": FRAMEWORKS})
