"""The audit trail: every write by a person, a token or the platform goes through `record`.

One chain per tenant plus one for the platform. Sequence numbers are handed out under a
transaction-scoped advisory lock per chain, so concurrent writers never interleave within a chain
and a hash chain can later be computed in `seq` order without gaps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenants.models import ApiToken, AuditEvent, Tenant

# Advisory-lock namespace for audit chains (an arbitrary constant: "AUDT").
_AUDIT_LOCK_NAMESPACE = 0x41554454


@dataclass(frozen=True)
class Actor:
    """Who made a change: a person, a token, or the system itself."""

    kind: str
    id: str = ""
    label: str = ""
    remote_addr: str | None = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind=AuditEvent.ActorKind.SYSTEM, label=label)

    @classmethod
    def for_user(cls, user, remote_addr: str | None = None) -> Actor:
        return cls(
            kind=AuditEvent.ActorKind.USER,
            id=str(user.pk),
            label=user.get_username(),
            remote_addr=remote_addr,
        )

    @classmethod
    def for_token(cls, token: ApiToken, remote_addr: str | None = None) -> Actor:
        return cls(
            kind=AuditEvent.ActorKind.TOKEN,
            id=str(token.public_id),
            label=f"token {token.name} ({token.prefix}…)",
            remote_addr=remote_addr,
        )

    @classmethod
    def from_request(cls, request) -> Actor:
        addr = request.META.get("REMOTE_ADDR") or None
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiToken):
            return cls.for_token(auth, addr)
        return cls.for_user(request.user, addr)


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


@transaction.atomic
def record(
    *,
    actor: Actor,
    action: str,
    obj: Any = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    tenant: Tenant | None | str = "current",
) -> AuditEvent:
    """Append one event to the chain of `tenant` (default: the tenant of the current schema).

    Pass `tenant=None` for a platform-level event. Runs inside the caller's transaction, so the
    event exists exactly when the change it describes does.
    """
    if tenant == "current":
        tenant = _current_tenant()
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(getattr(obj, "public_id", None) or obj.pk)
        object_repr = object_repr or str(obj)[:300]
    chain_id = tenant.pk if tenant is not None else 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_AUDIT_LOCK_NAMESPACE, chain_id])
    last = AuditEvent.objects.filter(tenant=tenant).aggregate(m=Max("seq"))["m"] or 0
    return AuditEvent.objects.create(
        tenant=tenant,
        seq=last + 1,
        occurred_at=timezone.now(),
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:254],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=_jsonable(before),
        after=_jsonable(after),
        remote_addr=actor.remote_addr,
    )


def _current_tenant() -> Tenant | None:
    """The tenant of the connection's schema; None in the public schema."""
    schema = connection.schema_name
    if schema == get_public_schema_name():
        return None
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.schema_name == schema:
        return tenant
    # schema_context() sets only a placeholder tenant: look the real one up.
    try:
        return Tenant.objects.get(schema_name=schema)
    except Tenant.DoesNotExist:
        raise RuntimeError(f"no tenant owns the schema {schema!r}") from None


def events_for(tenant: Tenant | None, *, action: str = "", actor: str = "", text: str = ""):
    """The trail of one tenant (or of the platform for None), newest first, optionally narrowed:
    `action` by prefix ("token." = every token event), `actor` and `text` by substring."""
    events = AuditEvent.objects.filter(tenant=tenant)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if text:
        events = events.filter(object_repr__icontains=text)
    return events.order_by("-seq")
