"""Writes to a person's account: their own password, their authenticator app (two-factor sign-in),
and deactivation by the platform."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import audit, lifecycle
from tenants.accounts import two_factor
from tenants.actions import AuditAction
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.services import ensure_no_tenant_loses_its_last_admin


@transaction.atomic
def change_own_password(*, user, new_password: str, actor: audit.Actor):
    """Set a new password for `user`, who has just confirmed the current one.

    Raises ValidationError on `new_password1` when the password validators refuse it; nothing is
    written then. Sessions on other hosts and devices end (Django's session hash changes); the
    caller keeps the current one with `update_session_auth_hash`.
    """
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise ValidationError({"new_password1": exc.messages}) from None
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    locked.set_password(new_password)
    locked.save(update_fields=["password"])
    user.password = locked.password
    # Never the password or its hash: only that it changed.
    audit.record(
        actor=actor,
        action=AuditAction.AUTH_PASSWORD_CHANGED,
        obj=locked,
        tenant=None,
        after={"email": locked.email},
    )
    return locked


@transaction.atomic
def deactivate_user(*, user, actor: audit.Actor):
    """Stop `user` signing in anywhere; their memberships stay (the trail still names them).

    Refused (ValidationError on `is_active`) when they are the only admin of a tenant. Sends
    `user_deactivated` once committed, so live connections can be closed.
    """
    User = get_user_model()
    admin_of = Membership.objects.filter(user=user, role=Role.ADMIN).values("tenant_id")
    # The same lock as membership changes take, so no concurrent change leaves a tenant without
    # an admin who can sign in.
    list(Tenant.objects.select_for_update().filter(pk__in=admin_of).order_by("pk"))
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not locked.is_active:
        user.is_active = False
        return locked
    ensure_no_tenant_loses_its_last_admin(locked)
    locked.is_active = False
    locked.save(update_fields=["is_active"])
    user.is_active = False
    after = {"email": locked.email, "is_active": False}
    action = AuditAction.USER_DEACTIVATED
    audit.record(actor=actor, action=action, obj=locked, tenant=None, after=after)
    # Each tenant the person belongs to sees in its own trail why they can no longer sign in.
    tenants = Tenant.objects.filter(memberships__user=locked).order_by("pk").distinct()
    for tenant in tenants:
        audit.record(actor=actor, action=action, obj=locked, tenant=tenant, after=after)
    lifecycle.send_on_commit(lifecycle.user_deactivated, User, user=locked)
    return locked


# ---- two-factor sign-in -------------------------------------------------------------------------
#
# Codes are checked by `two_factor.verify`, in a transaction of its own: django-otp's back-off
# after a wrong code must stay even though the refusal rolls back the caller's transaction.

WRONG_CODE = "wrong_code"


def _two_factor_chains(user) -> list[Tenant | None]:
    """The platform's chain and that of every tenant the person belongs to: each tenant sees in
    its own trail whether its members sign in with a second factor."""
    tenants = Tenant.objects.filter(memberships__user=user).order_by("pk").distinct()
    return [None, *tenants]


def _check_code(device, code: str) -> None:
    """Refuse (ValidationError on `code`) a malformed code, one the app is not taking now, or
    one that is not current."""
    try:
        code = two_factor.clean_code(code)
    except ValidationError as exc:
        raise ValidationError({"code": exc.messages}) from None
    wait = two_factor.wait_message(device)
    if wait:
        raise ValidationError({"code": [wait]})
    if not two_factor.verify(device, code):
        raise ValidationError(
            {
                "code": ValidationError(
                    "That code is not right. Enter the code your app shows now.", code=WRONG_CODE
                )
            }
        )


def begin_two_factor(*, user) -> TOTPDevice:
    """A new authenticator app for `user`, waiting for its first code (replacing one that was
    still waiting). Nothing about signing in changes until `confirm_two_factor`, so nothing is
    audited yet. Refused (ValidationError on `code`) while a confirmed app exists."""
    with transaction.atomic():
        get_user_model().objects.select_for_update().get(pk=user.pk)
        if two_factor.confirmed_device(user) is not None:
            raise ValidationError(
                {"code": ["Two-factor sign-in is already on: remove your app first to replace it."]}
            )
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(
            user=user, name=two_factor.DEVICE_NAME, confirmed=False, digits=two_factor.CODE_DIGITS
        )


def discard_unconfirmed_two_factor(*, user) -> None:
    """Drop an app set up but never confirmed (it never counted for signing in)."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()


def confirm_two_factor(*, user, code: str, actor: audit.Actor) -> TOTPDevice:
    """Confirm the waiting app with a current `code`: from now on signing in takes a code."""
    device = two_factor.unconfirmed_device(user)
    if device is None:
        raise ValidationError({"code": ["Nothing is waiting for a code: set up your app again."]})
    _check_code(device, code)
    with transaction.atomic():
        get_user_model().objects.select_for_update().get(pk=user.pk)
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk, confirmed=False)
        if not locked.exists() or two_factor.confirmed_device(user) is not None:
            raise ValidationError({"code": ["Two-factor sign-in was changed meanwhile: reload."]})
        locked.update(confirmed=True)
        device.confirmed = True
        for tenant in _two_factor_chains(user):
            audit.record(
                actor=actor,
                action=AuditAction.AUTH_TWO_FACTOR_ENABLED,
                obj=user,
                tenant=tenant,
                after={"email": user.email, "device": device.name},
            )
    return device


def remove_two_factor(*, user, code: str, actor: audit.Actor) -> None:
    """Remove the person's app after a current `code` (a stolen session alone cannot); their
    sessions are no longer verified, and live connections are told to look again."""
    device = two_factor.confirmed_device(user)
    if device is None:
        raise ValidationError({"code": ["Two-factor sign-in is not on."]})
    _check_code(device, code)
    with transaction.atomic():
        User = get_user_model()
        User.objects.select_for_update().get(pk=user.pk)
        deleted, _ = TOTPDevice.objects.filter(pk=device.pk, confirmed=True).delete()
        if not deleted:
            return
        _removed(user, device, actor)


@transaction.atomic
def reset_two_factor(*, device, actor: audit.Actor) -> None:
    """Remove a person's app without a code: the platform's way back in for someone who lost
    theirs (after checking who they are some other way). Audited like a removal."""
    User = get_user_model()
    user = User.objects.select_for_update().get(pk=device.user_id)
    deleted, _ = TOTPDevice.objects.filter(pk=device.pk).delete()
    if not deleted or not device.confirmed:
        return
    _removed(user, device, actor, after={"reset_by_platform": True})


def _removed(user, device, actor: audit.Actor, after: dict | None = None) -> None:
    """Audit a removed app in every chain the person is in; their sockets look again."""
    for tenant in _two_factor_chains(user):
        audit.record(
            actor=actor,
            action=AuditAction.AUTH_TWO_FACTOR_REMOVED,
            obj=user,
            tenant=tenant,
            before={"email": user.email, "device": device.name},
            after=after,
        )
    lifecycle.send_on_commit(lifecycle.second_factor_removed, type(user), user=user)


@transaction.atomic
def note_two_factor_verified(*, user, tenant: Tenant | None, actor: audit.Actor) -> None:
    """Record that a session already signed in was verified with a code (on the platform's
    chain, and on the tenant's when it happened on the host of a tenant the person belongs to).
    A code given while signing in is part of the sign-in event instead."""
    chains: list[Tenant | None] = [None]
    if tenant is not None and Membership.objects.filter(tenant=tenant, user=user).exists():
        chains.append(tenant)
    for chain in chains:
        audit.record(
            actor=actor,
            action=AuditAction.AUTH_TWO_FACTOR_VERIFIED,
            obj=user,
            tenant=chain,
            after={"email": user.email},
        )
