"""Sign-in pages across hosts: the public tenant picker and the tenant host's hand-over."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from redis.exceptions import RedisError

from tenants.accounts import handoff
from tenants.links import tenant_url
from tenants.models import Membership
from tenants.slugs import schema_name_for


@login_required
@require_GET
def tenant_picker(request):
    memberships = (
        Membership.objects.filter(user=request.user, tenant__is_active=True)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    return render(request, "tenants/picker.html", {"memberships": memberships})


@login_required
@require_POST
def enter_tenant(request, slug: str):
    membership = (
        Membership.objects.filter(
            user=request.user, tenant__schema_name=schema_name_for(slug), tenant__is_active=True
        )
        .select_related("tenant")
        .first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of this tenant.")
    ticket = handoff.make_ticket(request.user, membership.tenant)
    return redirect(tenant_url(membership.tenant, f"/accounts/handoff/?ticket={ticket}"))


@require_http_methods(["GET", "POST"])
def redeem_handoff(request):
    ticket = request.POST.get("ticket") or request.GET.get("ticket", "")
    if request.method == "GET":
        user = handoff.ticket_user(ticket, request.tenant)
        if user is not None:
            context = {"ticket": ticket, "ticket_user": user}
            return render(request, "tenants/handoff.html", context)
    else:
        try:
            user = handoff.redeem_ticket(ticket, request.tenant)
        except RedisError:
            return unavailable(request, "Please sign in on this page directly for now.")
    if user is None:
        messages.error(
            request, "That sign-in link has expired or was already used. Please sign in."
        )
        return redirect("login")
    login(request, user, backend="tenants.accounts.backends.EmailBackend")
    return redirect("home")


def unavailable(request, hint: str):
    return render(request, "503.html", {"hint": hint}, status=503)
