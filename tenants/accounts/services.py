"""Writes to a person's account: their own password, their authenticator app (two-factor sign-in),
and deactivation by the platform."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
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
    _checked(
        device,
        code,
        clean=two_factor.clean_code,
        verify=two_factor.verify,
        wrong="That code is not right. Enter the code your app shows now.",
    )


def _checked(device, code: str, *, clean, verify, wrong: str) -> None:
    """`code` cleaned by `clean` and accepted by `verify(device, code)`, or ValidationError on
    `code` (WRONG_CODE when it is well formed but not right)."""
    try:
        code = clean(code)
    except ValidationError as exc:
        raise ValidationError({"code": exc.messages}) from None
    wait = two_factor.wait_message(device)
    if wait:
        raise ValidationError({"code": [wait]})
    if not verify(device, code):
        raise ValidationError({"code": ValidationError(wrong, code=WRONG_CODE)})


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
    """Remove the person's app after a current `code`, or one of their recovery codes (the
    phone is lost); a stolen session alone cannot. Their recovery codes go with the app, their
    sessions are no longer verified, and live connections are told to look again."""
    device = two_factor.confirmed_device(user)
    if device is None:
        raise ValidationError({"code": ["Two-factor sign-in is not on."]})
    check_sign_in_code(user, code)
    with transaction.atomic():
        User = get_user_model()
        User.objects.select_for_update().get(pk=user.pk)
        deleted, _ = TOTPDevice.objects.filter(pk=device.pk, confirmed=True).delete()
        if not deleted:
            return
        StaticDevice.objects.filter(user=user).delete()
        _removed(user, device, actor)


def check_sign_in_code(user, code: str):
    """The device that takes `code` (cleaned) now: the person's app, or their recovery codes
    for a recovery code (then used up). ValidationError on `code` otherwise, WRONG_CODE when a
    well-formed code is not right (it counts towards the lockout)."""
    if two_factor.is_recovery_code(code):
        return check_recovery_code(user, code)
    device = two_factor.confirmed_device(user)
    if device is None:
        raise ValidationError({"code": ["Two-factor sign-in is not on."]})
    _check_code(device, code)
    return device


def check_recovery_code(user, code: str) -> StaticDevice:
    """The person's recovery device once `code` is one of its unused codes (now used up);
    ValidationError on `code` otherwise (WRONG_CODE for a code that is not theirs)."""
    device = two_factor.recovery_device(user)
    if device is None:
        raise ValidationError(
            {"code": ["You have no recovery codes: enter the code your app shows."]}
        )
    _checked(
        device,
        code,
        clean=two_factor.clean_recovery_code,
        verify=two_factor.use_recovery_code,
        wrong="That recovery code is not right, or was used already.",
    )
    return device


def create_recovery_codes(*, user, actor: audit.Actor) -> list[str]:
    """Ten new recovery codes for a person with a confirmed app, replacing any earlier ones;
    returned once, to be shown once (only their keyed hashes are kept)."""
    with transaction.atomic():
        get_user_model().objects.select_for_update().get(pk=user.pk)
        if two_factor.confirmed_device(user) is None:
            raise ValidationError(
                {"code": ["Set up your authenticator app first: recovery codes stand in for it."]}
            )
        _, removed = StaticDevice.objects.filter(user=user).delete()
        replaced = bool(removed.get(StaticDevice._meta.label))
        device = StaticDevice.objects.create(
            user=user, name=two_factor.RECOVERY_DEVICE_NAME, confirmed=True
        )
        codes = two_factor.new_recovery_codes()
        StaticToken.objects.bulk_create(
            [StaticToken(device=device, token=two_factor.recovery_digest(code)) for code in codes]
        )
        for tenant in _two_factor_chains(user):
            audit.record(
                actor=actor,
                action=AuditAction.AUTH_RECOVERY_CODES_CREATED,
                obj=user,
                tenant=tenant,
                after={"email": user.email, "codes": len(codes), "replaced_earlier": replaced},
            )
    return codes


@transaction.atomic
def note_recovery_code_used(*, user, actor: audit.Actor) -> int:
    """Record a sign-in with a recovery code in every chain the person is in; returns how many
    codes are left."""
    left = two_factor.recovery_codes_left(user)
    for tenant in _two_factor_chains(user):
        audit.record(
            actor=actor,
            action=AuditAction.AUTH_RECOVERY_CODE_USED,
            obj=user,
            tenant=tenant,
            after={"email": user.email, "codes_left": left},
        )
    return left


@transaction.atomic
def reset_two_factor(*, device, actor: audit.Actor) -> None:
    """Remove a person's app without a code: the platform's way back in for someone who lost
    theirs (after checking who they are some other way). Audited like a removal."""
    User = get_user_model()
    user = User.objects.select_for_update().get(pk=device.user_id)
    deleted, _ = TOTPDevice.objects.filter(pk=device.pk).delete()
    if not deleted or not device.confirmed:
        return
    StaticDevice.objects.filter(user=user).delete()  # they stood in for the app
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
