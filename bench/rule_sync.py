"""Rule sync latency: from a save in the portal to the rule being active in a real Prometheus.

Run with `python -m portal.devstack run bench/rule_sync.py [--sizes 1,100,1000] [--tenants 10]`.

For each size, every tenant holds that many rules (groups of at most 50) and Prometheus has them
all loaded. Then one rule at a time is changed through `alerts.services.update_rule` (the same
write a person makes) and the time is taken until Prometheus serves the changed expression:

- direct: the sync pass runs in this process right after the save (what the Celery task runs);
- celery: the save's on-commit request goes through Redis to a real Celery worker, which runs
  the pass; the clock stops when the tenant's sync state says synced (the pass verifies
  Prometheus' rules API before it says so) and Prometheus is asked once more to confirm.

Beside them, in the same run and on the same files: `promtool check rules` on the tenant's file
plus `POST /-/reload`, the least any file-based sync must do. The ratio says what the portal adds
(render and scope every expression, hash, atomic write, verify, record).

The run works in a database of its own (`<database>_bench_rules`, dropped at the end), its own
rule directory and Alertmanager file (temporary), and its own Celery queue and cache prefix, so a
running demo is not disturbed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# Own queue and cache prefix: the saves below queue sync tasks, which must not reach a demo's
# worker on the same Redis (it would look for these tenants in another database).
RUN_ID = f"bench-rules-{os.getpid()}"
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", RUN_ID)
os.environ.setdefault("CACHE_KEY_PREFIX", RUN_ID)

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from alerts import services, sync  # noqa: E402
from alerts.models import AlertRule, RuleGroup, SyncState  # noqa: E402
from bench.common import bench_database, percentile  # noqa: E402
from tenants import audit  # noqa: E402
from tenants.provisioning import (  # noqa: E402
    provision_tenant,
)
from tests.backend_servers import running_prometheus  # noqa: E402

ACTOR = audit.Actor.system("bench")
logging.getLogger("httpx").setLevel(logging.WARNING)
RULES_PER_GROUP = 50
SEVERITIES = ("P0", "P1", "P2", "P3")


def expression(index: int, threshold: int) -> str:
    """Realistic shapes, cycling: error ratio, latency quantile, saturation, absence."""
    route = f"/api/v1/resource{index}"
    shapes = (
        f'sum(rate(http_requests_total{{route="{route}",code=~"5.."}}[5m])) '
        f'/ sum(rate(http_requests_total{{route="{route}"}}[5m])) > {threshold / 1000}',
        f"histogram_quantile(0.95, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{route="{route}"}}[5m]))) > {threshold}',
        f'max(queue_depth{{queue="q{index}"}}) > {threshold}',
        f'absent(up{{job="service{index}"}}) * {threshold}',
    )
    return shapes[index % len(shapes)]


def fill(tenant, size: int) -> None:
    """Replace the tenant's rules with `size` of them (set-up, straight through the ORM)."""
    with tenant_context(tenant):
        AlertRule.objects.all().delete()
        RuleGroup.objects.all().delete()
        groups = [
            RuleGroup.objects.create(name=f"service-{g:03d}", interval="30s")
            for g in range(math.ceil(size / RULES_PER_GROUP))
        ]
        AlertRule.objects.bulk_create(
            AlertRule(
                group=groups[i // RULES_PER_GROUP],
                name=f"Service{i:04d}Unhealthy",
                expr=expression(i, 10),
                for_duration="5m",
                severity=SEVERITIES[i % 4],
                annotations={"summary": f"Service {i} is unhealthy"},
                position=i,
            )
            for i in range(size)
        )


def served_expression(url: str, schema: str, group: str, name: str) -> str | None:
    with httpx.Client(timeout=30, trust_env=False) as client:
        payload = client.get(f"{url}/api/v1/rules").json()
    for g in payload["data"]["groups"]:
        if g["name"] == f"{schema}/{group}":
            for rule in g["rules"]:
                if rule["name"] == name:
                    return rule["query"]
    return None


class Changer:
    """Changes one rule of a tenant at a time, each change a new threshold."""

    def __init__(self, tenants: list) -> None:
        self.tenants = tenants
        self.count = 0

    def change(self) -> tuple[object, str, str, str]:
        """Save a change; returns (tenant, group, rule name, how the changed query ends)."""
        tenant = self.tenants[self.count % len(self.tenants)]
        self.count += 1
        with tenant_context(tenant):
            rule = AlertRule.objects.select_related("group").order_by("position").first()
            expr = expression(rule.position, 1000 + self.count)
            services.update_rule(rule_id=rule.public_id, expr=expr, actor=ACTOR)
        # Prometheus formats the query its own way, but the trailing threshold stays as written.
        return tenant, rule.group.name, rule.name, " " + expr.rsplit(" ", 1)[-1]


def sync_until_synced(tenant, attempts: int = 3) -> None:
    """Set-up: a pass, repeated while it fails for a reason that can pass (as the task retries)."""
    for _ in range(attempts):
        with tenant_context(tenant):
            result = sync.sync_rules(tenant)
        if result.status == SyncState.Status.SYNCED:
            return
        if not result.transient:
            break
    raise AssertionError(f"{tenant.schema_name}: {result.error}")


def measure_direct(changer: Changer, url: str, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        tenant, group, name, marker = changer.change()
        with tenant_context(tenant):
            result = sync.sync_rules(tenant)
        assert result.status == SyncState.Status.SYNCED, result.error
        served = served_expression(url, tenant.schema_name, group, name) or ""
        assert served.endswith(marker), f"Prometheus serves {served!r}, expected {marker}"
        times.append((time.perf_counter() - started) * 1000)
    return times


def _synced_since(tenant, since) -> bool:
    with tenant_context(tenant):
        state = SyncState.objects.get(target=SyncState.Target.PROMETHEUS_RULES)
    return (
        state.status == SyncState.Status.SYNCED
        and state.last_success_at is not None
        and state.last_success_at >= since
    )


def measure_celery(changer: Changer, url: str, reps: int) -> list[float]:
    from django.utils import timezone

    times = []
    for _ in range(reps):
        started, since = time.perf_counter(), timezone.now()
        tenant, group, name, marker = changer.change()
        deadline = started + 120
        while not _synced_since(tenant, since):
            if time.perf_counter() > deadline:
                raise AssertionError(f"{tenant.schema_name}: no sync within 120 s")
            time.sleep(0.02)  # polling the database, not a synchronisation of the work itself
        served = served_expression(url, tenant.schema_name, group, name) or ""
        assert served.endswith(marker), f"Prometheus serves {served!r}, expected {marker}"
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure_baseline(rules_dir: Path, tenants: list, url: str, reps: int) -> list[float]:
    times = []
    with httpx.Client(timeout=60, trust_env=False) as client:
        for i in range(reps):
            path = rules_dir / f"{tenants[i % len(tenants)].schema_name}.yml"
            started = time.perf_counter()
            subprocess.run(
                [settings.PROMTOOL_PATH, "check", "rules", str(path)],
                check=True,
                capture_output=True,
            )
            client.post(f"{url}/-/reload").raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[None]:
    from portal.celery import app

    hostname = f"{RUN_ID}@localhost"
    queues = ",".join(dict.fromkeys(settings.PORTAL_TASK_QUEUES.values()))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "2",
        "--loglevel",
        "WARNING",
        "-Q",
        queues,
        "--hostname",
        hostname,
        "--without-mingle",
        "--without-gossip",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_idle(timeout: float = 120) -> None:
    """Until the worker's queues are empty and it runs nothing (twice in a row)."""
    import redis

    from portal.celery import app

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queues = list(dict.fromkeys(settings.PORTAL_TASK_QUEUES.values()))
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError("the Celery worker did not go idle")
        active = app.control.inspect(destination=[f"{RUN_ID}@localhost"], timeout=1).active()
        busy = any(client.llen(q) for q in queues) or any((active or {}).values())
        quiet = 0 if busy else quiet + 1
        time.sleep(0.1)  # polling interval while waiting for the queue to drain


def worker_env(overrides: dict[str, str]) -> dict[str, str]:
    cfg = connection.settings_dict
    host = cfg.get("HOST") or "127.0.0.1"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    if host.startswith("/"):
        database = f"postgres://{user}{password}@/{host}/{cfg['NAME']}"
    else:
        database = f"postgres://{user}{password}@{host}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"
    return {**os.environ, **overrides, "DATABASE_URL": database}


def line(label: str, values: list[float]) -> str:
    return (
        f"{label:<34} {len(values):>4} {statistics.median(values):>9.0f} "
        f"{percentile(values, 95):>9.0f} {max(values):>9.0f}"
    )


def run(sizes: list[int], tenant_count: int, reps: dict[int, int], use_celery: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    rules_dir = workdir / "prometheus" / "rules"
    with running_prometheus(workdir / "prometheus", rules_dir=rules_dir) as prometheus:
        overrides = {
            "PROMETHEUS_URL": prometheus.url,
            "PROMETHEUS_RULES_DIR": str(rules_dir),
            "ALERTMANAGER_URL": "",
            "ALERTMANAGER_CONFIG_PATH": str(workdir / "alertmanager.yml"),
        }
        with override_settings(**overrides):
            started = time.perf_counter()
            tenants = [
                provision_tenant(
                    slug=f"bench{i:02d}", name=f"Bench {i}", admin_email=None, actor=ACTOR
                )
                for i in range(1, tenant_count + 1)
            ]
            print(
                f"{tenant_count} tenants provisioned in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            results = []
            for size in sizes:
                started = time.perf_counter()
                for tenant in tenants:
                    fill(tenant, size)
                for tenant in tenants:
                    sync_until_synced(tenant)
                initial = time.perf_counter() - started
                loaded = sum(
                    len(g["rules"])
                    for g in httpx.get(f"{prometheus.url}/api/v1/rules", timeout=60).json()["data"][
                        "groups"
                    ]
                )
                print(
                    f"\n{size} rules x {tenant_count} tenants: Prometheus holds {loaded} "
                    f"rules (filled and synced in {initial:.1f} s)",
                    flush=True,
                )
                changer = Changer(tenants)
                count = reps[size]
                direct = measure_direct(changer, prometheus.url, count)
                print(line("  save -> active (direct pass)", direct), flush=True)
                via_celery = None
                if use_celery:
                    env = worker_env(
                        {
                            **overrides,
                            "CELERY_TASK_DEFAULT_QUEUE": RUN_ID,
                            "CACHE_KEY_PREFIX": RUN_ID,
                        }
                    )
                    with celery_worker(env, workdir / f"worker-{size}.log"):
                        # What the direct saves queued is drained before measuring.
                        wait_until_idle()
                        via_celery = measure_celery(changer, prometheus.url, count)
                    print(line("  save -> active (Celery worker)", via_celery), flush=True)
                baseline = measure_baseline(rules_dir, tenants, prometheus.url, count)
                print(line("  promtool check + /-/reload", baseline), flush=True)
                results.append((size, direct, via_celery, baseline))
    report(results, tenant_count)


def report(results, tenant_count: int) -> None:
    print()
    print(
        f"Rule sync, {tenant_count} tenants; milliseconds from a save to the change being "
        "served by Prometheus"
    )
    header = (
        f"{'rules/tenant':>12} {'path':<10} {'n':>4} {'p50':>7} {'p95':>7} "
        f"{'baseline p50':>13} {'p95':>7} {'ratio p50':>10} {'ratio p95':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, direct, via_celery, baseline in results:
        for path, values in (("direct", direct), ("celery", via_celery)):
            if values is None:
                continue
            b50, b95 = statistics.median(baseline), percentile(baseline, 95)
            v50, v95 = statistics.median(values), percentile(values, 95)
            print(
                f"{size:>12} {path:<10} {len(values):>4} {v50:>7.0f} {v95:>7.0f} "
                f"{b50:>13.0f} {b95:>7.0f} {v50 / b50:>9.1f}x {v95 / b95:>9.1f}x"
            )
    worst = max(percentile(v, 95) for _, d, c, _ in results for v in (d, c) if v is not None)
    print(
        f"\nworst p95 {worst:.0f} ms against the 2,000 ms goal "
        f"({'met' if worst < 2000 else 'NOT met'})"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000", help="rules per tenant, comma-separated")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--reps", type=int, default=20, help="changes measured per size")
    parser.add_argument("--reps-large", type=int, default=5, help="changes at 1,000+ rules")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery worker path")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.tenants < 1 or args.reps < 1 or args.reps_large < 1:
        parser.error("sizes, --tenants and the repetitions must be positive")
    reps = {size: args.reps_large if size >= 1000 else args.reps for size in sizes}
    with bench_database("_bench_rules"):
        run(sizes, args.tenants, reps, use_celery=not args.no_celery)
    print("\ndropped the bench database")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
