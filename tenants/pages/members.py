"""Members page: invite, change role, send the invitation again, and remove (with their tokens).

What the page shows about a person is what this tenant controls: their e-mail, their role here
and whether they have signed in here yet. Nothing comes from the account's other tenants.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from tenants import audit, services
from tenants.forms import ChangeRoleForm, InviteMemberForm, MemberRemovalForm
from tenants.models import Membership
from tenants.pages.decorators import require_perm
from tenants.pages.tokens import remember_issued
from tenants.roles import Perm, Role


@require_perm(Perm.MANAGE_MEMBERS)
def members(request):
    form = InviteMemberForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            membership = services.add_member(
                tenant=request.tenant, actor=audit.Actor.from_request(request), **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            # The same words whether the address is new or has an account elsewhere.
            messages.success(request, f"{membership.user.email} added and told by e-mail.")
            return redirect("members")
    return _members_page(request, invite_form=form)


def _members_page(request, *, invite_form=None, refused: list[str] | None = None):
    """The members list and the invite form; 400 when a form or an action was refused."""
    invite_form = invite_form or InviteMemberForm()
    memberships = Membership.objects.filter(tenant=request.tenant).select_related("user")
    status = 400 if invite_form.errors or refused else 200
    context = {
        "memberships": memberships,
        "roles": Role.choices,
        "form": invite_form,
        "refused": refused or [],
    }
    return render(request, "tenants/members.html", context, status=status)


def _membership(request, membership_id) -> Membership:
    try:
        return Membership.objects.select_related("user").get(
            tenant=request.tenant, public_id=membership_id
        )
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None


def _member_action(request, change, success) -> HttpResponse:
    """Run one membership service call: 404 for a member of no tenant of ours, the service's
    refusal on the members page (400), else back to the list with a confirmation."""
    try:
        membership = change()
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None
    except ValidationError as exc:
        return _members_page(request, refused=exc.messages)
    messages.success(request, success(membership))
    return redirect("members")


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_change_role(request, membership_id):
    form = ChangeRoleForm(request.POST)
    if not form.is_valid():
        _membership(request, membership_id)  # another tenant's member stays a 404
        return _members_page(request, refused=form.labelled_errors())
    return _member_action(
        request,
        lambda: services.change_role(
            tenant=request.tenant,
            membership_id=membership_id,
            role=form.cleaned_data["role"],
            actor=audit.Actor.from_request(request),
        ),
        lambda membership: f"{membership.user.email} is now {membership.get_role_display()}.",
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


@require_perm(Perm.MANAGE_MEMBERS)
@require_http_methods(["GET", "POST"])
def member_remove(request, membership_id):
    """GET: what removing this member means for the tokens they created. POST: do it."""
    membership = _membership(request, membership_id)
    tokens = list(services.live_tokens_created_by(request.tenant, membership.user))
    form = MemberRemovalForm(request.POST if request.method == "POST" else None, tokens=tokens)
    if form.is_bound and form.is_valid():
        try:
            removal = services.remove_member(
                tenant=request.tenant,
                membership_id=membership.public_id,
                actor=audit.Actor.from_request(request),
                created_by=request.user,
                **form.cleaned_data,
            )
        except Membership.DoesNotExist:
            raise Http404("No such member.") from None
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            return _removed(request, removal)
    context = {
        "membership": membership,
        "tokens": tokens,
        "form": form,
        "last_admin": _is_last_admin(request.tenant, membership),
    }
    status = 400 if form.errors else 200
    return render(request, "tenants/member_remove.html", context, status=status)


def _removed(request, removal: services.MemberRemoval) -> HttpResponse:
    email = removal.membership.user.email
    parts = [f"{email} removed."]
    if removal.revoked:
        parts.append(f"Revoked: {', '.join(token.name for token in removal.revoked)}.")
    if removal.rotated:
        parts.append(f"Rotated: {', '.join(issued.token.name for issued in removal.rotated)}.")
    messages.success(request, " ".join(parts))
    if removal.rotated:
        # The new secrets are shown once, on the page for new secrets.
        remember_issued(request, removal.rotated)
        return redirect("token-issued")
    return redirect("members")


def _is_last_admin(tenant, membership: Membership) -> bool:
    try:
        services.ensure_an_admin_remains(tenant, membership)
    except ValidationError:
        return True
    return False
