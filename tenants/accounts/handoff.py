"""Signing a person in on a tenant host from the public site.

Session cookies are per host, so the tenant picker hands over a short-lived, single-use, signed
ticket that names the user and the one tenant it is valid for. The tenant host asks the person
to confirm before redeeming it: a link alone must never sign anyone in (a member could otherwise
send colleagues a link that signs them in as the sender).
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django_tenants.utils import get_public_schema_name, schema_context

_SALT = "tenants.accounts.handoff"
MAX_AGE_SECONDS = 60


def make_ticket(user, tenant) -> str:
    return signing.dumps(
        {"u": user.pk, "t": tenant.schema_name, "n": secrets.token_urlsafe(12)}, salt=_SALT
    )


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
