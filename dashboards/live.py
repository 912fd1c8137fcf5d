"""Live dashboards: new points pushed to the pages watching a dashboard that shows them, and
who is watching which dashboard.

Points come from ingest (built-in panels, on commit) and from `dashboards.prometheus_poll`
(Prometheus panels, polled only while a dashboard is watched). Watchers are kept in Redis, one
sorted set per tenant whose members are "<dashboard id> <channel name>", scored with the time the
entry lapses: a socket adds itself on connect and on every ping, removes itself when it goes, and
the entry of a server process that died lapses on its own.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection

from dashboards.models import Panel
from portal.scoping import tenant_group, tenant_key
from tenants.realtime.broadcast import send_to_groups

if TYPE_CHECKING:
    from dashboards.ingest import CheckedSample

POINTS_EVENT = "dashboard.points"
# How long a watcher counts without a refresh; pages ping every 20 s.
WATCH_SECONDS = 60


def dashboard_group(schema_name: str, dashboard_id: object) -> str:
    """The group of every page watching one dashboard of one tenant."""
    return tenant_group(schema_name, f"dashboard.{dashboard_id}")


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def combine(values: Sequence[float], aggregation: str) -> float:
    """`aggregation` over the values of one instant, as the store computes it per bucket."""
    if aggregation in ("sum", "latest"):
        # One instant holds one sample per series: the latest of each, summed.
        return math.fsum(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "count":
        return float(len(values))
    if aggregation in ("p50", "p95", "p99"):
        return _quantile(values, int(aggregation[1:]) / 100)
    return math.fsum(values) / len(values)


def panel_points(panel: Panel, samples: Iterable[CheckedSample]) -> list[list[float]]:
    """[[epoch ms, value], ...] of the samples a panel shows, combined per timestamp."""
    by_time: dict[float, list[float]] = defaultdict(list)
    wanted = panel.label_filter or {}
    for sample in samples:
        if sample.metric.name != panel.metric:
            continue
        if any(sample.labels.get(k) != v for k, v in wanted.items()):
            continue
        by_time[sample.at.timestamp() * 1000].append(sample.value)
    return [[at, combine(values, panel.aggregation)] for at, values in sorted(by_time.items())]


def send_points(schema_name: str, updates: Mapping[str, list[dict]]) -> int:
    """Send each dashboard (by public id) its panels' updates; returns the messages sent.

    One update is `{"panel": id, "kind": kind, "points": [[epoch ms, value], ...]}`; a panel with
    several series adds `"series": [{"name": legend, "points": [...]}, ...]`, and one whose
    figure is a single number `"value"`. The event carries the socket message already encoded
    (`points_message`): a thousand sockets on one dashboard share one encoding.
    """
    updates = {dashboard: panels for dashboard, panels in updates.items() if panels}
    events = [
        (
            dashboard_group(schema_name, dashboard_id),
            {"type": POINTS_EVENT, "text": points_message(panel_updates)},
        )
        for dashboard_id, panel_updates in updates.items()
    ]
    return len(events) if send_to_groups(events, what="dashboard points") else 0


def points_message(panel_updates: list[dict]) -> str:
    """The socket message of these updates, as the page reads it (encoded once for all)."""
    return json.dumps({"type": "points", "panels": panel_updates})


def panels_showing(names) -> list[Panel]:
    """The built-in panels that show any of these metrics, with their dashboards."""
    rows = Panel.objects.filter(source=Panel.Source.BUILTIN, metric__in=set(names))
    return list(rows.select_related("dashboard"))


def push_samples(samples: Sequence[CheckedSample], panels: Sequence[Panel]) -> int:
    """Send each watching dashboard the new points of `panels` (`panels_showing` the samples'
    metrics); returns messages sent. Runs after the batch committed, in the tenant's schema.
    """
    updates: dict[str, list[dict]] = defaultdict(list)
    for panel in panels:
        points = panel_points(panel, samples)
        if points:
            updates[str(panel.dashboard.public_id)].append(
                {"panel": str(panel.public_id), "kind": panel.kind, "points": points}
            )
    return send_points(connection.schema_name, updates)


# --- Who watches which dashboard ------------------------------------------------------------------


@asynccontextmanager
async def _async_redis() -> AsyncIterator[aioredis.Redis]:
    """A client for one call, closed after it: a client kept per event loop would outlive the
    loops that end (tests and `async_to_sync` run many) with its connections still open."""
    client = aioredis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@cache
def redis_client() -> redis.Redis:
    """The synchronous client (thread-safe pool) of the poller and the beat task."""
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def watchers_key(schema_name: str) -> str:
    return tenant_key(schema_name, "dashboard-watchers")


def _member(dashboard_id: object, channel_name: str) -> str:
    return f"{dashboard_id} {channel_name}"


async def watch(schema_name: str, dashboard_id: object, channel_name: str) -> None:
    """Count this socket as watching the dashboard for the next `WATCH_SECONDS`."""
    key = watchers_key(schema_name)
    lapses = time.time() + WATCH_SECONDS
    async with _async_redis() as client, client.pipeline(transaction=True) as pipe:
        await (
            pipe.zadd(key, {_member(dashboard_id, channel_name): lapses})
            .expire(key, WATCH_SECONDS * 2)
            .execute()
        )


async def unwatch(schema_name: str, dashboard_id: object, channel_name: str) -> None:
    async with _async_redis() as client:
        await client.zrem(watchers_key(schema_name), _member(dashboard_id, channel_name))


def watchers(schema_names: Iterable[str], *, now: float | None = None) -> dict[str, dict[str, int]]:
    """Per tenant, the dashboards someone watches and how many sockets do (one round trip).

    Entries past their time are dropped on the way; tenants nobody watches are left out.
    """
    now = time.time() if now is None else now
    schemas = list(schema_names)
    with redis_client().pipeline(transaction=False) as pipe:
        for schema in schemas:
            pipe.zremrangebyscore(watchers_key(schema), "-inf", now)
            pipe.zrange(watchers_key(schema), 0, -1)
        replies = pipe.execute()
    found: dict[str, dict[str, int]] = {}
    for schema, members in zip(schemas, replies[1::2], strict=True):
        for member in members:
            dashboard_id = member.split(" ", 1)[0]
            counts = found.setdefault(schema, {})
            counts[dashboard_id] = counts.get(dashboard_id, 0) + 1
    return found
