"""The two-factor part of the profile page: set up an authenticator app, confirm it, remove it.

The profile's forms say which one they are in a `form` field; `handle` takes those of two-factor
sign-in and answers with a redirect, or with the bound form to show again with its errors.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp import login as otp_login

from tenants import audit
from tenants.accounts import services, two_factor
from tenants.accounts.forms import CodeForm, SignInCodeForm
from tenants.models import Membership

BEGIN = "two_factor_begin"
CONFIRM = "two_factor_confirm"
CANCEL = "two_factor_cancel"
REMOVE = "two_factor_remove"
RECOVERY = "two_factor_recovery"
FORMS = (BEGIN, CONFIRM, CANCEL, REMOVE, RECOVERY)
# New recovery codes wait here for the one page that shows them.
_NEW_CODES_KEY = "two_factor_new_recovery_codes"


def _back(request) -> HttpResponse:
    return redirect(reverse("profile") + "#two-factor")


def _code_form(data=None, *, name: str) -> CodeForm | SignInCodeForm:
    # Two code forms can be on one page: distinct ids, same field name. Removing takes a
    # recovery code too (the phone is lost); confirming a new app takes the app's code only.
    form_class = SignInCodeForm if name == REMOVE else CodeForm
    return form_class(data, auto_id=f"id_{name}_%s")


def handle(request, which: str) -> HttpResponse | dict[str, CodeForm]:
    """Carry out one of `FORMS` posted by the signed-in person."""
    user, actor = request.user, audit.Actor.from_request(request)
    if which == BEGIN:
        try:
            services.begin_two_factor(user=user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return _back(request)
    if which == CANCEL:
        services.discard_unconfirmed_two_factor(user=user)
        return _back(request)
    if which == RECOVERY:
        if not two_factor.is_verified(request):
            messages.error(request, "Verify this session with a code first.")
            return _back(request)
        try:
            codes = services.create_recovery_codes(user=user, actor=actor)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            request.session[_NEW_CODES_KEY] = codes
        return redirect(reverse("profile") + "#recovery-codes")
    form = _code_form(request.POST, name=which)
    if which == REMOVE and two_factor.locked_out(request, user):
        # Guessing codes here counts towards the sign-in lockout; django-axes answers.
        return {which: form}
    if not form.is_valid():
        return {which: form}
    try:
        if which == CONFIRM:
            device = services.confirm_two_factor(
                user=user, code=form.cleaned_data["code"], actor=actor
            )
        else:
            services.remove_two_factor(user=user, code=form.cleaned_data["code"], actor=actor)
    except ValidationError as exc:
        errors = getattr(exc, "error_dict", {}).get("code", [])
        wrong = any(e.code == services.WRONG_CODE for e in errors)
        if wrong and which == REMOVE:
            two_factor.count_failure(request, user)
        for message in exc.messages:
            form.add_error("code", message)
        return {which: form}
    if which == CONFIRM:
        # The person has just shown they hold the app: this session counts as verified.
        request.session.cycle_key()
        otp_login(request, device)
        messages.success(request, "Two-factor sign-in is on: signing in now also asks for a code.")
    else:
        # django-otp would notice on the next request; this session is not verified any more.
        request.session.pop(DEVICE_ID_SESSION_KEY, None)
        messages.success(request, "Your authenticator app was removed.")
    return _back(request)


def context(request, forms: dict[str, CodeForm]) -> dict:
    """What the profile's two-factor section shows."""
    user = request.user
    device = two_factor.confirmed_device(user)
    waiting = None if device else two_factor.unconfirmed_device(user)
    recovery = two_factor.recovery_device(user) if device else None
    requiring = Membership.objects.filter(
        user=user, tenant__is_active=True, tenant__require_two_factor=True
    )
    required_by = list(requiring.order_by("tenant__name").values_list("tenant__name", flat=True))
    return {
        "two_factor_device": device,
        "two_factor_setup": (
            {"qr": two_factor.qr_svg(waiting), "secret": two_factor.secret_text(waiting)}
            if waiting
            else None
        ),
        "two_factor_verified": two_factor.is_verified(request),
        "two_factor_required_by": required_by,
        "confirm_form": forms.get(CONFIRM) or _code_form(name=CONFIRM),
        "remove_form": forms.get(REMOVE) or _code_form(name=REMOVE),
        "verify_url": reverse("login") + "?step=code&next=" + reverse("profile"),
        "recovery_left": recovery.token_set.count() if recovery else 0,
        "recovery_made": recovery is not None,
        "recovery_total": two_factor.RECOVERY_COUNT,
        # Shown on this one page, then gone: only their hashes are kept.
        "recovery_codes_new": request.session.pop(_NEW_CODES_KEY, None) if device else None,
    }
