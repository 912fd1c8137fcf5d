"""The audit trail's hash chain: every event is chained to the one before it, the database refuses
to change or remove events, and `verify_audit` names the first row that does not verify, including
a tail cut off behind the last recorded head."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction

from tenants import audit
from tenants.actions import AuditAction
from tenants.audit_chain import (
    BROKEN_LINK,
    CONTENT_MISMATCH,
    GENESIS_HASH,
    MISSING_ROWS,
    MISSING_TAIL,
    canonical,
    chains,
    content_hash,
    latest_head,
    record_head,
    stored_hash_inputs,
    verify_chain,
)
from tenants.models import AuditChainHead, AuditEvent
from tenants.tasks import record_audit_chain_heads
from tests.conftest import BASE_DIR, wait_for

pytestmark = pytest.mark.django_db

ACTOR = audit.Actor.system("chain test")


def _record(tenant, count: int = 1, *, actor: audit.Actor = ACTOR, **fields) -> list[AuditEvent]:
    return [
        audit.record(
            actor=actor,
            action=AuditAction.TENANT_UPDATED,
            object_type="tenants.tenant",
            object_id=str(getattr(tenant, "public_id", "platform")),
            tenant=tenant,
            **{"object_repr": f"event {i}", "before": {"n": i}, "after": {"n": i + 1}, **fields},
        )
        for i in range(count)
    ]


def _drop_append_only_trigger() -> None:
    # DDL is transactional: the trigger is back when the test's transaction rolls back.
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER tenants_auditevent_append_only ON tenants_auditevent")


def _sql(statement: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        if statement.startswith(("TRUNCATE", "ALTER")):
            # Foreign keys are checked at commit; PostgreSQL refuses TRUNCATE and ALTER TABLE
            # while such checks are pending for rows written in this transaction.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(statement, params or [])


def _verify_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


# ---- chaining ----------------------------------------------------------------------------------


def test_fresh_events_verify_as_they_read_back_from_the_database(acme):
    # jsonb reorders keys and rewrites numbers (1e300 comes back as an integer, -0.0 as 0.0);
    # inet respells addresses. The hash must be over what reads back.
    awkward = {
        "z": [3, {"y": None, "x": 1.5}],
        "a": 1e300,
        "neg_zero": -0.0,
        "tiny": 1e-7,
        "price": Decimal("10.10"),
        "when": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "text": 'Ünïcode ✓ \u2028 "quoted" \\ tab\t',
        "webhook_url": "https://hooks.example/secret/path",
    }
    events = [
        *_record(acme, 1, before=awkward, after={**awkward, "a": 2}),
        *_record(acme, 1, actor=audit.Actor.system("x", remote_addr="::ffff:10.0.0.1")),
        *_record(None, 1, actor=audit.Actor.system("y", remote_addr="2001:DB8:0:0::1")),
    ]
    for written in events:
        read = AuditEvent.objects.get(pk=written.pk)
        assert read.hash == written.hash == content_hash(stored_hash_inputs(read.pk))
        assert (read.before, read.after, read.remote_addr) == (
            written.before,
            written.after,
            written.remote_addr,
        )
    assert events[0].after["a"] == 2 and events[0].before["a"] == 10**300
    assert events[0].before["webhook_url"] == "https://hooks.example/[redacted]"
    assert events[1].remote_addr == "::ffff:10.0.0.1"
    assert events[2].remote_addr == "2001:db8::1"
    for tenant in (acme, None):
        check = verify_chain(tenant)
        assert check.ok, check
        assert check.last_seq == AuditEvent.objects.filter(tenant=tenant).count() == check.rows


def test_each_event_links_to_the_one_before_it_from_genesis(acme):
    first = AuditEvent.objects.get(tenant=acme, seq=1)
    assert first.prev_hash == GENESIS_HASH
    previous, *new = _record(acme, 3)
    for event in new:
        assert event.seq == previous.seq + 1
        assert event.prev_hash == previous.hash != event.hash
        previous = event


HASHED = (
    "seq",
    "tenant",
    "event_id",
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
)


def test_the_canonical_content_is_sorted_compact_json_of_the_stored_event(acme):
    (event,) = _record(acme, before={"b": 1, "a": "x"})
    content = canonical(stored_hash_inputs(event.pk)).decode()
    parsed = json.loads(content)
    assert list(parsed) == sorted(HASHED)
    assert content.startswith('{"action":"tenant.updated","actor_id":"","actor_kind":"system",')
    assert parsed["before"] == {"a": "x", "b": 1} and parsed["after"] == event.after
    assert parsed["occurred_at"] == event.occurred_at.isoformat(timespec="microseconds")
    assert (parsed["seq"], parsed["tenant"], parsed["event_id"]) == (
        event.seq,
        acme.pk,
        str(event.public_id),
    )
    assert parsed["prev_hash"] == event.prev_hash
    assert content_hash(stored_hash_inputs(event.pk)) == event.hash


def test_the_hash_covers_every_field_of_the_event(acme):
    (event,) = _record(acme)
    values = stored_hash_inputs(event.pk)
    changed = {
        "seq": event.seq + 1,
        "tenant": None,
        "event_id": "00000000-0000-0000-0000-000000000000",
        "occurred_at": "2000-01-01T00:00:00.000000+00:00",
        "actor_kind": "user",
        "actor_id": "7",
        "actor_label": "someone else",
        "action": "tenant.renamed",
        "object_type": "tenants.membership",
        "object_id": "other",
        "object_repr": "other",
        "before": '{"n": 99}',
        "after": None,
        "remote_addr": "10.0.0.9",
        "prev_hash": GENESIS_HASH,
    }
    assert set(changed) == set(HASHED)
    for name, value in changed.items():
        forged = list(values)
        forged[HASHED.index(name)] = value
        assert content_hash(forged) != event.hash, name
    assert content_hash(values) == event.hash


# ---- tampering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "object_repr = 'forged'",
        """after = '{"n": 1000}'::jsonb""",
        "before = NULL",
        "occurred_at = occurred_at - interval '1 day'",
        "actor_label = 'someone else'",
        "remote_addr = '10.9.9.9'",
        "action = 'tenant.renamed'",
        "public_id = gen_random_uuid()",
    ],
)
def test_a_row_changed_through_sql_is_caught_at_that_row(acme, globex, assignment):
    events = _record(acme, 4)
    target = events[1]
    _drop_append_only_trigger()
    _sql(f"UPDATE tenants_auditevent SET {assignment} WHERE id = %s", [target.pk])

    check = verify_chain(acme)
    assert (check.ok, check.bad_seq, check.problem) == (False, target.seq, CONTENT_MISMATCH)
    assert check.rows == target.seq - 1
    out, error = _verify_command("--tenant", "acme")
    assert f"acme: {target.seq - 1} row(s) verified, FAILED at seq {target.seq}: " in out
    assert CONTENT_MISMATCH in out
    assert "1 of 1 chain(s)" in error and "failed verification" in error
    # Other chains are not affected.
    assert verify_chain(globex).ok
    assert _verify_command("--tenant", "globex")[1] == ""


def test_a_forged_row_with_a_recomputed_hash_breaks_the_link_to_the_next_row(acme):
    events = _record(acme, 3)
    target = events[1]
    _drop_append_only_trigger()
    _sql("UPDATE tenants_auditevent SET object_repr = 'forged' WHERE id = %s", [target.pk])
    rehashed = content_hash(stored_hash_inputs(target.pk))
    _sql("UPDATE tenants_auditevent SET hash = %s WHERE id = %s", [rehashed, target.pk])

    check = verify_chain(acme)
    assert (check.bad_seq, check.problem) == (target.seq + 1, BROKEN_LINK)
    assert f"seq {target.seq} or seq {target.seq + 1} was altered" in check.detail


def test_a_row_removed_from_the_middle_is_caught_where_it_was(acme):
    events = _record(acme, 3)
    _drop_append_only_trigger()
    _sql("DELETE FROM tenants_auditevent WHERE id = %s", [events[1].pk])

    check = verify_chain(acme)
    assert (check.bad_seq, check.problem) == (events[1].seq, MISSING_ROWS)
    assert f"jumps from seq {events[0].seq} to seq {events[2].seq}" in check.detail


def test_removing_the_newest_rows_is_caught_against_the_recorded_head(acme):
    events = _record(acme, 4)
    outcome = record_head(acme)
    assert (outcome.status, outcome.seq, outcome.hash) == (
        "recorded",
        events[-1].seq,
        events[-1].hash,
    )
    assert verify_chain(acme).ok

    _drop_append_only_trigger()
    _sql(
        "DELETE FROM tenants_auditevent WHERE tenant_id = %s AND seq >= %s",
        [acme.pk, events[-2].seq],
    )

    check = verify_chain(acme)
    assert (check.ok, check.bad_seq, check.problem) == (False, events[-2].seq, MISSING_TAIL)
    assert check.rows == events[-3].seq
    assert f"head was recorded at seq {events[-1].seq}" in check.detail
    out, error = _verify_command("--tenant", "acme")
    assert f"FAILED at seq {events[-2].seq}: {MISSING_TAIL}" in out and error
    # The shorter chain is not recorded as the new head: that would hide the loss.
    heads = AuditChainHead.objects.filter(tenant=acme).count()
    refused = record_head(acme)
    assert refused.status == "refused" and "no longer reaches" in refused.reason
    assert AuditChainHead.objects.filter(tenant=acme).count() == heads


def test_a_rewritten_tail_that_still_links_is_caught_by_the_recorded_head(acme):
    events = _record(acme, 2)
    record_head(acme)
    _drop_append_only_trigger()
    # Replace the newest row with a well-formed one of the same seq: it links and hashes fine.
    _sql("UPDATE tenants_auditevent SET object_repr = 'forged' WHERE id = %s", [events[-1].pk])
    rehashed = content_hash(stored_hash_inputs(events[-1].pk))
    _sql("UPDATE tenants_auditevent SET hash = %s WHERE id = %s", [rehashed, events[-1].pk])

    check = verify_chain(acme)
    assert (check.bad_seq, check.problem) == (events[-1].seq, "differs from the recorded head")


# ---- append-only in the database ---------------------------------------------------------------


def _refused(operation) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        operation()


def test_update_and_delete_of_events_fail_through_the_orm_and_raw_sql(acme):
    (event,) = _record(acme)
    count = AuditEvent.objects.count()

    def save_changed() -> None:
        changed = AuditEvent.objects.get(pk=event.pk)
        changed.object_repr = "forged"
        changed.save()

    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(object_repr="forged"))
    _refused(save_changed)
    _refused(lambda: AuditEvent.objects.get(pk=event.pk).delete())
    _refused(lambda: AuditEvent.objects.filter(tenant=acme).delete())
    _refused(lambda: _sql("UPDATE tenants_auditevent SET hash = %s WHERE id = %s", ["0", event.pk]))
    _refused(lambda: _sql("DELETE FROM tenants_auditevent WHERE id = %s", [event.pk]))
    _refused(lambda: _sql("TRUNCATE tenants_auditevent"))

    assert AuditEvent.objects.count() == count
    assert AuditEvent.objects.get(pk=event.pk).object_repr == event.object_repr
    assert verify_chain(acme).ok


def test_recorded_heads_cannot_be_changed_or_removed_either(acme):
    _record(acme)
    record_head(acme)
    head = latest_head(acme)

    _refused(lambda: AuditChainHead.objects.filter(pk=head.pk).update(seq=1))
    _refused(lambda: AuditChainHead.objects.get(pk=head.pk).delete())
    _refused(lambda: _sql("DELETE FROM tenants_auditchainhead WHERE id = %s", [head.pk]))
    _refused(lambda: _sql("TRUNCATE tenants_auditchainhead"))
    assert latest_head(acme) == head


def test_events_are_chained_in_order_when_two_writers_append_at_once(acme):
    """The second writer waits for the first's lock and then chains onto its committed row."""
    release = threading.Event()
    written: dict[str, AuditEvent] = {}
    pids: dict[str, int] = {}
    errors: list[BaseException] = []

    def append(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pids[name] = cursor.fetchone()[0]
                written[name] = _record(acme, 1, actor=audit.Actor.system(f"chain {name}"))[0]
                if hold:
                    release.wait(30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=append, args=("first", True))
    first.start()
    wait_for(lambda: "first" in written, message="the first writer to append")
    second = threading.Thread(target=append, args=("second", False))
    second.start()

    def second_waits_on_the_lock() -> bool:
        with connections["default"].cursor() as cursor:
            # Activity is read once per transaction unless the snapshot is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pids.get("second")]
            )
            row = cursor.fetchone()
        return bool(row) and row[0] == "Lock"

    try:
        wait_for(second_waits_on_the_lock, message="the second writer to wait for the chain lock")
    finally:
        release.set()
        first.join(30)
        second.join(30)
    assert not errors, errors
    assert written["second"].seq == written["first"].seq + 1
    assert written["second"].prev_hash == written["first"].hash
    assert verify_chain(acme).ok


# ---- recording heads ---------------------------------------------------------------------------


def test_the_daily_task_records_each_chain_head_once(acme, globex):
    _record(acme)
    counts = record_audit_chain_heads.apply().get()
    assert counts["refused"] == 0 and counts["recorded"] >= 1
    assert counts["recorded"] + counts["unchanged"] == len(chains())
    for chain in chains():
        newest = AuditEvent.objects.filter(tenant=chain).order_by("-seq").first()
        head = latest_head(chain)
        if newest is None:
            assert head is None
        else:
            assert (head.seq, head.hash) == (newest.seq, newest.hash)

    again = record_audit_chain_heads.apply().get()
    assert again["recorded"] == 0
    assert again["unchanged"] == counts["recorded"] + counts["unchanged"]

    (event,) = _record(acme)
    after_write = record_audit_chain_heads.apply().get()
    assert after_write["recorded"] == 1
    assert (latest_head(acme).seq, latest_head(acme).hash) == (event.seq, event.hash)


def test_the_chain_heads_are_recorded_daily_by_beat():
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == record_audit_chain_heads.name
    )
    assert entry["schedule"] == 24 * 60 * 60


# ---- verify_audit ------------------------------------------------------------------------------


def test_verify_audit_reports_every_chain_ok(acme):
    _record(acme, 2)
    out, error = _verify_command()
    assert error == ""
    lines = out.splitlines()
    assert lines[0].startswith("platform: ") and lines[0].endswith(")")
    acme_rows = AuditEvent.objects.filter(tenant=acme).count()
    assert f"acme: {acme_rows} row(s) checked, OK (head seq {acme_rows})" in lines
    assert any(line.startswith("globex: ") and ", OK (" in line for line in lines)
    assert lines[-1].startswith(f"all {len(chains())} chain(s), ") and lines[-1].endswith(": OK")


def test_verify_audit_checks_only_the_platform_chain_when_asked(acme):
    _record(None, 1)
    out, error = _verify_command("--platform")
    platform_rows = AuditEvent.objects.filter(tenant=None).count()
    assert error == ""
    assert out.splitlines() == [
        f"platform: {platform_rows} row(s) checked, OK (head seq {platform_rows})",
        out.splitlines()[-1],
    ]
    assert out.splitlines()[-1].startswith("all 1 chain(s), ")
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("verify_audit", "--platform", "--tenant", "acme", stdout=io.StringIO())


def test_verify_audit_names_an_unknown_tenant():
    with pytest.raises(CommandError, match="--tenant: no tenant has the slug 'nope'"):
        call_command("verify_audit", "--tenant", "nope", stdout=io.StringIO())


def test_verify_audit_as_a_command_exits_zero_on_a_sound_trail_and_one_on_a_bad_slug(process_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "verify_audit", *args],
            cwd=BASE_DIR,
            env=process_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    sound = run("--tenant", "acme")
    assert sound.returncode == 0, sound.stderr
    assert "acme: " in sound.stdout and ", OK (head seq " in sound.stdout
    unknown = run("--tenant", "nope")
    assert unknown.returncode == 1
    assert "no tenant has the slug 'nope'" in unknown.stderr


# ---- the migration -----------------------------------------------------------------------------


def test_the_migration_chains_existing_events_exactly_as_record_does(acme, globex):
    _record(acme, 2)
    _record(None, 1)
    written = dict(AuditEvent.objects.values_list("pk", "hash"))
    _drop_append_only_trigger()
    _sql("ALTER TABLE tenants_auditevent DROP CONSTRAINT audit_hash_is_sha256")
    _sql("UPDATE tenants_auditevent SET prev_hash = '', hash = ''")

    migration = importlib.import_module("tenants.migrations.0003_audit_chain")
    migration.backfill(apps, SimpleNamespace(connection=connection))

    assert dict(AuditEvent.objects.values_list("pk", "hash")) == written
    for chain in (None, acme, globex):
        assert verify_chain(chain).ok
