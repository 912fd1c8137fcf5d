"""Audit trail: appending hash-chained events versus plain INSERTs, and verifying a long chain.

Run with `python -m portal.devstack run bench/audit.py [--events N] [--verify-events N]`.

1. Append: N events through `tenants.audit.record` (declared action, redaction, the chain's
   advisory lock, the tail read, the hash, the INSERT), alternating in rounds with N plain INSERTs
   of the same values into a table of the same shape (`LIKE tenants_auditevent INCLUDING ALL`: same
   columns, indexes and checks; no trigger, no chain). Measured twice: one event per transaction,
   as every write in the portal commits its own, and 100 per transaction, which leaves the cost of
   the chain itself. Goal: chained >= 50% of plain events/s.
2. Verify: a chain of M events (default 1,000,000) is written with COPY, hashes computed as
   `record` computes them, then walked by `tenants.audit_chain.verify_chain`. Goal: < 10 s.

The run works in a database of its own (`<database>_bench`, see bench/provision.py), dropped at
the end: audit events are never deleted, the whole database is thrown away instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.common import bench_database  # noqa: E402
from tenants import audit  # noqa: E402
from tenants.audit_chain import GENESIS_HASH, content_hash, verify_chain  # noqa: E402
from tenants.models import AuditEvent, Tenant  # noqa: E402
from tenants.provisioning import provision_tenant  # noqa: E402

ACTOR = audit.Actor.system("bench", remote_addr="10.0.0.1")
ACTION = "tenant.updated"
PLAIN_TABLE = "bench_plain_auditevent"
ROUND = 250  # events per round; chained and plain rounds alternate
VERIFY_GOAL_S = 10.0
RATIO_GOAL = 0.5

COLUMNS = (
    "public_id",
    "tenant_id",
    "seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "remote_addr",
    "prev_hash",
    "hash",
)
PLAIN_INSERT = (
    f"INSERT INTO {PLAIN_TABLE} ({', '.join(COLUMNS)}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)"
)


def change(i: int) -> tuple[dict, dict]:
    """A typical before/after pair: a few short fields."""
    return (
        {"name": f"Bench {i}", "is_active": True, "role": "operator"},
        {"name": f"Bench {i + 1}", "is_active": i % 2 == 0, "role": "security"},
    )


@dataclass
class Mode:
    """One way of grouping events into transactions, and the time each method took."""

    name: str
    per_transaction: int
    chained_s: float = 0.0
    plain_s: float = 0.0
    events: int = 0
    rounds: list[tuple[float, float]] = field(default_factory=list)


def append_chained(tenant: Tenant, start: int, count: int, per_transaction: int) -> float:
    started = time.perf_counter()
    for first in range(start, start + count, per_transaction):
        with transaction.atomic():
            for i in range(first, min(first + per_transaction, start + count)):
                before, after = change(i)
                audit.record(
                    actor=ACTOR,
                    action=ACTION,
                    object_type="tenants.tenant",
                    object_id=str(tenant.public_id),
                    object_repr=f"Bench {i}",
                    before=before,
                    after=after,
                    tenant=tenant,
                )
    return time.perf_counter() - started


def append_plain(tenant: Tenant, start: int, count: int, per_transaction: int) -> float:
    started = time.perf_counter()
    for first in range(start, start + count, per_transaction):
        with transaction.atomic(), connection.cursor() as cursor:
            for i in range(first, min(first + per_transaction, start + count)):
                before, after = change(i)
                cursor.execute(
                    PLAIN_INSERT,
                    [
                        uuid.uuid4(),
                        tenant.pk,
                        i + 1,
                        timezone.now(),
                        ACTOR.kind,
                        ACTOR.id,
                        ACTOR.label,
                        ACTION,
                        "tenants.tenant",
                        str(tenant.public_id),
                        f"Bench {i}",
                        json.dumps(before),
                        json.dumps(after),
                        ACTOR.remote_addr,
                        GENESIS_HASH,
                        GENESIS_HASH,
                    ],
                )
    return time.perf_counter() - started


def run_append(modes: list[Mode], tenant: Tenant, events: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {PLAIN_TABLE} (LIKE {AuditEvent._meta.db_table} INCLUDING ALL)"
        )
    plain_seq = 0
    for mode in modes:
        # Warm-up: imports, prepared plans, the first pages of each index.
        append_chained(tenant, 0, mode.per_transaction, mode.per_transaction)
        append_plain(tenant, plain_seq, mode.per_transaction, mode.per_transaction)
        plain_seq += mode.per_transaction
        done = 0
        while done < events:
            count = min(ROUND, events - done)
            chained = append_chained(tenant, done, count, mode.per_transaction)
            plain = append_plain(tenant, plain_seq, count, mode.per_transaction)
            plain_seq += count
            mode.rounds.append((chained, plain))
            mode.chained_s += chained
            mode.plain_s += plain
            done += count
        mode.events = done
        print(f"  {mode.name}: {done} chained and {done} plain events appended", flush=True)


def jsonb_text(value: dict) -> str:
    """How PostgreSQL prints a flat jsonb object of strings and booleans: shorter keys first."""
    ordered = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
    return json.dumps(dict(ordered), ensure_ascii=False)


def write_long_chain(tenant: Tenant, count: int) -> int:
    """Append `count` well-formed events to the tenant's chain with COPY; returns the last seq.

    The hashes are computed here over the values as the database will print them, exactly as
    `record` computes them; the walk afterwards proves they agree.
    """
    last = (
        AuditEvent.objects.filter(tenant=tenant).order_by("-seq").values_list("seq", "hash").first()
    )
    seq, prev = last or (0, GENESIS_HASH)
    base = timezone.now()
    object_id = str(tenant.public_id)
    copy_sql = f"COPY {AuditEvent._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy(copy_sql) as copy,
    ):
        for i in range(count):
            seq += 1
            before, after = (jsonb_text(value) for value in change(i))
            public_id = str(uuid.uuid4())
            occurred_at = base + timedelta(microseconds=7 * i)
            digest = content_hash(
                (
                    seq,
                    tenant.pk,
                    public_id,
                    occurred_at.isoformat(timespec="microseconds"),
                    ACTOR.kind,
                    ACTOR.id,
                    ACTOR.label,
                    ACTION,
                    "tenants.tenant",
                    object_id,
                    f"Bench {i}",
                    before,
                    after,
                    ACTOR.remote_addr,
                    prev,
                )
            )
            copy.write_row(
                (
                    public_id,
                    tenant.pk,
                    seq,
                    occurred_at,
                    ACTOR.kind,
                    ACTOR.id,
                    ACTOR.label,
                    ACTION,
                    "tenants.tenant",
                    object_id,
                    f"Bench {i}",
                    before,
                    after,
                    ACTOR.remote_addr,
                    prev,
                    digest,
                )
            )
            prev = digest
            if (i + 1) % 200_000 == 0:
                print(f"  {i + 1}/{count} events written", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {AuditEvent._meta.db_table}")
    return seq


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def report_append(modes: list[Mode]) -> None:
    print()
    print("Append (events/s; both methods alternate in rounds of", ROUND, "events)")
    header = f"{'transactions':<24} {'events':>7} {'chained/s':>10} {'plain/s':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for mode in modes:
        chained = mode.events / mode.chained_s
        plain = mode.events / mode.plain_s
        print(
            f"{mode.name:<24} {mode.events:>7} {chained:>10.0f} {plain:>10.0f} "
            f"{chained / plain:>6.0%}"
        )
        ratios = sorted(c_plain / c for c, c_plain in mode.rounds)
        print(
            f"{'':<24} per-round ratio min {ratios[0]:.0%}, median "
            f"{ratios[len(ratios) // 2]:.0%}, max {ratios[-1]:.0%}"
        )
    realistic = modes[0]
    ratio = (realistic.events / realistic.chained_s) / (realistic.events / realistic.plain_s)
    verdict = "met" if ratio >= RATIO_GOAL else "NOT met"
    print(f"goal: chained >= {RATIO_GOAL:.0%} of plain ({realistic.name}): {ratio:.0%}, {verdict}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=2000, help="events per method and mode (default 2000)"
    )
    parser.add_argument(
        "--verify-events",
        type=int,
        default=1_000_000,
        help="length of the chain to verify (default 1,000,000)",
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.verify_events < 1:
        parser.error("--verify-events must be at least 1")
    with bench_database("_bench_audit"):
        run(args.events, args.verify_events)
    print("\ndropped the bench database with its audit trail")
    return 0


def run(events: int, verify_events: int) -> None:
    actor = audit.Actor.system("bench")
    appending = provision_tenant(
        slug="bench-append", name="Bench append", admin_email=None, actor=actor
    )
    verifying = provision_tenant(
        slug="bench-verify", name="Bench verify", admin_email=None, actor=actor
    )
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
    print(f"PostgreSQL {version}, synchronous_commit={sync}; load average {os.getloadavg()}")

    modes = [Mode("1 per transaction", 1), Mode("100 per transaction", 100)]
    run_append(modes, appending, events)
    report_append(modes)
    appended = verify_chain(appending)
    print(f"appended chain verifies: {appended.ok} ({appended.rows} events)")

    print(f"\nwriting a chain of {verify_events} events with COPY ...", flush=True)
    (last_seq, write_s, _) = timed(lambda: write_long_chain(verifying, verify_events))
    print(f"  written in {write_s:.1f} s (chain ends at seq {last_seq})")
    for attempt in ("first", "second"):
        check, wall, cpu = timed(lambda: verify_chain(verifying))
        verdict = "met" if wall < VERIFY_GOAL_S else "NOT met"
        print(
            f"verify ({attempt} walk): {check.rows} events in {wall:.2f} s "
            f"({check.rows / wall:,.0f} events/s, {cpu:.2f} s CPU in this process), "
            f"ok={check.ok}; goal < {VERIFY_GOAL_S:.0f} s: {wall / VERIFY_GOAL_S:.0%} of it, "
            f"{verdict}"
        )
        if not check.ok or check.last_seq != last_seq:
            raise SystemExit(f"the written chain did not verify: {check}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
