"""Pages of the tenants app: sign-in, tenant picker, tenant home, members, tokens, audit trail."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from redis.exceptions import RedisError

from tenants import audit, handoff, services
from tenants.decorators import require_perm
from tenants.links import tenant_url
from tenants.models import ApiToken, Membership
from tenants.roles import Perm, Role, TokenScope
from tenants.slugs import schema_name_for
from tenants.summary import current_summary, worker_last_seen

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
            user=request.user, tenant__schema_name=schema_name_for(slug), tenant__is_active=True
        )
        .select_related("tenant")
        .first()
    )
    if membership is None:
        raise PermissionDenied("You are not a member of this tenant.")
    ticket = handoff.make_ticket(request.user, membership.tenant)
    return redirect(tenant_url(membership.tenant, f"/accounts/handoff/?ticket={ticket}"))


def _unavailable(request, hint: str):
    return render(request, "503.html", {"hint": hint}, status=503)


def healthz(request):
    return JsonResponse({"status": "ok"})


# ---- tenant site -------------------------------------------------------------------------------


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
            return _unavailable(request, "Please sign in on this page directly for now.")
    if user is None:
        messages.error(
            request, "That sign-in link has expired or was already used. Please sign in."
        )
        return redirect("login")
    login(request, user, backend="tenants.auth_backends.EmailBackend")
    return redirect("home")


@require_GET
def home(request):
    context = {
        "summary": current_summary(request.tenant),
        "worker_heartbeat": worker_last_seen(),
        "backends": _backend_status(),
    }
    return render(request, "tenants/home.html", context)


def _backend_status() -> list[dict]:
    return [
        {"name": "Prometheus", "url": settings.PROMETHEUS_URL},
        {"name": "Alertmanager", "url": settings.ALERTMANAGER_URL},
        {"name": "Grafana", "url": settings.GRAFANA_URL},
    ]


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


@require_perm(Perm.MANAGE_TOKENS)
def tokens(request):
    issued = None
    errors = {}
    if request.method == "POST":
        # Reloading the page that shows a new secret re-sends the form; the nonce makes sure one
        # form creates at most one token (the secret is never stored to be shown again).
        nonce = request.POST.get("form_nonce", "")
        try:
            first_use = bool(nonce) and cache.add(f"token-form:{nonce}", 1, timeout=24 * 3600)
        except RedisError:
            return _unavailable(request, "Tokens cannot be created while the cache is down.")
        if not first_use:
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
        except Exception as exc:
            cache.delete(f"token-form:{nonce}")  # nothing was created: the form may be re-sent
            if not isinstance(exc, ValidationError):
                raise
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
        limit = int(request.GET.get("limit", 200))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return HttpResponseBadRequest("limit: must be a whole number from 1 to 1000")
    filters = {key: request.GET.get(key, "").strip()[:100] for key in ("action", "actor", "text")}
    events = audit.events_for(request.tenant, **filters)[:limit]
    return render(request, "tenants/audit.html", {"events": events, "filters": filters})


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
