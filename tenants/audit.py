"""The audit trail: every write by a person, a token or the platform goes through `record`.

One chain per tenant plus one for the platform. Sequence numbers are handed out under a
transaction-scoped advisory lock per chain, so concurrent writers never interleave within a chain;
under the same lock each event is hash-chained to the one before it (see `tenants.audit_chain`),
and the database refuses any UPDATE, DELETE or TRUNCATE of the trail.

Actions are declared, never free text: each app lists its actions in an enum in `<app>/actions.py`
and registers it with `register_actions`; `record` refuses anything else. Secrets never reach the
trail: `record` redacts every before/after value whose key names a secret (`register_secret_fields`
adds names).
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from django_tenants.utils import get_public_schema_name

from tenants import audit_chain
from tenants.fanout import current_tenant
from tenants.models import ApiToken, AuditEvent, Tenant

# Advisory-lock namespace for audit chains (an arbitrary constant: "AUDT").
_AUDIT_LOCK_NAMESPACE = 0x41554454

REDACTED = "[redacted]"
LABEL_MAX = 254  # AuditEvent.actor_label

# ---- declared actions --------------------------------------------------------------------------

_ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_declared: dict[str, str] = {}  # action -> the enum that declares it
_discovered = False

Actions = TypeVar("Actions", bound=type[Enum])


def register_actions(actions: Actions) -> Actions:
    """Declare an app's audit actions (a StrEnum or TextChoices); returns the enum unchanged.

    All or nothing: a malformed name, or one another enum declares, declares none of them.
    """
    owner = f"{actions.__module__}.{actions.__qualname__}"
    limit = AuditEvent._meta.get_field("action").max_length
    values = [str(member.value) for member in actions]
    for value in values:
        if not _ACTION_RE.match(value) or len(value) > limit:
            raise ImproperlyConfigured(f"{owner}: {value!r} is no action name like 'token.created'")
        if _declared.get(value, owner) != owner:
            raise ImproperlyConfigured(
                f"{owner}: {value!r} is already declared by {_declared[value]}"
            )
    _declared.update(dict.fromkeys(values, owner))
    return actions


def declared_actions() -> list[str]:
    """Every declared action, sorted."""
    _discover_actions()
    return sorted(_declared)


def action_groups() -> list[str]:
    """The prefixes the trail can be narrowed by ("member.", "token.", ...), sorted."""
    return sorted({action.split(".", 1)[0] + "." for action in declared_actions()})


def _discover_actions() -> None:
    # Each installed app's `actions` module registers its enum when imported. Importing them all
    # once, here, means an action is known even in a process that never imported the app's
    # services, and tenants still names no domain app.
    global _discovered
    if not _discovered:
        autodiscover_modules("actions")
        _discovered = True


def _declared_action(action: str) -> str:
    value = str(action.value if isinstance(action, Enum) else action)
    if value not in _declared:
        _discover_actions()
    if value not in _declared:
        raise ValueError(
            f"undeclared audit action {value!r}: add it to the AuditAction enum of its app"
        )
    return value


# ---- redaction ---------------------------------------------------------------------------------

# Keys whose value is a secret wherever they appear in before/after (compared lower-case, "-" as
# "_"): the exact names, any key containing one of the fragments, and any key ending in a suffix.
_SECRET_NAMES = {
    "token",
    "phone",
    "phone_number",
    "mobile",
    "dsn",
}
_SECRET_FRAGMENTS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "routing_key",
    "service_key",
    "integration_key",
    "token_hash",
)
_SECRET_SUFFIXES = ("_token", "_phone")
# Keys holding URLs whose path or query may carry a secret (a Slack or Teams webhook_url): scheme
# and host stay readable, the rest is redacted. The suffixes also catch camelCase (webhookUrl).
_URL_NAMES = {"endpoint"}
_URL_SUFFIXES = ("url", "uri", "_endpoint")
# "user:password@" in a URL anywhere in any text.
_CREDENTIALS_IN_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@")


def register_secret_fields(*names: str, url: bool = False) -> None:
    """Declare more keys whose values never reach the trail; `url=True` keeps scheme and host."""
    for name in names:
        (_URL_NAMES if url else _SECRET_NAMES).add(_normal_key(name))


def _normal_key(key: str) -> str:
    return str(key).strip().lower().replace("-", "_")


def _is_secret_key(key: str) -> bool:
    return (
        key in _SECRET_NAMES
        or any(fragment in key for fragment in _SECRET_FRAGMENTS)
        or key.endswith(_SECRET_SUFFIXES)
    )


def _is_url_key(key: str) -> bool:
    return key in _URL_NAMES or key.endswith(_URL_SUFFIXES)


def redact_url(value: str) -> str:
    """Scheme and host of a URL, with anything after them (or any credentials) redacted."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    has_more = parts.username or parts.password or parts.path.strip("/") or parts.query
    return f"{origin}/{REDACTED}" if has_more or parts.fragment else origin


def redact(value: Any, key: str = "") -> Any:
    """`value` with every secret replaced: values under secret-like keys (at any depth), all
    but scheme and host of URLs under URL keys, and credentials in any URL anywhere."""
    name = _normal_key(key)
    if name and _is_secret_key(name):
        return value if value in (None, "") else REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, key) for item in value]
    if isinstance(value, str):
        if name and _is_url_key(name) and value:
            return redact_url(value)
        return _CREDENTIALS_IN_URL.sub(rf"\1{REDACTED}@", value)
    return value


# ---- actors ------------------------------------------------------------------------------------


def clean_label(text: Any, limit: int = LABEL_MAX) -> str:
    """Text fit for a label: control and format characters (NUL, bidi overrides) removed,
    whitespace collapsed, at most `limit` characters."""
    text = "".join(
        " " if ch.isspace() else ch
        for ch in str(text or "")
        if ch.isspace() or unicodedata.category(ch) not in {"Cc", "Cf", "Cs"}
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ip_or_none(raw: Any) -> str | None:
    """`raw` as a normalised IP address, or None if it is not one."""
    try:
        return str(ipaddress.ip_address(str(raw or "").strip()))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The client's IP address (REMOTE_ADDR, as the ASGI server set it), or None if it is none."""
    return ip_or_none((getattr(request, "META", None) or {}).get("REMOTE_ADDR"))


@dataclass(frozen=True)
class Actor:
    """Who made a change: a person, a token, or the system itself."""

    kind: str
    id: str = ""
    label: str = ""
    remote_addr: str | None = None

    @classmethod
    def system(cls, label: str = "system", remote_addr: str | None = None) -> Actor:
        return cls(
            kind=AuditEvent.ActorKind.SYSTEM, label=clean_label(label), remote_addr=remote_addr
        )

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
        addr = client_address(request)
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiToken):
            return cls.for_token(auth, addr)
        return cls.for_user(request.user, addr)


# ---- writing -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


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
    event exists exactly when the change it describes does, and a failure to record fails that
    transaction. Raises ValueError for an action no app declared.
    """
    action = _declared_action(action)
    if tenant == "current":
        tenant = _current_tenant()
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(getattr(obj, "public_id", None) or obj.pk)
        object_repr = object_repr or str(obj)
    tenant_id = tenant.pk if tenant is not None else None
    # No savepoint: two round trips fewer per event, and the caller's change must not commit
    # without its event anyway.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # From here on nobody else can append to this chain until our transaction ends.
        tail = audit_chain.chain_tail(
            cursor,
            tenant_id,
            lock=(_AUDIT_LOCK_NAMESPACE, tenant_id or 0),
            before=redact(_jsonable(before)),
            after=redact(_jsonable(after)),
            remote_addr=actor.remote_addr,
        )
        event = AuditEvent(
            tenant=tenant,
            seq=tail.seq + 1,
            occurred_at=timezone.now(),
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=clean_label(actor.label),
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=clean_label(object_repr, 300),
            before=tail.before,
            after=tail.after,
            remote_addr=tail.remote_addr,
            prev_hash=tail.hash,
        )
        event.hash = audit_chain.new_event_hash(event, tail)
        event.save(force_insert=True)
    return event


def _current_tenant() -> Tenant | None:
    """The tenant of the connection's schema; None in the public schema."""
    schema = connection.schema_name
    if schema == get_public_schema_name():
        return None
    try:
        return current_tenant()
    except Tenant.DoesNotExist:
        raise RuntimeError(f"no tenant owns the schema {schema!r}") from None


# ---- reading -----------------------------------------------------------------------------------


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def events_for(
    tenant: Tenant | None,
    *,
    action: str = "",
    actor: str = "",
    text: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """The trail of one tenant (or of the platform for None), newest first, optionally narrowed:
    `action` by prefix ("token." = every token event), `actor` and `text` by substring, and
    `date_from`/`date_to` as whole days (both included) in the portal's time zone."""
    events = AuditEvent.objects.filter(tenant=tenant)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if text:
        events = events.filter(object_repr__icontains=text)
    if date_from:
        events = events.filter(occurred_at__gte=_start_of(date_from))
    if date_to:
        events = events.filter(occurred_at__lt=_start_of(date_to + timedelta(days=1)))
    return events.order_by("-seq")
