"""Alert intake: alerts/s through Alertmanager's webhook beside raw INSERTs of the same rows, and
the p99 response time at a 10x burst.

Run with `python -m portal.devstack run bench/webhook_ingest.py [--requests N] [--workers 2]`.

The webhook path is the whole product path: uvicorn serving `portal.asgi` (a subprocess on
127.0.0.1, DEBUG off, as deployed), the tenant middleware on the public host, the bearer check,
parsing, `alerts.incident_intake.apply_notification` (insert or lock, timeline entries, audit
event) and the push to the incident desk through the channel layer. Concurrent clients (httpx,
asyncio) post Alertmanager's version-4 payloads with the tenant's intake secret:

1. sustained, closed loop: batches of 1 alert per request (what Alertmanager sends the intake:
   its route groups by every label) and of 100, about 20% of the alerts repeating one already
   sent (Alertmanager repeats a group every group_interval), some of them within the same batch;
2. burst: requests of one alert arriving at 10x the sustained request rate of (1), open loop,
   `--burst-requests` at a time (default 10x the clients of (1)), repeated `--bursts` times,
   each once the last one is answered; latency counts from the planned send time, so time spent
   waiting behind other requests is in it;
3. raw: the same rows (duplicates included) inserted straight into a table of the same shape
   (`LIKE alerts_incident INCLUDING ALL`) with `INSERT ... ON CONFLICT DO NOTHING`, one
   transaction per request's rows, over as many psycopg connections as there were clients.

Beside the rates it prints the CPU the server processes spent per alert (PostgreSQL aside),
which moves less than alerts/s when other work shares the machine. It checks the path it
measured: every answer was a 202 whose counts add up to the keys sent, the tenant then holds
exactly one incident per distinct (fingerprint, startsAt) with its two timeline entries, and the
raw table one row per key. Goal: over 2,000 alerts/s and p99 under 1 s.

Like bench/provision.py it works in a database of its own (`<database>_bench`), created and
migrated for the run and dropped at the end: incidents, timelines and audit events are never
deleted one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from alerts.incident_intake import _INSERTED_FIELDS, _new_incident  # noqa: E402
from alerts.intake import parse_notification  # noqa: E402
from alerts.models import AlertingSettings, Incident, IncidentEvent  # noqa: E402
from bench.common import bench_database, percentile  # noqa: E402
from tenants import audit  # noqa: E402
from tenants.provisioning import provision_tenant  # noqa: E402
from tests.helpers import database_url, free_port, is_listening, psycopg_params  # noqa: E402

ALERTS_GOAL = 2000.0  # alerts/s
P99_GOAL_S = 1.0
BURST_FACTOR = 10
SLUG = "bench-webhook"
RAW_TABLE = "bench_raw_incident"
ACTOR = audit.Actor.system("bench")
SEVERITIES = ("P0", "P1", "P2", "P3")
SERVICES = ("checkout", "search", "payments", "auth", "inventory", "mail")


# ---- what is sent ------------------------------------------------------------------------------


@dataclass
class Plan:
    """The requests of one phase: bodies, and the alert keys each carries."""

    name: str
    batch: int
    bodies: list[bytes] = field(default_factory=list)
    keys: list[list[tuple[str, str]]] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(len(k) for k in self.keys)

    @property
    def distinct(self) -> set[tuple[str, str]]:
        return {k for keys in self.keys for k in keys}


class AlertSource:
    """Alerts as a tenant's Prometheus would raise them; a share of them repeats earlier ones."""

    def __init__(self, schema: str, prefix: str, duplicates: float, seed: int) -> None:
        self.schema = schema
        self.prefix = prefix
        self.duplicates = duplicates
        self.random = random.Random(seed)
        self.sent: list[dict] = []
        self.started = datetime.now(tz=UTC) - timedelta(hours=1)

    def _new(self) -> dict:
        n = len(self.sent)
        service = SERVICES[n % len(SERVICES)]
        alert = {
            "status": "firing",
            "labels": {
                "alertname": f"Bench{n % 50}",
                "tenant": self.schema,
                "severity": SEVERITIES[n % len(SEVERITIES)],
                "category": "availability",
                "service": service,
                "instance": f"{service}-{n % 17}:9100",
                "job": service,
            },
            "annotations": {
                "summary": f"{service} instance {n % 17} is failing its checks",
                "description": f"Error ratio above 5% for 5 minutes on {service}-{n % 17}.",
            },
            "startsAt": (self.started + timedelta(milliseconds=n)).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": f"http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22{service}%22%7D",
            "fingerprint": f"{self.prefix}{n:010x}",
        }
        self.sent.append(alert)
        return alert

    def batch(self, size: int) -> list[dict]:
        alerts: list[dict] = []
        for _ in range(size):
            if self.sent and self.random.random() < self.duplicates:
                # Half the repeats come from this very batch (when it has any), half from before.
                pool = alerts if alerts and self.random.random() < 0.5 else self.sent
                alerts.append(self.random.choice(pool))
            else:
                alerts.append(self._new())
        return alerts


def plan(source: AlertSource, name: str, batch: int, requests: int) -> Plan:
    made = Plan(name, batch)
    for _ in range(requests):
        alerts = source.batch(batch)
        made.bodies.append(
            json.dumps(
                {
                    "version": "4",
                    "status": "firing",
                    "receiver": f"{source.schema}__portal",
                    "groupKey": '{}/{tenant="bench"}:{alertname="Bench"}',
                    "groupLabels": {},
                    "commonLabels": {},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager:9093",
                    "truncatedAlerts": 0,
                    "alerts": alerts,
                }
            ).encode()
        )
        made.keys.append([(a["fingerprint"], a["startsAt"]) for a in alerts])
    return made


# ---- the server --------------------------------------------------------------------------------


def start_server(port: int, workers: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),  # the bench database
        DEBUG="false",
        PORTAL_PORT=str(port),
        CHANNELS_PREFIX=f"bench-{os.getpid()}",
        CACHE_KEY_PREFIX=f"bench-{os.getpid()}",
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "portal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while not is_listening(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"the ASGI server did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return server


def server_cpu_s(server: subprocess.Popen) -> float:
    """CPU seconds used so far by the server and its workers (PostgreSQL's backends aside)."""
    main = psutil.Process(server.pid)
    total = 0.0
    for process in [main, *main.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ---- the clients -------------------------------------------------------------------------------


@dataclass
class Run:
    """What one phase measured."""

    name: str
    alerts: int
    requests: int
    seconds: float
    latencies: list[float]
    answers: list[dict]
    statuses: list[int]
    client_cpu_s: float
    server_cpu_s: float | None = None

    @property
    def alerts_per_s(self) -> float:
        return self.alerts / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


def _client(port: int, secret: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={
            # The intake is on the public site; Host picks it, the connection goes to 127.0.0.1.
            "Host": settings.PORTAL_BASE_DOMAIN,
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
        },
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(120.0),
        trust_env=False,
    )


async def _post(client: httpx.AsyncClient, path: str, body: bytes) -> tuple[int, dict]:
    response = await client.post(path, content=body)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {"detail": response.text[:300]}


def sustained(port: int, secret: str, path: str, made: Plan, clients: int) -> Run:
    """Closed loop: `clients` senders, each posting its next request when the last is answered."""

    async def go() -> Run:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in made.bodies:
            queue.put_nowait(body)
        latencies: list[float] = []
        answers: list[dict] = []
        statuses: list[int] = []
        async with _client(port, secret, clients) as client:

            async def sender() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    began = time.perf_counter()
                    status, answer = await _post(client, path, body)
                    latencies.append(time.perf_counter() - began)
                    statuses.append(status)
                    answers.append(answer)

            cpu = time.process_time()
            began = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(clients)))
            seconds = time.perf_counter() - began
        return Run(
            made.name,
            made.alerts,
            len(made.bodies),
            seconds,
            latencies,
            answers,
            statuses,
            time.process_time() - cpu,
        )

    return asyncio.run(go())


def bursts(
    port: int, secret: str, path: str, made: Plan, per_burst: int, rate: float
) -> tuple[Run, float]:
    """Open loop: each burst's requests are sent at `rate` per second whatever the answers;
    latency runs from the planned send time. Returns the run and the rate actually reached."""

    async def go() -> tuple[Run, float]:
        latencies: list[float] = []
        answers: list[dict] = []
        statuses: list[int] = []
        sent_rates: list[float] = []
        async with _client(port, secret, per_burst) as client:

            async def one(body: bytes, planned: float, sent: list[float]) -> None:
                await asyncio.sleep(max(0.0, planned - time.perf_counter()))
                sent.append(time.perf_counter())
                status, answer = await _post(client, path, body)
                latencies.append(time.perf_counter() - planned)
                statuses.append(status)
                answers.append(answer)

            cpu = time.process_time()
            busy = 0.0
            for first in range(0, len(made.bodies), per_burst):
                chunk = made.bodies[first : first + per_burst]
                start = time.perf_counter() + 0.05
                planned = [start + i / rate for i in range(len(chunk))]
                sent: list[float] = []
                began = time.perf_counter()
                await asyncio.gather(
                    *(one(b, t, sent) for b, t in zip(chunk, planned, strict=True))
                )
                busy += time.perf_counter() - began
                if len(sent) > 1 and max(sent) > min(sent):
                    sent_rates.append((len(sent) - 1) / (max(sent) - min(sent)))
                await asyncio.sleep(0.2)  # back to quiet before the next burst
        reached = statistics.fmean(sent_rates) if sent_rates else math.inf
        run = Run(
            made.name,
            made.alerts,
            len(made.bodies),
            busy,
            latencies,
            answers,
            statuses,
            time.process_time() - cpu,
        )
        return run, reached

    return asyncio.run(go())


# ---- raw INSERTs of the same rows --------------------------------------------------------------


def raw_rows(made: Plan, schema: str) -> list[list[tuple]]:
    """Per request, the rows the intake would insert for it (duplicates included), built by the
    intake's own mapping so that both paths write the same values."""
    now = datetime.now(tz=UTC)
    rows = []
    for body in made.bodies:
        notification = parse_notification(body, schema=schema)
        request_rows = []
        # In key order, as the intake inserts: two transactions never wait on each other in turn.
        for alert in sorted(notification.alerts, key=lambda a: (a.fingerprint, a.starts_at)):
            incident = _new_incident(alert, {}, now)
            request_rows.append(
                tuple(
                    f.get_db_prep_save(f.pre_save(incident, add=True), connection)
                    for f in _INSERTED_FIELDS
                )
            )
        rows.append(request_rows)
    return rows


def raw_insert(name: str, rows: list[list[tuple]], schema: str, connections: int) -> Run:
    """The rows of each request in one transaction, over `connections` connections at once."""
    columns = ", ".join(f'"{f.column}"' for f in _INSERTED_FIELDS)
    marks = ", ".join(["%s"] * len(_INSERTED_FIELDS))
    sql = (
        f"INSERT INTO {RAW_TABLE} ({columns}) VALUES ({marks}) "  # noqa: S608 (names from the model)
        "ON CONFLICT (fingerprint, started_at) DO NOTHING"
    )
    params = psycopg_params()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_index = iter(range(len(rows)))

    def worker() -> None:
        try:
            with psycopg.connect(**params, options=f"-c search_path={schema}") as conn:
                while True:
                    with lock:
                        index = next(next_index, None)
                    if index is None:
                        return
                    began = time.perf_counter()
                    with conn.transaction(), conn.cursor() as cursor:
                        cursor.executemany(sql, rows[index])
                    elapsed = time.perf_counter() - began
                    with lock:
                        latencies.append(elapsed)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    cpu = time.process_time()
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    alerts = sum(len(r) for r in rows)
    return Run(name, alerts, len(rows), seconds, latencies, [], [], time.process_time() - cpu)


# ---- checks and report -------------------------------------------------------------------------


def check_answers(run: Run, made: Plan, seen_before: set) -> set:
    """Every answer a 202 whose counts add up: opened = keys new to the tenant, the rest
    unchanged. Returns the keys known after this phase."""
    bad = [s for s in run.statuses if s != 202]
    if bad:
        detail = next(a for s, a in zip(run.statuses, run.answers, strict=True) if s != 202)
        raise SystemExit(f"{run.name}: {len(bad)} answers were not 202, e.g. {bad[0]} {detail}")
    known = seen_before | made.distinct
    opened = sum(a["opened"] for a in run.answers)
    unchanged = sum(a["unchanged"] for a in run.answers)
    accepted = sum(a["accepted"] for a in run.answers)
    new = len(known) - len(seen_before)
    repeats_in_batches = sum(len(k) - len(set(k)) for k in made.keys)
    if accepted != made.alerts or opened != new:
        raise SystemExit(
            f"{run.name}: accepted {accepted} of {made.alerts} alerts, opened {opened} "
            f"incidents for {new} new keys"
        )
    if opened + unchanged + repeats_in_batches != made.alerts:
        raise SystemExit(
            f"{run.name}: opened {opened} + unchanged {unchanged} + repeats within a batch "
            f"{repeats_in_batches} != {made.alerts} alerts sent"
        )
    return known


def check_stored(tenant, keys: set) -> tuple[int, int, int]:
    with tenant_context(tenant):
        incidents = Incident.objects.count()
        events = IncidentEvent.objects.count()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {RAW_TABLE}")  # noqa: S608
            raw = cursor.fetchone()[0]
    connection.set_schema_to_public()
    if incidents != len(keys) or events != 2 * len(keys) or raw != len(keys):
        raise SystemExit(
            f"path check failed: {incidents} incidents and {events} timeline entries for "
            f"{len(keys)} distinct keys sent; raw table holds {raw} rows"
        )
    return incidents, events, raw


def line(label: str, run: Run) -> str:
    lat = sorted(run.latencies)
    cpu = "-" if run.server_cpu_s is None else f"{run.server_cpu_s / run.alerts * 1000:.2f}"
    return (
        f"{label:<34} {run.alerts:>7} {run.requests:>6} {run.seconds:>7.2f} "
        f"{run.alerts_per_s:>10,.0f} {run.requests_per_s:>8,.0f} "
        f"{statistics.median(lat) * 1000:>8.1f} {percentile(lat, 99) * 1000:>8.1f} "
        f"{lat[-1] * 1000:>8.1f} {cpu:>9}"
    )


def report(results: dict[str, Run], burst_rate: float, reached: float, args, stored) -> None:
    header = (
        f"{'path':<34} {'alerts':>7} {'reqs':>6} {'seconds':>7} {'alerts/s':>10} "
        f"{'reqs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms/a':>9}"
    )
    print()
    print(
        f"Alert intake, {args.workers} uvicorn worker(s), {args.clients} clients, "
        f"~{args.duplicates:.0%} repeated alerts; {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        print(
            f"PostgreSQL {cursor.fetchone()[0]}; CONN_MAX_AGE "
            f"{settings.DATABASES['default'].get('CONN_MAX_AGE')}"
        )
    print()
    print(header)
    print("-" * len(header))
    for label, key in (
        ("webhook, batch 1", "webhook-1"),
        ("raw INSERT, batch 1", "raw-1"),
        ("webhook, batch 100", "webhook-100"),
        ("raw INSERT, batch 100", "raw-100"),
        (f"webhook burst, batch 1 at {burst_rate:,.0f} req/s", "burst"),
    ):
        print(line(label, results[key]))
    print("(burst: seconds = time until each burst was answered; latency from the planned send)")
    print("(CPU ms/a: CPU of the uvicorn processes per alert, PostgreSQL aside; steadier than")
    print(" alerts/s when the machine is shared: 1000 / it = alerts per CPU-second of the server)")
    b1, b100, burst = results["webhook-1"], results["webhook-100"], results["burst"]
    print()
    print(
        f"webhook / raw INSERT:  batch 1 {b1.alerts_per_s / results['raw-1'].alerts_per_s:.2f}, "
        f"batch 100 {b100.alerts_per_s / results['raw-100'].alerts_per_s:.2f}"
    )
    print(
        f"burst: {args.bursts} bursts of {args.burst_requests} requests, planned at "
        f"{BURST_FACTOR} x {b1.requests_per_s:,.0f} = {burst_rate:,.0f} req/s "
        f"(sent at {reached:,.0f} req/s)"
    )
    print(
        f"client CPU: batch 1 {b1.client_cpu_s:.1f} s, batch 100 {b100.client_cpu_s:.1f} s "
        "(the load generator shares the machine with the server and PostgreSQL)"
    )
    incidents, events, raw = stored
    print(
        f"path checked: every answer 202 with counts adding up; {incidents} incidents, {events} "
        f"timeline entries for {incidents} distinct keys; raw table {raw} rows"
    )
    print()
    p99 = percentile(sorted(burst.latencies), 99)
    goal = f"(goal > {ALERTS_GOAL:,.0f}/s)"
    print("ratio to goal (>= 1 meets it):")
    print(f"  alerts/s, batch 1:    {b1.alerts_per_s / ALERTS_GOAL:.2f}  {goal}")
    print(f"  alerts/s, batch 100:  {b100.alerts_per_s / ALERTS_GOAL:.2f}  {goal}")
    print(
        f"  p99 at the 10x burst: {P99_GOAL_S / p99:.2f}  "
        f"(goal p99 < {P99_GOAL_S:.0f} s, was {p99:.3f} s)"
    )


# ---- the run -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="batch-1 requests (3000)")
    parser.add_argument("--batches", type=int, default=150, help="batch-100 requests (150)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (2)")
    parser.add_argument("--duplicates", type=float, default=0.2, help="share repeated (0.2)")
    parser.add_argument("--bursts", type=int, default=10, help="number of bursts (10)")
    parser.add_argument(
        "--burst-requests", type=int, default=0, help="requests per burst (10 x clients)"
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.batches, args.clients, args.workers, args.bursts) < 1:
        parser.error("counts must be at least 1")
    if not 0 <= args.duplicates < 1:
        parser.error("--duplicates must be in [0, 1)")
    args.burst_requests = args.burst_requests or BURST_FACTOR * args.clients
    with bench_database("_bench_webhook"):
        run(args)
    print("\ndropped the bench database with its tenant, incidents and audit trail")
    return 0


def run(args) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    tenant = provision_tenant(slug=SLUG, name="Webhook benchmark", admin_email=None, actor=ACTOR)
    with tenant_context(tenant):
        secret = AlertingSettings.objects.get().webhook_secret
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {RAW_TABLE} (LIKE alerts_incident INCLUDING ALL)")
    connection.set_schema_to_public()
    schema, path = tenant.schema_name, f"/hooks/alertmanager/{tenant.public_id}/"
    source = AlertSource(schema, "b", args.duplicates, seed=7)
    plans = {
        "warm-up": plan(source, "warm-up", 1, 4 * args.clients),
        "webhook-1": plan(source, "webhook-1", 1, args.requests),
        "webhook-100": plan(source, "webhook-100", 100, args.batches),
        "burst": plan(source, "burst", 1, args.bursts * args.burst_requests),
    }
    for made in plans.values():
        print(
            f"  {made.name}: {len(made.bodies)} requests, {made.alerts} alerts, "
            f"{len(made.distinct)} distinct",
            flush=True,
        )

    port = free_port()
    log = Path(settings.BASE_DIR) / ".run" / f"bench-webhook-{os.getpid()}.log"
    log.parent.mkdir(exist_ok=True)
    server = start_server(port, args.workers, log)
    print(f"  server on 127.0.0.1:{port}, log {log}", flush=True)
    results: dict[str, Run] = {}
    known: set = set()
    try:
        for name in ("warm-up", "webhook-1", "webhook-100"):
            cpu = server_cpu_s(server)
            results[name] = sustained(port, secret, path, plans[name], args.clients)
            results[name].server_cpu_s = server_cpu_s(server) - cpu
            known = check_answers(results[name], plans[name], known)
            print(f"  {name}: {results[name].alerts_per_s:,.0f} alerts/s", flush=True)
        burst_rate = BURST_FACTOR * results["webhook-1"].requests_per_s
        cpu = server_cpu_s(server)
        results["burst"], reached = bursts(
            port, secret, path, plans["burst"], args.burst_requests, burst_rate
        )
        results["burst"].server_cpu_s = server_cpu_s(server) - cpu
        known = check_answers(results["burst"], plans["burst"], known)
    finally:
        stop_server(server)
    log.unlink(missing_ok=True)

    raw_rows(plans["warm-up"], schema)  # warm-up of the row building
    for name, source_name in (("raw-1", "webhook-1"), ("raw-100", "webhook-100")):
        rows = raw_rows(plans[source_name], schema)
        results[name] = raw_insert(name, rows, schema, args.clients)
    # The warm-up's and the burst's keys go into the raw table too, outside the timings.
    for name in ("warm-up", "burst"):
        raw_insert(name, raw_rows(plans[name], schema), schema, args.clients)
    stored = check_stored(tenant, known)
    report(results, burst_rate, reached, args, stored)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
