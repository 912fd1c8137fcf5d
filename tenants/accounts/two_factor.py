"""Two-factor sign-in: one authenticator app (TOTP, django-otp) per person, and verified sessions.

A person enrols by scanning a QR code (or typing the secret) into an authenticator app and
confirming with a current code; only a confirmed app counts. From then on signing in takes the
password and then a code (`tenants.accounts.views.SignInView`); the session is then verified
(django-otp keeps the app's id in the session). A session that is not verified (one begun before
the person enrolled, say) can be verified later with a code at the same step.

Recovery codes (a django-otp static device) stand in for the app when the phone is lost: ten
single-use codes, shown once; the database keeps only a keyed hash of each, so reading it gives
no code. They sign in and remove the app, never replace its confirmation.

Devices live in the public schema: people are platform-wide, and one app serves every tenant
they belong to. Wrong codes count towards the same lockout as wrong passwords (django-axes, per
account and client address); django-otp's own back-off per app applies on top.
"""

from __future__ import annotations

import secrets
import time
import unicodedata
from base64 import b32encode
from urllib.parse import quote, urlencode

import segno
from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.safestring import SafeString, mark_safe
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import Membership

DEVICE_NAME = "Authenticator app"
# The name authenticator apps list the entry under.
ISSUER = "Monitoring portal"
CODE_DIGITS = 6
# A password accepted for someone with an app waits this long for the code.
PENDING_SECONDS = 300
_PENDING_KEY = "two_factor_pending"


# ---- codes --------------------------------------------------------------------------------------

# Longer input is refused before it is read further (a code is six digits, spaces allowed).
CODE_INPUT_MAX = 32


def _typed(value: object) -> str:
    """A code as typed, NFKC-normalised (full-width digits become digits), or ValidationError
    naming the first control or format character in it."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        raise ValidationError(f"Remove the control character U+{ord(bad):04X}.")
    return text


def clean_code(value: object) -> str:
    """The six digits of a code as typed (spaces dropped), or ValidationError saying what is
    wrong. Messages never repeat the input."""
    text = _typed(value)
    if len(text) > CODE_INPUT_MAX:
        raise ValidationError(
            f"Enter the {CODE_DIGITS}-digit code your app shows (this has {len(text)} characters)."
        )
    digits = "".join(text.split())
    if not digits:
        raise ValidationError(f"Enter the {CODE_DIGITS}-digit code your app shows.")
    if not (digits.isascii() and digits.isdigit()):
        raise ValidationError(f"Use digits only: the {CODE_DIGITS}-digit code your app shows.")
    if len(digits) != CODE_DIGITS:
        raise ValidationError(
            f"Enter all {CODE_DIGITS} digits your app shows (this has {len(digits)})."
        )
    return digits


# ---- recovery codes ---------------------------------------------------------------------------

RECOVERY_DEVICE_NAME = "Recovery codes"
RECOVERY_COUNT = 10
# Ten characters of an alphabet without look-alikes (no 0/o, 1/l/i): about 49 bits each.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH = 10
RECOVERY_SALT = "tenants.accounts.two_factor.recovery_code"


def new_recovery_codes() -> list[str]:
    """Fresh codes as people see them: `abcde-fghjk`."""
    codes = []
    for _ in range(RECOVERY_COUNT):
        text = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(f"{text[:5]}-{text[5:]}")
    return codes


def recovery_digest(code: str) -> str:
    """What is stored for a code (django-otp's token field holds 16 characters): a keyed hash,
    so the table alone gives no code."""
    return salted_hmac(RECOVERY_SALT, code, algorithm="sha256").hexdigest()[:16]


def is_recovery_code(value: object) -> bool:
    """Whether typed text is meant as a recovery code (longer than an app code, with letters)
    rather than a mistyped app code."""
    text = unicodedata.normalize("NFKC", str(value or ""))
    compact = [c for c in text if not c.isspace() and c != "-"]
    return len(compact) > CODE_DIGITS and any(c.isalpha() for c in compact)


def clean_recovery_code(value: object) -> str:
    """A recovery code as typed (any case, spaces and dashes dropped) in its stored form, or
    ValidationError saying what is wrong. Messages never repeat the input."""
    text = _typed(value)
    if len(text) > CODE_INPUT_MAX:
        raise ValidationError(f"A recovery code has {RECOVERY_LENGTH} letters and digits.")
    compact = "".join(c for c in text.lower() if not c.isspace() and c != "-")
    if len(compact) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in compact):
        raise ValidationError(
            f"A recovery code has {RECOVERY_LENGTH} letters and digits, like abcde-fghjk."
        )
    return f"{compact[:5]}-{compact[5:]}"


def recovery_device(user) -> StaticDevice | None:
    if user is None or not user.is_authenticated:
        return None
    return StaticDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def recovery_codes_left(user) -> int:
    device = recovery_device(user)
    return device.token_set.count() if device is not None else 0


def use_recovery_code(device: StaticDevice, code: str) -> bool:
    """Whether `code` (cleaned) is one of the device's unused codes; it is used up if so.

    The device row is locked, so a code is accepted once however many requests bring it.
    """
    with transaction.atomic():
        locked = StaticDevice.objects.select_for_update().filter(pk=device.pk).first()
        return locked is not None and locked.verify_token(recovery_digest(code))


# ---- devices ------------------------------------------------------------------------------------


def confirmed_device(user) -> TOTPDevice | None:
    """The person's confirmed authenticator app, or None."""
    if user is None or not user.is_authenticated:
        return None
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def unconfirmed_device(user) -> TOTPDevice | None:
    """An app set up but not yet confirmed with a code, or None."""
    if user is None or not user.is_authenticated:
        return None
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def has_device(user) -> bool:
    return confirmed_device(user) is not None


def members_without_app(tenant) -> tuple[int, int]:
    """(members without a confirmed app, all members) of `tenant`, counting people who can
    sign in."""
    members = Membership.objects.filter(tenant=tenant, user__is_active=True)
    with_app = TOTPDevice.objects.filter(confirmed=True).values("user_id")
    return members.exclude(user_id__in=with_app).count(), members.count()


def secret_text(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it when typed: base32, in groups of four."""
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def setup_url(device: TOTPDevice) -> str:
    """The otpauth:// URL of the app's entry (Key URI Format), named after the portal."""
    label = f"{ISSUER}:{device.user.email or device.user.get_username()}"
    params = {
        "secret": b32encode(device.bin_key).decode(),
        "issuer": ISSUER,
        "algorithm": "SHA1",
        "digits": device.digits,
        "period": device.step,
    }
    return f"otpauth://totp/{quote(label)}?{urlencode(params, quote_via=quote)}"


def qr_svg(device: TOTPDevice) -> SafeString:
    """The set-up URL as an inline SVG QR code: no image request, and nothing the CSP refuses
    (segno writes presentation attributes, no style attribute or element)."""
    code = segno.make(setup_url(device), error="m")
    svg = code.svg_inline(
        scale=4, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr-code", title=""
    )
    # segno escapes the text it writes; the URL is ours, not the person's input.
    return mark_safe(svg)  # noqa: S308


def verify(device: TOTPDevice, code: str) -> bool:
    """Whether `code` is current for `device`; each code is accepted once.

    Runs in a transaction of its own (the device row locked), so a refused code's back-off is
    kept even when the caller's work is rolled back.
    """
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk).first()
        return locked is not None and locked.verify_token(code)


def wait_message(device: TOTPDevice) -> str | None:
    """Why the app's codes are not checked right now (too many wrong ones), or None."""
    device.refresh_from_db()
    allowed, data = device.verify_is_allowed()
    if allowed:
        return None
    until = (data or {}).get("locked_until")
    seconds = max(1, int((until - timezone.now()).total_seconds()) + 1) if until else 1
    later = "in a second" if seconds == 1 else f"in {seconds} seconds"
    return f"Too many wrong codes in a row: try again {later}."


# ---- sessions -----------------------------------------------------------------------------------


def is_verified(request) -> bool:
    """Whether the request's session was verified with a code (django-otp's middleware)."""
    user = getattr(request, "user", None)
    check = getattr(user, "is_verified", None)
    return bool(user is not None and user.is_authenticated and check and check())


def session_verified(user, session) -> bool:
    """The same answer from a session alone (WebSockets have no django-otp middleware)."""
    if user is None or not user.is_authenticated or session is None:
        return False
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not isinstance(persistent_id, str) or "/" not in persistent_id:
        return False
    device = Device.from_persistent_id(persistent_id)
    return device is not None and device.confirmed and device.user_id == user.pk


def start_pending(request, user) -> None:
    """Remember a password accepted for `user`: the sign-in completes with a code."""
    request.session[_PENDING_KEY] = {
        "user": user.pk,
        "backend": getattr(user, "backend", ""),
        "at": time.time(),
    }


def pending_sign_in(request):
    """The person whose password was accepted in this session within the last few minutes, with
    the backend that accepted it, or (None, "")."""
    data = request.session.get(_PENDING_KEY)
    if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > PENDING_SECONDS:
        return None, ""
    user = get_user_model().objects.filter(pk=data.get("user"), is_active=True).first()
    return user, str(data.get("backend") or "")


def clear_pending(request) -> None:
    request.session.pop(_PENDING_KEY, None)


# ---- lockout ------------------------------------------------------------------------------------


def _credentials(user) -> dict:
    # The e-mail normalises to the name password failures count under (lockout_username).
    return {"username": user.email, "two_factor": True}


def locked_out(request, user) -> bool:
    """Whether sign-in is locked for this person from this address; if so, the attempt is
    recorded and the request flagged, so django-axes answers with its lockout page."""
    credentials = _credentials(user)
    if AxesProxyHandler.is_allowed(request, credentials):
        return False
    # As a password tried during a lockout: counted, and django-axes flags the request.
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    return True


def count_failure(request, user) -> None:
    """A wrong code: one more failed sign-in for this person from this address."""
    user_login_failed.send(sender=__name__, credentials=_credentials(user), request=request)
