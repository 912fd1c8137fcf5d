"""API tokens page: create (secret shown once), revoke, rotate."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from tenants import audit, services
from tenants.accounts.views import unavailable
from tenants.models import ApiToken
from tenants.pages.decorators import require_perm
from tenants.roles import Perm, TokenScope


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
            return unavailable(request, "Tokens cannot be created while the cache is down.")
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
