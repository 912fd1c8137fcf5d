"""Signing a person in on a tenant host from the public site.

Session cookies are per host, so the tenant picker hands over a short-lived, single-use, signed
ticket that names the user and the one tenant it is valid for.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django_tenants.utils import get_public_schema_name, schema_context

_SALT = "tenants.handoff"
MAX_AGE_SECONDS = 60


def make_ticket(user, tenant) -> str:
    return signing.dumps(
        {"u": user.pk, "t": tenant.schema_name, "n": secrets.token_urlsafe(12)}, salt=_SALT
    )


def redeem_ticket(ticket: str, tenant):
    """The user the ticket was issued to, if it is fresh, unused and meant for `tenant`."""
    try:
        data = signing.loads(ticket, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if data.get("t") != tenant.schema_name:
        return None
    # cache.add is atomic: only the first redemption of a nonce succeeds.
    with schema_context(get_public_schema_name()):
        if not cache.add(f"handoff:{data['n']}", 1, timeout=MAX_AGE_SECONDS * 2):
            return None
    return get_user_model().objects.filter(pk=data["u"], is_active=True).first()
