"""Tenant settings page: the display name (the slug and host never change), and whether members
must sign in with a second factor."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from tenants import audit, services
from tenants.accounts import two_factor
from tenants.forms import TenantSettingsForm, TwoFactorRequirementForm
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

TWO_FACTOR_FORM = "two_factor"


@require_perm(Perm.MANAGE_SETTINGS)
def tenant_settings(request):
    form = TenantSettingsForm(initial={"name": request.tenant.name})
    two_factor_form = TwoFactorRequirementForm()
    if request.method == "POST" and request.POST.get("form") == TWO_FACTOR_FORM:
        two_factor_form = TwoFactorRequirementForm(request.POST)
        if two_factor_form.is_valid():
            required = two_factor_form.cleaned_data["require_two_factor"]
            try:
                services.set_two_factor_requirement(
                    tenant=request.tenant,
                    required=required,
                    actor=audit.Actor.from_request(request),
                    actor_verified=two_factor.is_verified(request),
                )
            except ValidationError as exc:
                two_factor_form.add_service_errors(exc)
            else:
                messages.success(
                    request,
                    "Two-factor sign-in is now required."
                    if required
                    else "Two-factor sign-in is no longer required.",
                )
                return redirect("tenant-settings")
    elif request.method == "POST":
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
    without_app, members = two_factor.members_without_app(request.tenant)
    context = {
        "form": form,
        "two_factor_form": two_factor_form,
        "two_factor_form_name": TWO_FACTOR_FORM,
        "members": members,
        "members_without_app": without_app,
        "you_verified": two_factor.is_verified(request),
        "you_have_app": two_factor.has_device(request.user),
    }
    status = 400 if form.errors or two_factor_form.errors else 200
    return render(request, "tenants/settings.html", context, status=status)
