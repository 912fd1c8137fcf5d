"""The audit trail's hash chain: canonical content of an event, its hash, and the walks that
verify a chain and record its head.

Each event's `hash` is the SHA-256 of its canonical content, which includes `prev_hash`, the hash
of the event before it in the same chain (64 zeros for the first). Changing, removing or
reordering a row breaks the chain from that row on; removing the newest rows leaves a shorter chain
that verifies, so the head of every chain is recorded outside the audit table once a day
(`AuditChainHead`) and a chain must still reach every head recorded for it.

Canonical content: one line of JSON, UTF-8, keys sorted, no whitespace between them:

    {"action":…,"actor_id":…,"actor_kind":…,"actor_label":…,"after":…,"before":…,
     "event_id":"<public id>","object_id":…,"object_repr":…,"object_type":…,
     "occurred_at":"YYYY-MM-DDTHH:MM:SS.ffffff+00:00","prev_hash":"…","remote_addr":…|null,
     "seq":N,"tenant":<tenant id>|null}

Strings are escaped as JSON requires (quote, backslash and control characters only). `before`
and `after` appear exactly as PostgreSQL prints the stored jsonb (`before::text`: its own key
order and spacing, its number formats) and `remote_addr` as it prints the inet: hashing what the
database returns, rather than re-encoding it, is what makes a walk over a million rows fast, and
it is what anyone holding the database can reproduce (WALK_SQL).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenants.models import AuditChainHead, AuditEvent, Tenant

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

# The hashed values of each row in the form `canonical` takes them, then the stored hash.
_SELECT_TEXT = """
SELECT seq, tenant_id, public_id::text,
    to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    actor_kind, actor_id, actor_label, action, object_type, object_id, object_repr,
    before::text, after::text, abbrev(remote_addr), prev_hash, hash
FROM tenants_auditevent WHERE {where}
"""
WALK_SQL = _SELECT_TEXT.replace("{where}", "tenant_id = %s ORDER BY seq")
PLATFORM_WALK_SQL = _SELECT_TEXT.replace("{where}", "tenant_id IS NULL ORDER BY seq")
ROW_SQL = _SELECT_TEXT.replace("{where}", "id = %s")

_CANONICAL = (
    '{"action":%s,"actor_id":%s,"actor_kind":%s,"actor_label":%s,"after":%s,"before":%s,'
    '"event_id":"%s","object_id":%s,"object_repr":%s,"object_type":%s,"occurred_at":"%s",'
    '"prev_hash":%s,"remote_addr":%s,"seq":%d,"tenant":%s}'
)


def canonical(values: Sequence[Any]) -> bytes:
    """The canonical content of an event from its 15 hashed values, in WALK_SQL's order and form."""
    (
        seq,
        tenant_id,
        public_id,
        occurred_at,
        actor_kind,
        actor_id,
        actor_label,
        action,
        object_type,
        object_id,
        object_repr,
        before,
        after,
        remote_addr,
        prev_hash,
    ) = values[:15]
    return (
        _CANONICAL
        % (
            encode_basestring(action),
            encode_basestring(actor_id),
            encode_basestring(actor_kind),
            encode_basestring(actor_label),
            "null" if after is None else after,
            "null" if before is None else before,
            public_id,
            encode_basestring(object_id),
            encode_basestring(object_repr),
            encode_basestring(object_type),
            occurred_at,
            encode_basestring(prev_hash),
            "null" if remote_addr is None else encode_basestring(remote_addr),
            seq,
            "null" if tenant_id is None else tenant_id,
        )
    ).encode()


def content_hash(values: Sequence[Any]) -> str:
    """SHA-256 (hex) of the canonical content of an event given its hashed values."""
    return hashlib.sha256(canonical(values)).hexdigest()


def stored_hash_inputs(event_id: int) -> tuple:
    """The hashed values of a stored event (by primary key), read as the walk reads them."""
    with connection.cursor() as cursor:
        cursor.execute(ROW_SQL, [event_id])
        row = cursor.fetchone()
    if row is None:
        raise AuditEvent.DoesNotExist(f"no audit event with id {event_id}")
    return row[:15]


# ---- appending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainTail:
    """The newest event of a chain, and a new event's before/after/remote_addr as they will read
    back: as Python values and as the text the hash covers."""

    seq: int
    hash: str
    before: Any
    after: Any
    before_text: str | None
    after_text: str | None
    remote_addr: str | None


# One round trip, under the chain's lock: `portal_audit_chain_tail` (a VOLATILE function, see the
# migration) takes the advisory lock and only then reads the newest row, with a snapshot taken
# after the lock, so it sees whatever the previous holder committed. jsonb normalises key order,
# duplicate keys and number formats (1e+300 reads back as an integer, -0.0 as 0.0) and inet has
# its own spelling of an address: a new event's values take that round trip in the same query,
# so that its hash covers them as they will read back.
TAIL_SQL = """
SELECT last.seq, last.hash, %s::jsonb::text, %s::jsonb::text, abbrev(%s::inet)
FROM (SELECT 1) AS one LEFT JOIN portal_audit_chain_tail(%s, %s, %s) AS last ON true
"""


def chain_tail(
    cursor,
    tenant_id: int | None,
    *,
    lock: tuple[int, int],
    before: Any,
    after: Any,
    remote_addr: str | None,
) -> ChainTail:
    """Take the chain's advisory lock (held until the transaction ends), then read its newest
    event and the stored forms of a new event's before/after/remote_addr."""
    params: list[Any] = [
        None if before is None else json.dumps(before),
        None if after is None else json.dumps(after),
        remote_addr,
        *lock,
        tenant_id,
    ]
    cursor.execute(TAIL_SQL, params)
    seq, last_hash, before_text, after_text, stored_addr = cursor.fetchone()
    return ChainTail(
        seq=seq or 0,
        hash=last_hash or GENESIS_HASH,
        before=None if before_text is None else json.loads(before_text),
        after=None if after_text is None else json.loads(after_text),
        before_text=before_text,
        after_text=after_text,
        remote_addr=stored_addr,
    )


def new_event_hash(event: AuditEvent, tail: ChainTail) -> str:
    """The hash of an event about to be appended after `tail` (its values from `chain_tail`)."""
    return content_hash(
        (
            event.seq,
            event.tenant_id,
            str(event.public_id),
            event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            event.actor_kind,
            event.actor_id,
            event.actor_label,
            event.action,
            event.object_type,
            event.object_id,
            event.object_repr,
            tail.before_text,
            tail.after_text,
            tail.remote_addr,
            tail.hash,
        )
    )


# ---- verifying ---------------------------------------------------------------------------------

CONTENT_MISMATCH = "content hash mismatch"
BROKEN_LINK = "broken link"
MISSING_ROWS = "missing rows"
HEAD_MISMATCH = "differs from the recorded head"
MISSING_TAIL = "missing tail vs recorded head"


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of verifying one chain: rows checked, and the first row that failed, if any."""

    tenant: Tenant | None
    rows: int
    last_seq: int
    last_hash: str
    bad_seq: int | None = None
    problem: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_seq is None

    @property
    def name(self) -> str:
        return "platform" if self.tenant is None else self.tenant.slug


def chains() -> list[Tenant | None]:
    """Every chain: the platform's (None), then each tenant's, by slug.

    The public tenant only when it has a chain: its schema's events belong to the platform.
    """
    has_chain = Exists(AuditEvent.objects.filter(tenant=OuterRef("pk"))) | Exists(
        AuditChainHead.objects.filter(tenant=OuterRef("pk"))
    )
    tenants = Tenant.objects.filter(~Q(schema_name=get_public_schema_name()) | has_chain)
    return [None, *tenants.order_by("schema_name")]


def verify_chain(tenant: Tenant | None, *, chunk_size: int = 10_000) -> ChainCheck:
    """Walk a chain in `seq` order and stop at the first row that does not verify."""
    # One transaction: the rows stream through a server-side cursor instead of being
    # materialised first, and the heads are read before the rows, so every recorded head
    # precedes the newest row the walk sees.
    with transaction.atomic():
        heads = _recorded_heads(tenant)
        with connection.chunked_cursor() as cursor:
            if tenant is None:
                cursor.execute(PLATFORM_WALK_SQL)
            else:
                cursor.execute(WALK_SQL, [tenant.pk])
            # Closed before the cursor is: a walk that stops early waits for the read-ahead.
            with closing(_stream(cursor, chunk_size)) as rows:
                return _walk(tenant, rows, heads)


def _stream(cursor, chunk_size: int) -> Iterator[Sequence[Any]]:
    # The next chunk is fetched on a helper thread (psycopg releases the GIL while it waits) as
    # this one hashes the current chunk, so the database and the hashing work at the same time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-walk") as fetcher:
        pending = fetcher.submit(cursor.fetchmany, chunk_size)
        while rows := pending.result():
            pending = fetcher.submit(cursor.fetchmany, chunk_size)
            yield from rows


def _recorded_heads(tenant: Tenant | None) -> dict[int, tuple[str, datetime]]:
    heads: dict[int, tuple[str, datetime]] = {}
    for seq, head_hash, recorded_at in (
        AuditChainHead.objects.filter(tenant=tenant)
        .order_by("recorded_at")
        .values_list("seq", "hash", "recorded_at")
    ):
        heads.setdefault(seq, (head_hash, recorded_at))
    return heads


def _walk(
    tenant: Tenant | None,
    rows: Iterable[Sequence[Any]],
    heads: dict[int, tuple[str, datetime]],
) -> ChainCheck:
    sha256 = hashlib.sha256
    expected_seq = 1
    prev = GENESIS_HASH

    def failed(seq: int, problem: str, detail: str) -> ChainCheck:
        return ChainCheck(tenant, expected_seq - 1, expected_seq - 1, prev, seq, problem, detail)

    for row in rows:
        seq, stored_prev, stored = row[0], row[14], row[15]
        if seq != expected_seq:
            return failed(
                expected_seq,
                MISSING_ROWS,
                f"the chain jumps from seq {expected_seq - 1} to seq {seq}",
            )
        if stored_prev != prev:
            return failed(
                seq,
                BROKEN_LINK,
                "its prev_hash is not the hash of the row before it "
                f"(seq {seq - 1} or seq {seq} was altered)",
            )
        if sha256(canonical(row)).hexdigest() != stored:
            return failed(seq, CONTENT_MISMATCH, "its content does not match its hash")
        head = heads.get(seq)
        if head is not None and head[0] != stored:
            return failed(seq, HEAD_MISMATCH, f"the head recorded at {head[1]:%Y-%m-%d %H:%M} UTC")
        prev = stored
        expected_seq += 1
    if heads and max(heads) >= expected_seq:
        top = max(heads)
        return failed(
            expected_seq,
            MISSING_TAIL,
            f"the chain ends at seq {expected_seq - 1} but a head was recorded at seq {top} "
            f"on {heads[top][1]:%Y-%m-%d %H:%M} UTC",
        )
    return ChainCheck(tenant, expected_seq - 1, expected_seq - 1, prev)


# ---- recording heads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadOutcome:
    """What recording one chain's head did: "recorded", "unchanged" or "refused" (and why)."""

    tenant: Tenant | None
    status: str
    seq: int = 0
    hash: str = ""
    reason: str = ""


def record_head(tenant: Tenant | None, *, now: datetime | None = None) -> HeadOutcome:
    """Record the newest event of a chain in AuditChainHead, unless it is the last one recorded.

    Refused (and logged) when the chain no longer reaches its last recorded head: recording the
    shorter chain would hide that its tail is gone.
    """
    newest = (
        AuditEvent.objects.filter(tenant=tenant).order_by("-seq").values_list("seq", "hash").first()
    )
    last = AuditChainHead.objects.filter(tenant=tenant).order_by("-seq", "-recorded_at").first()
    if newest is None and last is None:
        return HeadOutcome(tenant, "unchanged")
    if last is not None:
        at_last = AuditEvent.objects.filter(tenant=tenant, seq=last.seq).values_list(
            "hash", flat=True
        )
        if newest is None or newest[0] < last.seq or at_last.first() != last.hash:
            reason = (
                f"the chain no longer reaches the head recorded on {last.recorded_at:%Y-%m-%d} "
                f"(seq {last.seq}); run manage.py verify_audit"
            )
            name = "platform" if tenant is None else tenant.slug
            logger.error("audit chain %s: head not recorded: %s", name, reason)
            return HeadOutcome(tenant, "refused", reason=reason)
        if (last.seq, last.hash) == newest:
            return HeadOutcome(tenant, "unchanged", last.seq, last.hash)
    seq, head_hash = newest
    AuditChainHead.objects.create(
        tenant=tenant, seq=seq, hash=head_hash, recorded_at=now or timezone.now()
    )
    return HeadOutcome(tenant, "recorded", seq, head_hash)


def record_heads() -> list[HeadOutcome]:
    """Record the head of every chain (see `record_head`), all with the same timestamp."""
    now = timezone.now()
    return [record_head(tenant, now=now) for tenant in chains()]


def latest_head(tenant: Tenant | None) -> AuditChainHead | None:
    """The newest head recorded for a chain (what a compliance snapshot quotes), or None."""
    return AuditChainHead.objects.filter(tenant=tenant).order_by("-seq", "-recorded_at").first()


# ---- the last verification, as pages show it ----------------------------------------------------
#
# Verifications are kept by the compliance app (its assessment walks the chain); tenants does not
# import it, so it registers the reader at start-up.

_verification_reader = None


def set_verification_reader(reader) -> None:
    """`reader()` returns the current tenant's latest verification (checked_at, ok, rows,
    bad_seq, problem) or None."""
    global _verification_reader
    _verification_reader = reader


def last_verification():
    return _verification_reader() if _verification_reader is not None else None
