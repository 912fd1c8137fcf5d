"""Sign-in, sign-out, failed sign-in and lockout, written to the audit trail.

Every event goes to the platform chain, and also to the tenant's chain when it happens on a
tenant's host and concerns one of that tenant's members (for a failed attempt: the account the
typed name reaches). A tenant's trail never names people of other tenants. A failed attempt is
recorded under the name that was typed (cleaned and cut to the label's length) and the client
address; the password never is.
"""

from __future__ import annotations

from typing import Any

from axes.helpers import get_failure_limit
from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django_tenants.utils import get_public_schema_name

from tenants import audit
from tenants.accounts.backends import find_account
from tenants.actions import AuditAction
from tenants.models import Membership, Tenant

NO_NAME = "(no name given)"


def connect() -> None:
    """Subscribe to Django's and axes' authentication signals."""
    user_logged_in.connect(_signed_in, dispatch_uid="tenants.signin_audit.signed_in")
    user_logged_out.connect(_signed_out, dispatch_uid="tenants.signin_audit.signed_out")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="tenants.signin_audit.failed")
    user_locked_out.connect(_locked_out, dispatch_uid="tenants.signin_audit.locked_out")


def chains_of(request, user=None) -> list[Tenant | None]:
    """The platform chain, plus the tenant's when the request is on a tenant's host and `user`
    is one of its members."""
    tenant = getattr(request, "tenant", None)
    if (
        isinstance(tenant, Tenant)
        and tenant.schema_name != get_public_schema_name()
        and user is not None
        and Membership.objects.filter(tenant=tenant, user=user).exists()
    ):
        return [None, tenant]
    return [None]


@transaction.atomic
def _record_on_each_chain(request, user=None, **event: Any) -> None:
    for tenant in chains_of(request, user):
        audit.record(tenant=tenant, **event)


def _attempted(name: Any, address: str | None) -> audit.Actor:
    """Someone not signed in, known only by the name they typed and their address."""
    return audit.Actor.system(audit.clean_label(name) or NO_NAME, address)


def _signed_in(sender, request, user, **kwargs) -> None:
    # A sign-in completed with an authenticator app's code carries the app (django-otp's way).
    second_factor = getattr(user, "otp_device", None) is not None
    _record_on_each_chain(
        request,
        user,
        actor=audit.Actor.for_user(user, audit.client_address(request)),
        action=AuditAction.AUTH_SIGNED_IN,
        obj=user,
        after={"two_factor": True} if second_factor else None,
    )


def _signed_out(sender, request, user, **kwargs) -> None:
    if user is None:  # signing out without being signed in changes nothing
        return
    _record_on_each_chain(
        request,
        user,
        actor=audit.Actor.for_user(user, audit.client_address(request)),
        action=AuditAction.AUTH_SIGNED_OUT,
        obj=user,
    )


def _was_locked_before(request, credentials: Any) -> bool:
    """Whether the sign-in was already locked when this attempt came (so it was refused unread).

    Our receivers run after axes' own (importing `axes.signals` above connects those first), so
    axes has dealt with the attempt by now: it flags a refused request (`axes_locked_out`) and,
    unless told not to count failures during a lockout, has counted this one too.
    """
    if request is None or not getattr(request, "axes_locked_out", False):
        return False
    failures = getattr(request, "axes_failures_since_start", None)
    return failures is None or failures > get_failure_limit(request, credentials)


def _sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    actor = _attempted((credentials or {}).get("username"), audit.client_address(request))
    refused = _was_locked_before(request, credentials)
    if refused:
        reason = "locked out"
    elif (credentials or {}).get("two_factor"):
        reason = "two-factor code not accepted"
    else:
        reason = "credentials not accepted"
    _record_on_each_chain(
        request,
        find_account((credentials or {}).get("username")),
        actor=actor,
        action=AuditAction.AUTH_SIGN_IN_FAILED,
        object_type="auth.user",
        object_repr=actor.label,
        after={"reason": reason},
    )


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    if _was_locked_before(request, getattr(request, "axes_credentials", None)):
        return  # an attempt during a lockout: recorded as a failed sign-in, not a new lockout
    actor = _attempted(username, audit.client_address(request) or audit.ip_or_none(ip_address))
    _record_on_each_chain(
        request,
        find_account(username),
        actor=actor,
        action=AuditAction.AUTH_LOCKED_OUT,
        object_type="auth.user",
        object_repr=actor.label,
        after={"failures": getattr(request, "axes_failures_since_start", None)},
    )
