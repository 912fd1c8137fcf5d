"""Sessions across hosts: signing in on a tenant host from the public site, and back out.

Session cookies are per host, so the tenant picker hands over a short-lived, single-use, signed
ticket that names the user and the one tenant it is valid for. The tenant host asks the person
to confirm before redeeming it: a link alone must never sign anyone in (a member could otherwise
send colleagues a link that signs them in as the sender). A session verified with a second factor
hands that over too: the ticket names the authenticator app that verified it.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django_otp.models import Device
from django_tenants.utils import get_public_schema_name, schema_context

_SALT = "tenants.accounts.handoff"
MAX_AGE_SECONDS = 60


def make_ticket(user, tenant, verified_device=None) -> str:
    """A ticket for `user` into `tenant`; `verified_device` is the authenticator app that
    verified the session handing over, so the tenant's session is verified too."""
    data = {"u": user.pk, "t": tenant.schema_name, "n": secrets.token_urlsafe(12)}
    if verified_device is not None:
        data["d"] = verified_device.persistent_id
    return signing.dumps(data, salt=_SALT)


def _valid_ticket(ticket: str, tenant) -> dict | None:
    try:
        data = signing.loads(ticket, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    return data if data.get("t") == tenant.schema_name else None


def ticket_user(ticket: str, tenant):
    """Whom a fresh ticket for `tenant` would sign in (without using it up), or None."""
    data = _valid_ticket(ticket, tenant)
    if data is None:
        return None
    return get_user_model().objects.filter(pk=data["u"], is_active=True).first()


def redeem_ticket(ticket: str, tenant):
    """The user the ticket was issued to, if it is fresh, unused and meant for `tenant`."""
    data = _valid_ticket(ticket, tenant)
    if data is None:
        return None
    # cache.add is atomic: only the first redemption of a nonce succeeds.
    with schema_context(get_public_schema_name()):
        if not cache.add(f"handoff:{data['n']}", 1, timeout=MAX_AGE_SECONDS * 2):
            return None
    return get_user_model().objects.filter(pk=data["u"], is_active=True).first()


def verified_device(ticket: str, tenant, user):
    """The confirmed app of `user` that verified the session the ticket came from, or None."""
    data = _valid_ticket(ticket, tenant)
    persistent_id = data.get("d") if data else None
    if not isinstance(persistent_id, str) or "/" not in persistent_id:
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or not device.confirmed or device.user_id != user.pk:
        return None
    return device


# ---- sign-out: the other direction --------------------------------------------------------------
#
# Signing out on a tenant host sends the browser to the public site with a sign-out ticket, so
# that its session (a different cookie) ends too. A plain GET that signs out would let any page
# sign visitors out; a POST cannot be used, as the tenant page's form may only target its own
# origin (CSP form-action) and has no CSRF token of the public site. The ticket is signed,
# expires within a minute and names the person: it can only end that person's public session.
# It is not single-use on purpose: replaying it only signs the same person out again, and signing
# out must keep working while the cache is down.

_SIGN_OUT_SALT = "tenants.accounts.sign-out"


def make_sign_out_ticket(user) -> str:
    return signing.dumps({"u": user.pk, "n": secrets.token_urlsafe(8)}, salt=_SIGN_OUT_SALT)


def sign_out_ticket_user_id(ticket: str) -> int | None:
    """The id of the person a fresh sign-out ticket names, or None."""
    try:
        data = signing.loads(ticket, salt=_SIGN_OUT_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    user_id = data.get("u") if isinstance(data, dict) else None
    return user_id if isinstance(user_id, int) else None
