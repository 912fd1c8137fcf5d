"""Tenants, their domains, who belongs to them, their API tokens and the audit trail.

All of these live in the public schema: a person's memberships must be readable before any tenant
is chosen (the tenant picker), and tokens are looked up by hash on every API call.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_tenants.models import DomainMixin, TenantMixin

from tenants.roles import Role, TokenScope
from tenants.slugs import slug_for


class Tenant(TenantMixin):
    """An organisation; its schema_name is its slug and the first label of its host."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)
    # Members must sign in with a second factor (an authenticator app) to use this tenant.
    require_two_factor = models.BooleanField(default=False)

    auto_create_schema = True
    # Never drop a schema as a side effect of deleting a row: tenants are deactivated instead.
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def slug(self) -> str:
        """The first label of the tenant's host (see tenants.slugs)."""
        return slug_for(self.schema_name)


class Domain(DomainMixin):
    """A host name that serves one tenant."""

    def __str__(self) -> str:
        return self.domain


class Membership(models.Model):
    """A person's role in one tenant: the only way anyone sees a tenant."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    # First sign-in on this tenant's host; until then the member is "invited". Derived from this
    # membership only, so a tenant never learns whether the account exists elsewhere.
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_per_tenant"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]
        ordering = ["tenant", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.tenant.schema_name}"


class ApiToken(models.Model):
    """A bearer token for scripts; only the SHA-256 of the secret is stored."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the secret, shown in lists so people can tell tokens apart.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def scope_set(self) -> frozenset[TokenScope]:
        return frozenset(TokenScope(s) for s in self.scopes if s in TokenScope.values)


class AuditEvent(models.Model):
    """One write by a person, a token or the platform; append-only.

    Events form one chain per tenant (tenant NULL = the platform's own chain), ordered by `seq`
    within the chain. `prev_hash`/`hash` are there so a hash chain can be laid over the same rows
    without reshaping the table.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "Person"
        TOKEN = "token", "API token"
        SYSTEM = "system", "System"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    seq = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    # Kept as text as well as ids: the trail must stay readable after a user or token is deleted.
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "seq"], name="audit_seq_unique_per_tenant"),
            models.UniqueConstraint(
                fields=["seq"], condition=Q(tenant__isnull=True), name="audit_seq_unique_platform"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "-occurred_at"], name="audit_tenant_recent")]
        ordering = ["-occurred_at", "-seq"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"


class AuditChainHead(models.Model):
    """The newest event of one audit chain as it was at a moment; append-only.

    Kept outside the audit table so that a chain cut short (its newest rows removed) is still
    caught: the chain must reach every head recorded for it (see tenants.audit_chain).
    """

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_chain_heads"
    )
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    recorded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["tenant", "-seq"], name="audit_head_latest")]
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"{self.recorded_at:%Y-%m-%d %H:%M} seq {self.seq} {self.hash[:12]}…"
