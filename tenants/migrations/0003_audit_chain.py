"""The audit trail becomes a hash chain per tenant (and the platform's), append-only in PostgreSQL.

Existing events get their prev_hash/hash in seq order per chain before the triggers exist; from
then on UPDATE, DELETE and TRUNCATE of audit events and of recorded chain heads are refused by the
database itself, whoever sends them.
"""

import django.db.models.deletion
from django.db import migrations, models

# The canonical form is the chain's contract: the backfill must hash exactly as `record` does.
from tenants.audit_chain import GENESIS_HASH, PLATFORM_WALK_SQL, WALK_SQL, content_hash

BATCH = 2000

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION portal_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% refused: the audit trail is append-only', TG_OP, TG_TABLE_SCHEMA,
        TG_TABLE_NAME
        USING HINT = 'Audit events and recorded chain heads can only be added.';
END
$$;
"""


# Takes a chain's advisory lock, then reads its newest event. VOLATILE: each statement in it takes
# a fresh snapshot, so the read sees what the lock's previous holder committed (a snapshot taken
# before the lock was granted would not). One round trip instead of two for every event written.
CHAIN_TAIL_FUNCTION = """
CREATE FUNCTION portal_audit_chain_tail(lock_namespace integer, lock_key integer, chain bigint)
RETURNS TABLE (seq bigint, hash text) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_namespace, lock_key);
    IF chain IS NULL THEN
        RETURN QUERY SELECT e.seq, e.hash::text FROM tenants_auditevent AS e
            WHERE e.tenant_id IS NULL ORDER BY e.seq DESC LIMIT 1;
    ELSE
        RETURN QUERY SELECT e.seq, e.hash::text FROM tenants_auditevent AS e
            WHERE e.tenant_id = chain ORDER BY e.seq DESC LIMIT 1;
    END IF;
END
$$;
"""


def _triggers(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_audit_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_audit_change();
"""


def _drop_triggers(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS {table}_append_only ON {table};
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
"""


# A hash is 64 lowercase hex digits: a writer that forgot to chain a row fails on insert.
HASH_CHECK = (
    "ALTER TABLE tenants_auditevent ADD CONSTRAINT audit_hash_is_sha256 "
    "CHECK (hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$')"
)


def backfill(apps, schema_editor):
    """Chain the events written before this migration, in seq order per chain."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id FROM tenants_auditevent")
        chains = [row[0] for row in cursor.fetchall()]
    for tenant_id in chains:
        _backfill_chain(connection, tenant_id)


_SET_HASHES = "UPDATE tenants_auditevent SET prev_hash = %s, hash = %s WHERE "


def _backfill_chain(connection, tenant_id: int | None) -> None:
    if tenant_id is None:
        walk, params = PLATFORM_WALK_SQL, []
        update = _SET_HASHES + "tenant_id IS NULL AND seq = %s"
    else:
        walk, params = WALK_SQL, [tenant_id]
        update = _SET_HASHES + "tenant_id = %s AND seq = %s"
    prev = GENESIS_HASH
    with connection.chunked_cursor() as rows, connection.cursor() as updates:
        rows.execute(walk, params)
        while batch := rows.fetchmany(BATCH):
            changes = []
            for row in batch:
                values = (*row[:14], prev)
                digest = content_hash(values)
                key = [row[0]] if tenant_id is None else [tenant_id, row[0]]
                changes.append([prev, digest, *key])
                prev = digest
            updates.executemany(update, changes)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_membership_joined_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("recorded_at", models.DateTimeField()),
                (
                    "tenant",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="audit_chain_heads",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["-recorded_at"],
                "indexes": [models.Index(fields=["tenant", "-seq"], name="audit_head_latest")],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunSQL(
            HASH_CHECK,
            "ALTER TABLE tenants_auditevent DROP CONSTRAINT IF EXISTS audit_hash_is_sha256",
        ),
        migrations.RunSQL(
            CHAIN_TAIL_FUNCTION,
            "DROP FUNCTION IF EXISTS portal_audit_chain_tail(integer, integer, bigint)",
        ),
        migrations.RunSQL(
            APPEND_ONLY_FUNCTION
            + _triggers("tenants_auditevent")
            + _triggers("tenants_auditchainhead"),
            _drop_triggers("tenants_auditevent")
            + _drop_triggers("tenants_auditchainhead")
            + "DROP FUNCTION IF EXISTS portal_refuse_audit_change();",
        ),
    ]
