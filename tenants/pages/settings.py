"""Tenant settings page."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from tenants import audit, services
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.MANAGE_SETTINGS)
def tenant_settings(request):
    errors = {}
    if request.method == "POST":
        try:
            services.rename_tenant(
                tenant=request.tenant,
                name=request.POST.get("name", ""),
                actor=audit.Actor.from_request(request),
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, "Settings saved.")
            return redirect("tenant-settings")
    context = {"errors": errors, "form": request.POST if errors else {}}
    return render(request, "tenants/settings.html", context, status=400 if errors else 200)
