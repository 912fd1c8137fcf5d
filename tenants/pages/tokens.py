"""API tokens page: create, rotate and revoke; a new secret is shown once, on its own page.

Creating and rotating are POSTs that redirect (post/redirect/get) to /tokens/issued/, which
shows the new secrets once: they wait in the session, encrypted, until that page takes them out.
A reload of that page shows no secret again, and never re-sends the form.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.crypto import salted_hmac
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from tenants import audit, services
from tenants.accounts.views import unavailable
from tenants.forms import TokenForm
from tenants.models import ApiToken
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

# A secret not picked up within this time is dropped (e.g. the redirect never arrived).
ISSUED_TTL_SECONDS = 600
# What `secrets.token_urlsafe(16)` gives; anything else (NUL, a megabyte) never reaches the cache.
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _fernet() -> Fernet:
    # Sessions live in the database: the secrets in them are encrypted with a key derived from
    # SECRET_KEY, so a database dump never holds a usable token.
    key = salted_hmac("tenants.pages.tokens.issued", "fernet", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _session_key(request) -> str:
    return f"issued-tokens:{request.tenant.schema_name}"


def remember_issued(request, issued: Iterable[services.IssuedToken]) -> None:
    """Keep new secrets in the session until the one-time page shows them."""
    pending = _pending(request) + [
        {"id": str(item.token.public_id), "secret": item.secret} for item in issued
    ]
    sealed = _fernet().encrypt(json.dumps(pending).encode())
    request.session[_session_key(request)] = sealed.decode()


def _pending(request) -> list[dict[str, str]]:
    stored = request.session.get(_session_key(request))
    if not stored:
        return []
    try:
        return json.loads(_fernet().decrypt(stored.encode(), ttl=ISSUED_TTL_SECONDS))
    except (InvalidToken, ValueError):
        return []


def _take_issued(request) -> list[services.IssuedToken]:
    """The secrets waiting for this person in this tenant, removed from the session."""
    pending = _pending(request)
    request.session.pop(_session_key(request), None)
    found = ApiToken.objects.filter(
        tenant=request.tenant, public_id__in=[item["id"] for item in pending]
    ).in_bulk(field_name="public_id")
    by_id = {str(public_id): token for public_id, token in found.items()}
    return [
        services.IssuedToken(token=by_id[item["id"]], secret=item["secret"])
        for item in pending
        if item["id"] in by_id
    ]


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


@require_perm(Perm.MANAGE_TOKENS)
def tokens(request):
    if request.method != "POST":
        return _tokens_page(request, TokenForm())
    # A re-sent form (back button, double click) must create at most one token: each page load
    # carries a one-time nonce.
    nonce = request.POST.get("form_nonce", "")
    try:
        first_use = bool(_NONCE.fullmatch(nonce)) and cache.add(
            f"token-form:{nonce}", 1, timeout=24 * 3600
        )
    except RedisError:
        return unavailable(request, "Tokens cannot be created while the cache is down.")
    if not first_use:
        messages.info(request, "That form was already submitted; its token exists once.")
        return redirect("tokens")
    form = TokenForm(request.POST)
    issued = None
    try:
        issued = _create_token(request, form)
    finally:
        if issued is None:
            cache.delete(f"token-form:{nonce}")  # nothing was created: the form may be re-sent
    if issued is None:
        return _tokens_page(request, form)
    remember_issued(request, [issued])
    return redirect("token-issued")


def _create_token(request, form: TokenForm) -> services.IssuedToken | None:
    """The new token, or None with the reasons on `form`."""
    if not form.is_valid():
        return None
    try:
        return services.create_token(
            tenant=request.tenant,
            actor=audit.Actor.from_request(request),
            created_by=request.user,
            **form.cleaned_data,
        )
    except ValidationError as exc:
        form.add_service_errors(exc)
        return None


def _tokens_page(request, form: TokenForm) -> HttpResponse:
    context = {
        "tokens": services.tokens_of(request.tenant),
        "form": form,
        "form_nonce": secrets.token_urlsafe(16),
    }
    return render(request, "tenants/tokens.html", context, status=400 if form.errors else 200)


@require_perm(Perm.MANAGE_TOKENS)
@require_GET
def token_issued(request):
    """New secrets, once: a second visit finds nothing and goes back to the list."""
    issued = _take_issued(request)
    if not issued:
        return redirect("tokens")
    return _no_store(render(request, "tenants/token_issued.html", {"issued": issued}))


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
        # Also what a re-sent rotation gets: the old token is revoked by then.
        messages.error(request, "; ".join(exc.messages))
        return redirect("tokens")
    remember_issued(request, [issued])
    return redirect("token-issued")
