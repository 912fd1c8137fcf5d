"""Every write a person or token can make to memberships and tokens, each with its audit event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants import audit, lifecycle, tokens
from tenants.accounts.users import get_or_create_user, is_email
from tenants.models import ApiToken, Membership, Tenant
from tenants.roles import Role, TokenScope
from tenants.tasks import queue_invitation


def _role(value: str) -> Role:
    if value not in Role.values:
        raise ValidationError(
            {"role": [f"'{value}' is not a role; choose one of: {', '.join(Role.values)}."]}
        )
    return Role(value)


@transaction.atomic
def add_member(*, tenant: Tenant, email: str, role: str, actor: audit.Actor) -> Membership:
    """Give the person with `email` a role in `tenant`, creating their account if needed.

    They are told by e-mail; a new account's set-password link goes only to that mailbox.
    """
    role = _role(role)
    email = (email or "").strip()
    if not is_email(email):
        raise ValidationError({"email": [f"'{email}' is not an e-mail address."]})
    _lock_memberships_of(tenant)
    user = get_or_create_user(email)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError({"email": [f"{user.email} is already a member of this tenant."]})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit.record(
        actor=actor,
        action="member.added",
        obj=membership,
        tenant=tenant,
        after={"email": user.email, "role": role},
    )
    queue_invitation(membership)
    return membership


def _lock_memberships_of(tenant: Tenant) -> None:
    """Serialise membership changes within one tenant.

    Locking only the row being changed is not enough: two admins demoting each other at the same
    moment would each see the other still an admin and leave the tenant with none.
    """
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


def _locked_membership(tenant: Tenant, membership_id) -> Membership:
    _lock_memberships_of(tenant)
    try:
        return (
            Membership.objects.select_for_update()
            .select_related("user")
            .get(tenant=tenant, public_id=membership_id)
        )
    except (Membership.DoesNotExist, ValidationError):
        raise Membership.DoesNotExist(f"No member {membership_id} in this tenant.") from None


def _has_another_active_admin(tenant: Tenant, user) -> bool:
    """The one rule for "a tenant keeps an admin": someone else, able to sign in, is admin."""
    others = Membership.objects.filter(tenant=tenant, role=Role.ADMIN, user__is_active=True)
    return others.exclude(user=user).exists()


def ensure_no_tenant_loses_its_last_admin(user) -> None:
    """Refuse to deactivate a person who is the only admin of some tenant."""
    admin_of = Membership.objects.filter(user=user, role=Role.ADMIN).select_related("tenant")
    sole = [m.tenant.name for m in admin_of if not _has_another_active_admin(m.tenant, user)]
    if sole:
        raise ValidationError(
            {"is_active": [f"{user.email} is the only admin of {', '.join(sole)}."]}
        )


def _ensure_an_admin_remains(tenant: Tenant, leaving: Membership) -> None:
    if leaving.role == Role.ADMIN and not _has_another_active_admin(tenant, leaving.user):
        raise ValidationError({"role": ["A tenant needs at least one admin."]})


@transaction.atomic
def change_role(*, tenant: Tenant, membership_id, role: str, actor: audit.Actor) -> Membership:
    role = _role(role)
    membership = _locked_membership(tenant, membership_id)
    if membership.role == role:
        return membership
    if role != Role.ADMIN:
        _ensure_an_admin_remains(tenant, membership)
    before = {"email": membership.user.email, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        actor=actor,
        action="member.role_changed",
        obj=membership,
        tenant=tenant,
        before=before,
        after={"email": membership.user.email, "role": role},
    )
    lifecycle.send_on_commit(
        lifecycle.role_changed,
        Membership,
        tenant=tenant,
        user=membership.user,
        old_role=before["role"],
        new_role=role,
    )
    return membership


@transaction.atomic
def remove_member(*, tenant: Tenant, membership_id, actor: audit.Actor) -> Membership:
    """Remove a member; returns the (now deleted) membership for messages."""
    membership = _locked_membership(tenant, membership_id)
    _ensure_an_admin_remains(tenant, membership)
    before = {"email": membership.user.email, "role": membership.role}
    audit.record(actor=actor, action="member.removed", obj=membership, tenant=tenant, before=before)
    membership.delete()
    lifecycle.send_on_commit(
        lifecycle.member_removed, Membership, tenant=tenant, user=membership.user
    )
    return membership


@transaction.atomic
def resend_invitation(*, tenant: Tenant, membership_id, actor: audit.Actor) -> Membership:
    """Mail the invitation again (e.g. its set-password link expired before it was used)."""
    membership = _locked_membership(tenant, membership_id)
    if membership.user.has_usable_password():
        raise ValidationError(
            {"email": [f"{membership.user.email} has already chosen a password."]}
        )
    audit.record(
        actor=actor,
        action="member.invitation_resent",
        obj=membership,
        tenant=tenant,
        after={"email": membership.user.email},
    )
    queue_invitation(membership)
    return membership


@transaction.atomic
def rename_tenant(*, tenant: Tenant, name: str, actor: audit.Actor) -> Tenant:
    """Change the display name people see; the slug and host never change."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError({"name": ["A name of 1 to 200 characters is required."]})
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if locked.name != name:
        before = {"name": locked.name}
        locked.name = name
        locked.save(update_fields=["name"])
        audit.record(
            actor=actor,
            action="tenant.renamed",
            obj=locked,
            tenant=locked,
            before=before,
            after={"name": name},
        )
    return locked


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


@transaction.atomic
def create_token(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str],
    actor: audit.Actor,
    created_by=None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name or len(name) > 100:
        errors["name"] = ["A name of 1 to 100 characters is required."]
    unknown = sorted(set(scopes or []) - set(TokenScope.values))
    if not scopes:
        errors["scopes"] = [f"Choose at least one scope of: {', '.join(TokenScope.values)}."]
    elif unknown:
        errors["scopes"] = [
            f"Unknown scope(s) {', '.join(unknown)}; choose from: {', '.join(TokenScope.values)}."
        ]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    if errors:
        raise ValidationError(errors)
    secret = tokens.new_secret()
    token = ApiToken.objects.create(
        tenant=tenant,
        name=name,
        prefix=secret[:10],
        secret_hash=tokens.digest(secret),
        scopes=sorted(set(scopes)),
        created_by=created_by,
        expires_at=expires_at,
    )
    audit.record(
        actor=actor,
        action="token.created",
        obj=token,
        tenant=tenant,
        after={
            "name": name,
            "scopes": token.scopes,
            "prefix": token.prefix,
            "expires_at": expires_at,
        },
    )
    return IssuedToken(token=token, secret=secret)


def _locked_token(tenant: Tenant, token_id) -> ApiToken:
    try:
        return ApiToken.objects.select_for_update().get(tenant=tenant, public_id=token_id)
    except (ApiToken.DoesNotExist, ValidationError):
        raise ApiToken.DoesNotExist(f"No token {token_id} in this tenant.") from None


@transaction.atomic
def revoke_token(*, tenant: Tenant, token_id, actor: audit.Actor) -> ApiToken:
    return _revoke(_locked_token(tenant, token_id), tenant, actor)


def _revoke(token: ApiToken, tenant: Tenant, actor: audit.Actor) -> ApiToken:
    """Revoke a token already locked by the caller (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            actor=actor,
            action="token.revoked",
            obj=token,
            tenant=tenant,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at},
        )
    return token


@transaction.atomic
def rotate_token(*, tenant: Tenant, token_id, actor: audit.Actor, created_by=None) -> IssuedToken:
    """Replace a live token by a new one with the same name and scopes, in one step."""
    old = _locked_token(tenant, token_id)
    if old.revoked_at is not None:
        raise ValidationError({"token": [f"Token {old.name} is revoked; create a new one."]})
    if old.expires_at is not None and old.expires_at <= timezone.now():
        raise ValidationError({"token": [f"Token {old.name} has expired; create a new one."]})
    # The replacement keeps the old one's remaining lifetime, never more.
    expires_at = old.expires_at
    issued = create_token(
        tenant=tenant,
        name=old.name,
        scopes=old.scopes,
        actor=actor,
        created_by=created_by,
        expires_at=expires_at,
    )
    _revoke(old, tenant, actor)
    audit.record(
        actor=actor,
        action="token.rotated",
        obj=issued.token,
        tenant=tenant,
        before={"token": str(old.public_id), "prefix": old.prefix},
        after={"token": str(issued.token.public_id), "prefix": issued.token.prefix},
    )
    return issued


def authenticate_token(secret: str, tenant: Tenant) -> ApiToken | None:
    """The live token for this secret in this tenant, or None. A token never crosses tenants."""
    if not tenant.is_active:
        return None
    token = ApiToken.objects.filter(secret_hash=tokens.digest(secret), tenant=tenant).first()
    if token is None or token.revoked_at is not None:
        return None
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    # Written at most once a minute: a busy script must not turn every call into an UPDATE.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
