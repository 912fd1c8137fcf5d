"""Writes to a person's account: their own password, and deactivation by the platform."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from tenants import audit, lifecycle
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
