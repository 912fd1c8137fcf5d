"""The audit actions of the tenants app: tenants, hosts, members, tokens, people, sign-in."""

from __future__ import annotations

from enum import StrEnum

from tenants import audit


@audit.register_actions
class AuditAction(StrEnum):
    """What `tenants` records; the values are what the trail stores and filters on."""

    TENANT_PROVISIONED = "tenant.provisioned"
    TENANT_RENAMED = "tenant.renamed"
    TENANT_UPDATED = "tenant.updated"
    TENANT_DEACTIVATED = "tenant.deactivated"
    TENANT_REACTIVATED = "tenant.reactivated"
    TENANT_TWO_FACTOR_CHANGED = "tenant.two_factor_changed"
    DOMAIN_ADDED = "domain.added"
    DOMAIN_UPDATED = "domain.updated"
    DOMAIN_REMOVED = "domain.removed"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    MEMBER_INVITATION_RESENT = "member.invitation_resent"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    TOKEN_ROTATED = "token.rotated"
    USER_ADDED = "user.added"
    USER_CHANGED = "user.changed"
    USER_DEACTIVATED = "user.deactivated"
    AUTH_SIGNED_IN = "auth.signed_in"
    AUTH_SIGNED_OUT = "auth.signed_out"
    AUTH_SIGN_IN_FAILED = "auth.sign_in_failed"
    AUTH_LOCKED_OUT = "auth.locked_out"
    AUTH_PASSWORD_CHANGED = "auth.password_changed"
    AUTH_TWO_FACTOR_ENABLED = "auth.two_factor_enabled"
    AUTH_TWO_FACTOR_REMOVED = "auth.two_factor_removed"
    AUTH_TWO_FACTOR_VERIFIED = "auth.two_factor_verified"
    AUTH_RECOVERY_CODES_CREATED = "auth.recovery_codes_created"
    AUTH_RECOVERY_CODE_USED = "auth.recovery_code_used"
