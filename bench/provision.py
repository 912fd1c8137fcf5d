"""Tenant creation time: cloning the template schema versus running every tenant migration.

Run with `python -m portal.devstack run bench/provision.py [--count N]`. Both methods go through
`tenants.provisioning.provision_tenant`; the second one with
`TENANT_CREATION_FAKES_MIGRATIONS=False`, which makes django-tenants create an empty schema and
migrate it instead of cloning `TENANT_BASE_SCHEMA`.

The run works in a database of its own (`<database>_bench`, created and migrated the way the test
database is, and dropped at the end; a leftover of an interrupted run is replaced at the next
start). The audit trail is append-only, so the bench never deletes tenants or their audit events:
it throws the whole database away instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from bench.common import bench_database, percentile  # noqa: E402
from tenants import audit  # noqa: E402
from tenants.provisioning import (  # noqa: E402
    provision_tenant,
)

SLUG_PREFIX = "bench-"
ACTOR = audit.Actor.system("bench")


@dataclass
class Method:
    """One way of creating a tenant, the time each creation took and the SQL it sent."""

    name: str
    slug_prefix: str
    fakes_migrations: bool
    times_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    clone_fn_ms: list[float] = field(default_factory=list)
    clone_calls: int = 0
    create_tables: int = 0


class SqlCounter:
    """Counts the statements that tell the two creation paths apart, and times all SQL."""

    def __init__(self) -> None:
        self.clone_calls = 0
        self.create_tables = 0
        self.sql_ms = 0.0
        self.clone_fn_ms = 0.0

    def __call__(self, execute: Callable, sql, params, many, context):
        text = str(sql).lstrip().upper()
        is_clone = text.startswith("SELECT CLONE_SCHEMA(")
        if is_clone:
            self.clone_calls += 1
        elif text.startswith("CREATE TABLE"):
            self.create_tables += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.sql_ms += elapsed_ms
            if is_clone:
                self.clone_fn_ms += elapsed_ms


def create(method: Method, slug: str) -> tuple[float, SqlCounter]:
    counter = SqlCounter()
    with (
        override_settings(TENANT_CREATION_FAKES_MIGRATIONS=method.fakes_migrations),
        connection.execute_wrapper(counter),
    ):
        started = time.perf_counter()
        provision_tenant(slug=slug, name=f"Bench {slug}", admin_email=None, actor=ACTOR)
        elapsed_ms = (time.perf_counter() - started) * 1000
    connection.set_schema_to_public()
    return elapsed_ms, counter


def check_path(method: Method, counter: SqlCounter) -> None:
    """Fail loudly if a creation did not take the path its method names."""
    if method.fakes_migrations:
        ok = counter.clone_calls == 1 and counter.create_tables == 0
    else:
        ok = counter.clone_calls == 0 and counter.create_tables > 0
    if not ok:
        raise SystemExit(
            f"{method.name}: unexpected creation path (clone_schema calls: "
            f"{counter.clone_calls}, CREATE TABLE statements: {counter.create_tables})"
        )


def context_lines() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            [settings.TENANT_BASE_SCHEMA],
        )
        tables = cursor.fetchone()[0]
        cursor.execute(f'SELECT count(*) FROM "{settings.TENANT_BASE_SCHEMA}".django_migrations')
        migrations = cursor.fetchone()[0]
    return [
        f"PostgreSQL {version}; template schema '{settings.TENANT_BASE_SCHEMA}': "
        f"{tables} tables, {migrations} recorded migrations",
    ]


def report(methods: list[Method], count: int) -> None:
    header = (
        f"{'method':<10} {'tenants':>7} {'mean ms':>9} {'median ms':>10} {'p95 ms':>9} "
        f"{'all SQL':>8} {'clone_schema()':>14}"
    )
    print()
    print(f"Tenant creation, {count} tenants per method (after one warm-up each)")
    for line in context_lines():
        print(line)
    print()
    print(header)
    print("-" * len(header))
    for m in methods:
        print(
            f"{m.name:<10} {len(m.times_ms):>7} {statistics.fmean(m.times_ms):>9.1f} "
            f"{statistics.median(m.times_ms):>10.1f} {percentile(m.times_ms, 95):>9.1f} "
            f"{statistics.fmean(m.sql_ms):>8.1f} {statistics.fmean(m.clone_fn_ms):>14.1f}"
        )
    print("(all SQL, clone_schema(): mean ms per tenant spent in those statements)")
    clone, migrate = methods
    print()
    print(
        "migrate/clone ratio: "
        f"mean {statistics.fmean(migrate.times_ms) / statistics.fmean(clone.times_ms):.1f}x, "
        f"median {statistics.median(migrate.times_ms) / statistics.median(clone.times_ms):.1f}x"
    )
    print(
        f"paths checked: clone -> {clone.clone_calls} clone_schema calls, "
        f"{clone.create_tables} CREATE TABLE; migrate -> {migrate.clone_calls} clone_schema "
        f"calls, {migrate.create_tables} CREATE TABLE"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="tenants per method (default 50)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    with bench_database("_bench"):
        run(args.count)
    print("\ndropped the bench database with its tenants, schemas and audit trail")
    return 0


def run(count: int) -> None:
    methods = [
        Method("clone", f"{SLUG_PREFIX}clone-", fakes_migrations=True),
        Method("migrate", f"{SLUG_PREFIX}migrate-", fakes_migrations=False),
    ]
    for method in methods:  # warm-up: imports, migration graph, clone function
        _, counter = create(method, f"{method.slug_prefix}warmup")
        check_path(method, counter)
    # Alternate the methods so that both see the same database growth.
    for i in range(1, count + 1):
        for method in methods:
            elapsed_ms, counter = create(method, f"{method.slug_prefix}{i:04d}")
            check_path(method, counter)
            method.times_ms.append(elapsed_ms)
            method.sql_ms.append(counter.sql_ms)
            method.clone_fn_ms.append(counter.clone_fn_ms)
            method.clone_calls += counter.clone_calls
            method.create_tables += counter.create_tables
        if i % 10 == 0 or i == count:
            print(f"  {i}/{count} tenants per method created", flush=True)
    report(methods, count)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
