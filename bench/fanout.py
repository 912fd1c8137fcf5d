"""Live fan-out: N WebSocket clients on one dashboard, one update per second through the real path,
beside raw Redis pub/sub to as many subscribers in the same run.

Run with `python -m portal.devstack run bench/fanout.py [--clients 1000] [--seconds 30]`.

The portal runs as deployed, in a uvicorn process of its own (HTTP + WebSocket), on a database of
its own (`<database>_bench_fanout`, created and migrated like the test database, dropped at the
end) with a tenant, an executive and an ingest token. N clients open the Executive overview's
live socket with the executive's session (one session for all: each socket still loads it and
checks access when it connects). Every second the bench pushes one revenue
sample through `POST /api/v1/metrics` whose value is the time it was sent: ingest stores it and,
on commit, sends it to the dashboard's group, and every client notes when the point reached it.
Half a second later the same kind of payload is published on a Redis channel to N pub/sub
subscribers, the floor of what any fan-out over Redis costs. Both sides are read by one client
process (on uvloop), so its own work weighs on both alike.

It prints p50/p99/max delivery latency and lost deliveries for both, the ratio between them and
against the goal (p99 under 250 ms, nothing lost), and where the portal's time goes: the ingest
request (parse, store, commit, group_send) and the spread from the first to the last client of
one update (the server's fan-out to N sockets), and the server's CPU time over the updates. The
path is checked: every update stored one sample, every message came over a dashboard socket as
the Revenue panels' points, and the store holds every value sent. Exit status 1 when the check
fails, 2 when the goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.db import connection  # noqa: E402
from django_tenants.utils import schema_context  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from bench.common import bench_database, load_average, percentile  # noqa: E402
from dashboards.models import Dashboard  # noqa: E402
from tenants import audit, services  # noqa: E402
from tenants.models import Membership  # noqa: E402
from tenants.provisioning import (  # noqa: E402
    provision_tenant,
)
from tenants.roles import Role  # noqa: E402
from tests.helpers import (  # noqa: E402
    asgi_server_command,
    database_url,
    free_port,
    host_of,
    is_listening,
    started_process,
)

# One line per request would drown the figures.
logging.getLogger("httpx").setLevel(logging.WARNING)

SLUG = "bench-fanout"
EXECUTIVE = "executive@bench-fanout.example"
DASHBOARD = "Executive overview"
GOAL_P99_MS = 250.0
# Clients opening their sockets at once; more only queue in the server's backlog.
CONNECT_AT_ONCE = 50
# After the last update, how long stragglers may still arrive before they count as lost.
GRACE_S = 5.0
ACTOR = audit.Actor.system("bench")


# --- the portal side: database, tenant, server ------------------------------------------------


@dataclass
class Portal:
    host: str  # the tenant's host name (no port)
    dashboard: str
    revenue_panels: set[str]
    cookie: str
    token: str
    schema: str


def prepare_portal() -> Portal:
    """The tenant with its default dashboards, a signed-in executive and an ingest token."""
    tenant = provision_tenant(slug=SLUG, name="Fan-out bench", admin_email=None, actor=ACTOR)
    connection.set_schema_to_public()
    user = get_user_model().objects.create_user(EXECUTIVE, EXECUTIVE, None)
    Membership.objects.create(tenant=tenant, user=user, role=Role.EXECUTIVE)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = "tenants.accounts.backends.EmailBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    token = services.create_token(tenant=tenant, name="bench", scopes=["ingest"], actor=ACTOR)
    with schema_context(tenant.schema_name):
        dashboard = Dashboard.objects.get(title=DASHBOARD)
        revenue = {str(p.public_id) for p in dashboard.panels.filter(metric="revenue_eur")}
    return Portal(
        host=host_of(tenant.slug),
        dashboard=str(dashboard.public_id),
        revenue_panels=revenue,
        cookie=f"{settings.SESSION_COOKIE_NAME}={store.session_key}",
        token=token.secret,
        schema=tenant.schema_name,
    )


def stored_values(schema: str, values: list[float]) -> int:
    """How many of `values` the tenant's store holds as revenue samples."""
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM dashboards_sample s
              JOIN dashboards_metricseries ms ON ms.id = s.series_id
              JOIN dashboards_metricdefinition md ON md.id = ms.metric_id
             WHERE md.name = 'revenue_eur' AND s.value = ANY(%s)
            """,
            [values],
        )
        return cursor.fetchone()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the clients --------------------------------------------------------------------------------


@dataclass
class Side:
    """One way of fanning out: what was sent when, and what each client got when."""

    name: str
    sent: dict[float, int] = field(default_factory=dict)  # value -> sequence number
    received: list[list[tuple[float, str]]] = field(default_factory=list)  # per client
    request_ms: list[float] = field(default_factory=list)  # as the client saw the API answer
    server_ms: list[float] = field(default_factory=list)  # as the server timed ingest
    problems: list[str] = field(default_factory=list)

    def latencies(self, decode) -> tuple[list[float], int, dict[int, list[float]]]:
        """All latencies (ms), deliveries lost, and the receipt times of each update."""
        latencies: list[float] = []
        per_update: dict[int, list[float]] = {seq: [] for seq in self.sent.values()}
        lost = 0
        for inbox in self.received:
            got: set[int] = set()
            for at, raw in inbox:
                for value in decode(raw):
                    seq = self.sent.get(value)
                    if seq is None or seq in got:
                        continue
                    got.add(seq)
                    latencies.append((at - value) * 1000)
                    per_update[seq].append(at)
            lost += len(self.sent) - len(got)
        return latencies, lost, per_update


async def read_socket(ws, inbox: list[tuple[float, str]]) -> None:
    # Only the arrival time is taken here: the client's own work must not shift it.
    async for raw in ws:
        inbox.append((time.time(), raw))


async def read_pubsub(pubsub, inbox: list[tuple[float, str]]) -> None:
    async for message in pubsub.listen():
        if message["type"] == "message":
            inbox.append((time.time(), message["data"]))


def portal_values(portal: Portal, side: Side):
    """Decoder of one socket message: the sent times it carries (the Revenue panels' points)."""

    def decode(raw: str) -> list[float]:
        message = json.loads(raw)
        if message.get("type") != "points":
            return []
        panels = {update["panel"] for update in message["panels"]}
        if not panels <= portal.revenue_panels and len(side.problems) < 5:
            side.problems.append(f"points for other panels: {panels - portal.revenue_panels}")
        return [point[1] for update in message["panels"] for point in update["points"]]

    return decode


def pubsub_values(raw: str) -> list[float]:
    return [json.loads(raw)["sent"]]


async def open_clients(portal: Portal, port: int, count: int, side: Side) -> tuple[list, list]:
    url = f"ws://{portal.host}:{port}/ws/dashboards/{portal.dashboard}/"
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(index: int):
        async with gate:
            ws = await ws_connect(
                url,
                host="127.0.0.1",
                port=port,
                origin=f"http://{portal.host}:{port}",
                additional_headers={"Cookie": portal.cookie},
                open_timeout=120,
                ping_interval=None,
                max_queue=None,
            )
        return ws, asyncio.create_task(read_socket(ws, side.received[index]))

    side.received = [[] for _ in range(count)]
    opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [ws for ws, _ in opened], [task for _, task in opened]


async def open_subscribers(channel: str, count: int, side: Side) -> tuple[list, list]:
    side.received = [[] for _ in range(count)]
    clients, tasks = [], []
    for index in range(count):
        client = aioredis.from_url(settings.REDIS_URL, decode_responses=True)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        # The subscription's confirmation first, so no published message is mistaken for it.
        while (await pubsub.get_message(timeout=5)) is None:
            pass
        clients.append((client, pubsub))
        tasks.append(asyncio.create_task(read_pubsub(pubsub, side.received[index])))
    return clients, tasks


async def wait_for_all(sides: list[Side], count: int, decode_by_side) -> None:
    """Until every client of every side has every update, or the grace period is over."""
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        if all(
            sum(len(decode(raw)) > 0 for _, raw in inbox) >= len(side.sent)
            for side, decode in zip(sides, decode_by_side, strict=True)
            for inbox in side.received
        ):
            return
        await asyncio.sleep(0.1)


async def measure(
    portal: Portal, port: int, clients: int, seconds: int, prefix: str, server_pid: int
) -> dict:
    portal_side, pubsub_side = Side("portal"), Side("pubsub")
    channel = f"{prefix}:bench-fanout:pubsub"
    began = time.perf_counter()
    sockets, socket_tasks = await open_clients(portal, port, clients, portal_side)
    connect_s = time.perf_counter() - began
    subscribers, subscriber_tasks = await open_subscribers(channel, clients, pubsub_side)
    publisher = aioredis.from_url(settings.REDIS_URL, decode_responses=True)
    http = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Host": f"{portal.host}:{port}", "Authorization": f"Bearer {portal.token}"},
        timeout=30.0,
        trust_env=False,
    )
    try:
        # One update first, not counted: the server's first request pays for imports and
        # database connections.
        warm_up = {"name": "revenue_eur", "labels": {"channel": "web"}, "value": -1.0}
        await http.post("/api/v1/metrics", json={"samples": [warm_up]})
        # Every socket has it (or the grace time is up) before the measured updates start;
        # then it is forgotten, so only the measured values are counted.
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and not all(portal_side.received):
            await asyncio.sleep(0.05)
        for inbox in portal_side.received:
            inbox.clear()
        start = math.ceil(time.time()) + 1
        cpu_before = cpu_seconds(server_pid)
        for seq in range(seconds):
            await asyncio.sleep(max(0.0, start + seq - time.time()))
            sent = time.time()
            portal_side.sent[sent] = seq
            sample = {"name": "revenue_eur", "labels": {"channel": "web"}, "value": sent}
            response = await http.post("/api/v1/metrics", json={"samples": [sample]})
            portal_side.request_ms.append((time.time() - sent) * 1000)
            if response.status_code != 202 or response.json().get("stored") != 1:
                portal_side.problems.append(f"ingest answered {response.status_code}")
            else:
                portal_side.server_ms.append(response.json()["took_ms"])
            await asyncio.sleep(max(0.0, start + seq + 0.5 - time.time()))
            sent = time.time()
            pubsub_side.sent[sent] = seq
            await publisher.publish(channel, json.dumps({"seq": seq, "sent": sent}))
        decoders = [portal_values(portal, portal_side), pubsub_values]
        await wait_for_all([portal_side, pubsub_side], clients, decoders)
        server_cpu_s = cpu_seconds(server_pid) - cpu_before
    finally:
        await http.aclose()
        await publisher.aclose()
        for task in (*socket_tasks, *subscriber_tasks):
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for client, pubsub in subscribers:
            await pubsub.aclose()
            await client.aclose()
    return {
        "portal": portal_side,
        "pubsub": pubsub_side,
        "decoders": decoders,
        "connect_s": connect_s,
        "server_cpu_s": server_cpu_s,
    }


def run_loop(coroutine):
    """Run the clients on uvloop where it is installed (uvicorn's own loop): the less the
    client process spends per message, the less its own queueing shows in the figures."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- report -------------------------------------------------------------------------------------


def report(result: dict, clients: int, seconds: int, loads) -> bool:
    portal_side: Side = result["portal"]
    pubsub_side: Side = result["pubsub"]
    decode_portal, decode_pubsub = result["decoders"]
    rows = []
    spreads: dict[str, list[float]] = {}
    for side, decode in ((portal_side, decode_portal), (pubsub_side, decode_pubsub)):
        latencies, lost, per_update = side.latencies(decode)
        spreads[side.name] = [
            (max(times) - min(times)) * 1000 for times in per_update.values() if times
        ]
        rows.append((side, latencies, lost))
    print()
    print(
        f"Live fan-out: {clients} WebSocket clients on one dashboard, {seconds} updates "
        f"(one per second); {os.cpu_count()} CPUs shared with other work (load average "
        f"before: {loads[0]}, after: {loads[1]}: the figures move with it)"
    )
    print(
        f"{clients} sockets opened in {result['connect_s']:.1f} s; ASGI server CPU during the "
        f"updates: {result['server_cpu_s']:.1f} s in {seconds} s"
    )
    print()
    header = (
        f"{'path':<32} {'deliveries':>10} {'lost':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print(header)
    print("-" * len(header))
    names = {
        "portal": "portal (ingest API -> socket)",
        "pubsub": f"raw Redis pub/sub ({clients} subs)",
    }
    for side, latencies, lost in rows:
        print(
            f"{names[side.name]:<32} {len(latencies):>10} {lost:>6} "
            f"{percentile(latencies, 50):>8.1f} {percentile(latencies, 99):>8.1f} "
            f"{max(latencies, default=math.nan):>8.1f}"
        )
    (_, portal_lat, portal_lost), (_, pubsub_lat, pubsub_lost) = rows
    p99 = percentile(portal_lat, 99)
    print()
    print(
        f"portal/pub-sub: p50 {percentile(portal_lat, 50) / percentile(pubsub_lat, 50):.1f}x, "
        f"p99 {p99 / percentile(pubsub_lat, 99):.1f}x"
    )
    met = p99 < GOAL_P99_MS and portal_lost == 0
    print(
        f"goal p99 < {GOAL_P99_MS:.0f} ms, nothing lost: p99 is {p99 / GOAL_P99_MS:.2f}x the "
        f"limit, {portal_lost} lost -> {'met' if met else 'MISSED'}"
    )
    print()
    print("where the portal's time goes (p50 / p99 over the updates):")
    print(
        f"  ingest in the server (parse, store, commit, group_send; the API's took_ms): "
        f"{percentile(portal_side.server_ms, 50):.1f} / "
        f"{percentile(portal_side.server_ms, 99):.1f} ms"
    )
    print(
        f"  the API's answer as the client saw it (its loop also reads every socket): "
        f"{percentile(portal_side.request_ms, 50):.1f} / "
        f"{percentile(portal_side.request_ms, 99):.1f} ms"
    )
    print(
        f"  first to last of {clients} clients, one update (server fan-out): "
        f"{percentile(spreads['portal'], 50):.1f} / {percentile(spreads['portal'], 99):.1f} ms"
        f"  (pub/sub: {percentile(spreads['pubsub'], 50):.1f} / "
        f"{percentile(spreads['pubsub'], 99):.1f} ms)"
    )
    return met


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="sockets (default 1000)")
    parser.add_argument("--seconds", type=int, default=30, help="updates (default 30)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds < 1:
        parser.error("--clients and --seconds must be at least 1")
    prefix = f"bench-fanout-{uuid.uuid4().hex[:8]}"
    with bench_database("_bench_fanout"):
        portal = prepare_portal()
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            REDIS_URL=settings.REDIS_URL,
            # Keys and groups of this run only, removed at the end.
            CHANNELS_PREFIX=prefix,
            CACHE_KEY_PREFIX=prefix,
            DEBUG="false",
            PORTAL_PORT=str(port),
        )
        log = Path(settings.BASE_DIR) / ".run" / f"{prefix}-uvicorn.log"
        log.parent.mkdir(exist_ok=True)
        loads = [load_average()]
        with started_process(
            asgi_server_command(port),
            env=env,
            log=log,
            ready=lambda: is_listening(port),
            what="the ASGI server",
        ) as server:
            print(f"ASGI server (uvicorn, one process) on 127.0.0.1:{port}; opening sockets")
            result = run_loop(measure(portal, port, args.clients, args.seconds, prefix, server.pid))
        loads.append(load_average())
        met = report(result, args.clients, args.seconds, loads)
        sent = list(result["portal"].sent)
        stored = stored_values(portal.schema, sent)
        problems = result["portal"].problems
        print(
            f"path checked: {stored}/{len(sent)} values sent are in the store; "
            f"{len(problems)} problems{': ' + '; '.join(problems[:5]) if problems else ''}"
        )
        forget_keys(prefix)
        log.unlink(missing_ok=True)
    print("\ndropped the bench database; removed the run's Redis keys")
    if stored != len(sent) or problems:
        return 1
    return 0 if met else 2


def forget_keys(prefix: str) -> None:
    """Delete the Redis keys of this run (channel layer groups, watchers, caches)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
