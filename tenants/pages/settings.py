"""Tenant settings page: the display name (the slug and host never change)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from tenants import audit, services
from tenants.forms import TenantSettingsForm
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.MANAGE_SETTINGS)
def tenant_settings(request):
    if request.method != "POST":
        form = TenantSettingsForm(initial={"name": request.tenant.name})
    else:
        form = TenantSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.rename_tenant(
                    tenant=request.tenant,
                    actor=audit.Actor.from_request(request),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, "Settings saved.")
                return redirect("tenant-settings")
    status = 400 if form.errors else 200
    return render(request, "tenants/settings.html", {"form": form}, status=status)
