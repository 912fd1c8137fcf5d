"""Every write a person or token can make to memberships and tokens, each with its audit event.

Callers pass values a form of `tenants.forms` has cleaned; each service checks them again (any
caller, e.g. the admin or a command, may skip the form) and checks what only the database can
tell (duplicates, "a tenant keeps an admin"). Refusals are ValidationErrors keyed by field.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.utils import timezone

from tenants import audit, lifecycle, tokens
from tenants.accounts.users import clean_email, get_or_create_user
from tenants.actions import AuditAction
from tenants.forms import TENANT_NAME_MAX, TOKEN_NAME_MAX, check_text
from tenants.models import ApiToken, Membership, Tenant
from tenants.roles import Role, TokenScope
from tenants.tasks import queue_invitation


def _role(value: str) -> Role:
    if value not in Role.values:
        raise ValidationError({"role": [f"Choose one of: {', '.join(Role.values)}."]})
    return Role(value)


def _field(name: str, check, *args, **kwargs):
    """Run a value check of `tenants.forms`/`users`; its refusal is keyed by `name`."""
    try:
        return check(*args, **kwargs)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}) from None


@transaction.atomic
def add_member(*, tenant: Tenant, email: str, role: str, actor: audit.Actor) -> Membership:
    """Give the person with `email` a role in `tenant`, creating their account if needed.

    They are told by e-mail; a new account's set-password link goes only to that mailbox.
    """
    role = _role(role)
    email = _field("email", clean_email, email or "")
    _lock_memberships_of(tenant)
    user = get_or_create_user(email)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError({"email": [f"{user.email} is already a member of this tenant."]})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit.record(
        actor=actor,
        action=AuditAction.MEMBER_ADDED,
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


def ensure_an_admin_remains(tenant: Tenant, leaving: Membership) -> None:
    """Refuse a change that would take away the tenant's last admin who can sign in."""
    if leaving.role == Role.ADMIN and not _has_another_active_admin(tenant, leaving.user):
        raise ValidationError({"role": ["A tenant needs at least one admin."]})


@transaction.atomic
def change_role(*, tenant: Tenant, membership_id, role: str, actor: audit.Actor) -> Membership:
    role = _role(role)
    membership = _locked_membership(tenant, membership_id)
    if membership.role == role:
        return membership
    if role != Role.ADMIN:
        ensure_an_admin_remains(tenant, membership)
    before = {"email": membership.user.email, "role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        actor=actor,
        action=AuditAction.MEMBER_ROLE_CHANGED,
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


@dataclass(frozen=True)
class MemberRemoval:
    """A removed member and what happened to the tokens they had created."""

    membership: Membership  # deleted; kept for messages
    revoked: list[ApiToken] = field(default_factory=list)
    rotated: list[IssuedToken] = field(default_factory=list)


@transaction.atomic
def remove_member(
    *,
    tenant: Tenant,
    membership_id,
    actor: audit.Actor,
    revoke_tokens: Collection[str] = (),
    rotate_tokens: Collection[str] = (),
    created_by=None,
) -> MemberRemoval:
    """Remove a member and, in the same transaction, revoke or rotate tokens they created.

    Tokens belong to the tenant, so they outlive their creator's membership unless chosen here.
    `revoke_tokens` / `rotate_tokens` are public ids of live tokens that member created; rotated
    replacements are created by `created_by` (the person removing).
    """
    membership = _locked_membership(tenant, membership_id)
    ensure_an_admin_remains(tenant, membership)
    revoke_ids = {str(token_id) for token_id in revoke_tokens}
    rotate_ids = {str(token_id) for token_id in rotate_tokens}
    if revoke_ids & rotate_ids:
        raise ValidationError({"revoke_tokens": ["Rotate or revoke a token, not both."]})
    chosen = _chosen_tokens(tenant, membership, revoke=revoke_ids, rotate=rotate_ids)
    before = {"email": membership.user.email, "role": membership.role}
    audit.record(
        actor=actor, action=AuditAction.MEMBER_REMOVED, obj=membership, tenant=tenant, before=before
    )
    membership.delete()
    revoked = [_revoke(chosen[token_id], tenant, actor) for token_id in sorted(revoke_ids)]
    rotated = [
        _rotate(chosen[token_id], tenant, actor, created_by) for token_id in sorted(rotate_ids)
    ]
    lifecycle.send_on_commit(
        lifecycle.member_removed, Membership, tenant=tenant, user=membership.user
    )
    return MemberRemoval(membership=membership, revoked=revoked, rotated=rotated)


def _chosen_tokens(
    tenant: Tenant, membership: Membership, *, revoke: set[str], rotate: set[str]
) -> dict[str, ApiToken]:
    """The member's live tokens named in `revoke` and `rotate`, locked; refuses any other id."""
    if not revoke and not rotate:
        return {}
    live = live_tokens_created_by(tenant, membership.user).select_for_update()
    found = {str(token.public_id): token for token in live}
    errors = {
        name: ["Choose among the live tokens this member created."]
        for name, ids in (("rotate_tokens", rotate), ("revoke_tokens", revoke))
        if ids - set(found)
    }
    if errors:
        raise ValidationError(errors)
    return found


def _live(tokens: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
    return tokens.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )


def live_tokens_created_by(tenant: Tenant, user) -> QuerySet[ApiToken]:
    """Tokens of `tenant` that `user` created and that still work."""
    return _live(ApiToken.objects.filter(tenant=tenant, created_by=user)).order_by("name", "pk")


def tokens_of(tenant: Tenant) -> QuerySet[ApiToken]:
    """The tenant's tokens, each with `creator_removed`: a person created it and is no longer a
    member (a token the platform issued, with no creator, has nobody to lose)."""
    creator_is_member = Membership.objects.filter(tenant=tenant, user=OuterRef("created_by"))
    return (
        ApiToken.objects.filter(tenant=tenant)
        .select_related("created_by")
        .annotate(
            creator_removed=ExpressionWrapper(
                Q(created_by__isnull=False) & ~Exists(creator_is_member),
                output_field=BooleanField(),
            )
        )
    )


def creators_removed(tokens: Collection[ApiToken]) -> set[int]:
    """Primary keys of those `tokens` whose creator is no longer a member of the token's tenant."""
    pairs = {(t.tenant_id, t.created_by_id) for t in tokens if t.created_by_id is not None}
    members = set(
        Membership.objects.filter(
            tenant_id__in={tenant for tenant, _ in pairs}, user_id__in={user for _, user in pairs}
        ).values_list("tenant_id", "user_id")
    )
    return {
        t.pk
        for t in tokens
        if t.created_by_id is not None and (t.tenant_id, t.created_by_id) not in members
    }


@transaction.atomic
def resend_invitation(*, tenant: Tenant, membership_id, actor: audit.Actor) -> Membership:
    """Mail the invitation again (e.g. its set-password link expired before it was used)."""
    membership = _locked_membership(tenant, membership_id)
    # Only this membership's own state counts: whether the account has a password (perhaps set
    # for another tenant) is none of this tenant's business.
    if membership.joined_at is not None:
        raise ValidationError(
            {"email": [f"{membership.user.email} has already signed in to this tenant."]}
        )
    audit.record(
        actor=actor,
        action=AuditAction.MEMBER_INVITATION_RESENT,
        obj=membership,
        tenant=tenant,
        after={"email": membership.user.email},
    )
    queue_invitation(membership)
    return membership


@transaction.atomic
def rename_tenant(*, tenant: Tenant, name: str, actor: audit.Actor) -> Tenant:
    """Change the display name people see; the slug and host never change."""
    name = _field("name", check_text, name or "", max_length=TENANT_NAME_MAX)
    if not name:
        raise ValidationError({"name": ["This field is required."]})
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if locked.name != name:
        before = {"name": locked.name}
        locked.name = name
        locked.save(update_fields=["name"])
        audit.record(
            actor=actor,
            action=AuditAction.TENANT_RENAMED,
            obj=locked,
            tenant=locked,
            before=before,
            after={"name": name},
        )
    return locked


@transaction.atomic
def set_two_factor_requirement(
    *, tenant: Tenant, required: bool, actor: audit.Actor, actor_verified: bool
) -> Tenant:
    """Require (or stop requiring) members to sign in with a second factor to use `tenant`.

    `actor_verified` says whether the person making the change signed in with a second factor in
    this session: turning the requirement on is refused otherwise, so nobody shuts themselves
    out. Once committed, live connections of unverified sessions are told to look again.
    """
    if not isinstance(required, bool):
        raise ValidationError({"require_two_factor": ["Send true or false."]})
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if locked.require_two_factor == required:
        return locked
    if required and not actor_verified:
        raise ValidationError(
            {
                "require_two_factor": [
                    "Verify this session with a code from your own authenticator app first (set "
                    "one up on your account page if you have none): otherwise you would lock "
                    "yourself out."
                ]
            }
        )
    locked.require_two_factor = required
    locked.save(update_fields=["require_two_factor"])
    tenant.require_two_factor = required
    audit.record(
        actor=actor,
        action=AuditAction.TENANT_TWO_FACTOR_CHANGED,
        obj=locked,
        tenant=locked,
        before={"require_two_factor": not required},
        after={"require_two_factor": required},
    )
    if required:
        lifecycle.send_on_commit(lifecycle.two_factor_required, Tenant, tenant=locked)
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
    errors: dict[str, list[str]] = {}
    try:
        name = check_text(name or "", max_length=TOKEN_NAME_MAX)
    except ValidationError as exc:
        errors["name"] = exc.messages
    else:
        if not name:
            errors["name"] = ["This field is required."]
    unknown = sorted(set(scopes or []) - set(TokenScope.values))
    if not scopes:
        errors["scopes"] = [f"Choose at least one scope of: {', '.join(TokenScope.values)}."]
    elif unknown:
        errors["scopes"] = [f"Unknown scope; choose from: {', '.join(TokenScope.values)}."]
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
        action=AuditAction.TOKEN_CREATED,
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
            action=AuditAction.TOKEN_REVOKED,
            obj=token,
            tenant=tenant,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at},
        )
    return token


@transaction.atomic
def rotate_token(*, tenant: Tenant, token_id, actor: audit.Actor, created_by=None) -> IssuedToken:
    """Replace a live token by a new one with the same name and scopes, in one step."""
    return _rotate(_locked_token(tenant, token_id), tenant, actor, created_by)


def _rotate(old: ApiToken, tenant: Tenant, actor: audit.Actor, created_by) -> IssuedToken:
    """Rotate a token already locked by the caller."""
    if old.revoked_at is not None:
        raise ValidationError({"token": [f"Token {old.name} is revoked; create a new one."]})
    if old.expires_at is not None and old.expires_at <= timezone.now():
        raise ValidationError({"token": [f"Token {old.name} has expired; create a new one."]})
    # The replacement keeps the old one's remaining lifetime, never more.
    issued = create_token(
        tenant=tenant,
        name=old.name,
        scopes=old.scopes,
        actor=actor,
        created_by=created_by,
        expires_at=old.expires_at,
    )
    _revoke(old, tenant, actor)
    audit.record(
        actor=actor,
        action=AuditAction.TOKEN_ROTATED,
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
