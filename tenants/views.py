"""Pages of the tenants app: sign-in, tenant picker, tenant home, members, tokens, audit trail."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_tenants.utils import get_public_schema_name, schema_context

from tenants import audit, handoff, services
from tenants.decorators import require_perm
from tenants.links import public_url, tenant_url
from tenants.models import ApiToken, Membership
from tenants.roles import Perm, Role, TokenScope
from tenants.summary import SUMMARY_CACHE_KEY, compute_summary
from tenants.tasks import WORKER_HEARTBEAT_KEY

# ---- public site -------------------------------------------------------------------------------


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
            user=request.user, tenant__schema_name=slug, tenant__is_active=True
        )
        .select_related("tenant")
        .first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of this tenant.")
    ticket = handoff.make_ticket(request.user, membership.tenant)
    return redirect(tenant_url(membership.tenant, f"/accounts/handoff/?ticket={ticket}"))


def healthz(request):
    return JsonResponse({"status": "ok"})


# ---- tenant site -------------------------------------------------------------------------------


@require_GET
def redeem_handoff(request):
    user = handoff.redeem_ticket(request.GET.get("ticket", ""), request.tenant)
    if user is None:
        messages.error(
            request, "That sign-in link has expired or was already used. Please sign in."
        )
        return redirect("login")
    login(request, user, backend="tenants.auth_backends.EmailBackend")
    return redirect("home")


@require_GET
def home(request):
    tenant = request.tenant
    summary = cache.get(SUMMARY_CACHE_KEY)
    if summary is None:
        summary = compute_summary(tenant)
        cache.set(SUMMARY_CACHE_KEY, summary, timeout=60)
    with schema_context(get_public_schema_name()):
        heartbeat = cache.get(WORKER_HEARTBEAT_KEY)
    if heartbeat:
        heartbeat = datetime.fromisoformat(heartbeat)
    return render(
        request,
        "tenants/home.html",
        {"summary": summary, "worker_heartbeat": heartbeat, "backends": _backend_status()},
    )


def _backend_status() -> list[dict]:
    return [
        {"name": "Prometheus", "url": settings.PROMETHEUS_URL},
        {"name": "Alertmanager", "url": settings.ALERTMANAGER_URL},
        {"name": "Grafana", "url": settings.GRAFANA_URL},
    ]


@require_perm(Perm.MANAGE_MEMBERS)
def members(request):
    tenant = request.tenant
    invitation = None
    errors = {}
    if request.method == "POST":
        try:
            invitation = services.add_member(
                tenant=tenant,
                email=request.POST.get("email", ""),
                role=request.POST.get("role", ""),
                actor=audit.Actor.from_request(request),
            )
            messages.success(request, f"{invitation.membership.user.email} added.")
        except ValidationError as exc:
            errors = exc.message_dict
    memberships = Membership.objects.filter(tenant=tenant).select_related("user")
    status = 400 if errors else 200
    invite_url = (
        public_url(invitation.set_password_path)
        if invitation and invitation.set_password_path
        else None
    )
    return render(
        request,
        "tenants/members.html",
        {
            "memberships": memberships,
            "roles": Role.choices,
            "errors": errors,
            "invite_url": invite_url,
            "form": request.POST if errors else {},
        },
        status=status,
    )


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_change_role(request, membership_id):
    try:
        services.change_role(
            tenant=request.tenant,
            membership_id=membership_id,
            role=request.POST.get("role", ""),
            actor=audit.Actor.from_request(request),
        )
        messages.success(request, "Role changed.")
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("members")


@require_perm(Perm.MANAGE_MEMBERS)
@require_POST
def member_remove(request, membership_id):
    try:
        services.remove_member(
            tenant=request.tenant,
            membership_id=membership_id,
            actor=audit.Actor.from_request(request),
        )
        messages.success(request, "Member removed.")
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("members")


@require_perm(Perm.MANAGE_TOKENS)
def tokens(request):
    issued = None
    errors = {}
    if request.method == "POST":
        # Reloading the page that shows a new secret re-sends the form; the nonce makes sure one
        # form creates at most one token (the secret is never stored to be shown again).
        nonce = request.POST.get("form_nonce", "")
        if not nonce or not cache.add(f"token-form:{nonce}", 1, timeout=24 * 3600):
            messages.info(request, "That form was already submitted; its token exists once.")
            return redirect("tokens")
        try:
            issued = services.create_token(
                tenant=request.tenant,
                name=request.POST.get("name", ""),
                scopes=request.POST.getlist("scopes"),
                actor=audit.Actor.from_request(request),
                created_by=request.user,
            )
        except ValidationError as exc:
            cache.delete(f"token-form:{nonce}")  # nothing was created: the form may be re-sent
            errors = exc.message_dict
    return _tokens_page(request, issued=issued, errors=errors)


def _tokens_page(request, *, issued=None, errors=None):
    errors = errors or {}
    response = render(
        request,
        "tenants/tokens.html",
        {
            "tokens": ApiToken.objects.filter(tenant=request.tenant).select_related("created_by"),
            "scopes": TokenScope.choices,
            "issued": issued,
            "errors": errors,
            "form": request.POST if errors else {},
            "form_nonce": secrets.token_urlsafe(16),
        },
        status=400 if errors else 200,
    )
    # The secret is on this page once: keep it out of every cache.
    response["Cache-Control"] = "no-store"
    return response


@require_perm(Perm.MANAGE_TOKENS)
@require_POST
def token_revoke(request, token_id):
    try:
        token = services.revoke_token(
            tenant=request.tenant, token_id=token_id, actor=audit.Actor.from_request(request)
        )
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("tokens")


@require_perm(Perm.VIEW_AUDIT)
@require_GET
def audit_trail(request):
    try:
        limit = min(int(request.GET.get("limit", 200)), 1000)
    except ValueError:
        return HttpResponseBadRequest("limit: must be a whole number")
    events = audit.events_for(request.tenant)[:limit]
    return render(request, "tenants/audit.html", {"events": events})


@require_perm(Perm.MANAGE_TOKENS)
@require_POST
def token_rotate(request, token_id):
    try:
        issued = services.rotate_token(
            tenant=request.tenant,
            token_id=token_id,
            actor=audit.Actor.from_request(request),
            created_by=request.user,
        )
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    except ValidationError as exc:
        # Also what a reload of the result page gets: the old token is revoked by then.
        messages.error(request, "; ".join(exc.messages))
        return redirect("tokens")
    return _tokens_page(request, issued=issued)
