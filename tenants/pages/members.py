"""Members page: invite, change role, remove, send the invitation again."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants import audit, services
from tenants.models import Membership
from tenants.pages.decorators import require_perm
from tenants.roles import Perm, Role


@require_perm(Perm.MANAGE_MEMBERS)
def members(request):
    tenant = request.tenant
    errors = {}
    if request.method == "POST":
        try:
            membership = services.add_member(
                tenant=tenant,
                email=request.POST.get("email", ""),
                role=request.POST.get("role", ""),
                actor=audit.Actor.from_request(request),
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, f"{membership.user.email} added and told by e-mail.")
            return redirect("members")
    memberships = Membership.objects.filter(tenant=tenant).select_related("user")
    status = 400 if errors else 200
    return render(
        request,
        "tenants/members.html",
        {
            "memberships": memberships,
            "roles": Role.choices,
            "errors": errors,
            "form": request.POST if errors else {},
        },
        status=status,
    )


def _member_action(request, change, success) -> HttpResponse:
    """Run one membership service call for the members page: 404 for a member of no tenant of
    ours, the service's refusal as a message, and back to the list either way."""
    try:
        membership = change()
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, success(membership))
    return redirect("members")


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_change_role(request, membership_id):
    return _member_action(
        request,
        lambda: services.change_role(
            tenant=request.tenant,
            membership_id=membership_id,
            role=request.POST.get("role", ""),
            actor=audit.Actor.from_request(request),
        ),
        lambda membership: f"{membership.user.email} is now {membership.get_role_display()}.",
    )


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_remove(request, membership_id):
    return _member_action(
        request,
        lambda: services.remove_member(
            tenant=request.tenant,
            membership_id=membership_id,
            actor=audit.Actor.from_request(request),
        ),
        lambda membership: f"{membership.user.email} removed.",
    )


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_resend_invitation(request, membership_id):
    return _member_action(
        request,
        lambda: services.resend_invitation(
            tenant=request.tenant,
            membership_id=membership_id,
            actor=audit.Actor.from_request(request),
        ),
        lambda membership: f"Invitation sent again to {membership.user.email}.",
    )
