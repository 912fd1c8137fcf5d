"""Prometheus panels live: polled only while someone watches their dashboard, once per panel
however many watch.

Built-in panels get their points from ingest; Prometheus has no push, so the beat task
(`dashboards.tasks.poll_prometheus_all`) queues a poll for every tenant with a watched dashboard
(`dashboards.live.watchers`). A poll runs in the tenant's schema and asks Prometheus, once per
panel, for the steps since that panel's last poll, through the same tenant-scoped query as the
page (`queries.prometheus_series`); the new points go to the dashboard's group in the shape
ingest sends. Steps are whole `STEP_SECONDS` on the clock, so polls at any interval never ask for
the same step twice, and a poll within a step sends nothing and queries nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from django.db import connection
from redis.exceptions import LockError

from dashboards import figures, live, queries
from dashboards.models import Panel
from dashboards.store import Series
from portal.backends.prometheus import PrometheusBackend
from portal.scoping import tenant_key

logger = logging.getLogger(__name__)

# The finest step the page's own Prometheus queries use: live points line up with it.
STEP_SECONDS = queries.MIN_STEP.total_seconds()
# After a gap (a busy worker, a page opened again) at most this many steps are caught up.
CATCH_UP_STEPS = 6
# Kinds the page can extend with points; a table is redrawn only on reload.
LIVE_KINDS = (Panel.Kind.TIMESERIES, Panel.Kind.BAR, Panel.Kind.STAT, Panel.Kind.GAUGE)
# How often beat polls (CELERY_BEAT_SCHEDULE); half a step, so a new step is seen within 5 s.
POLL_SECONDS = 5.0
# One poll of a tenant at a time, however many workers take beat's tasks.
LOCK_SECONDS = 30


def _last_step_key(schema_name: str, panel: Panel) -> str:
    return tenant_key(schema_name, f"prometheus-poll.{panel.public_id}")


def _watched_ids(schema_name: str, now: float) -> list[uuid.UUID]:
    ids = []
    for value in live.watchers([schema_name], now=now).get(schema_name, {}):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue  # not written by a consumer: ignore it
    return ids


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def panel_update(panel: Panel, series: list[Series], after: float) -> dict | None:
    """The update of one Prometheus panel: its series' points later than `after` (epoch s)."""
    lines = []
    fresh = []
    for one in series:
        points = [(t, v) for t, v in one.points if t > after]
        if not points:
            continue
        fresh.append(Series(one.name, one.labels, points))
        lines.append(
            {
                "name": figures.series_label(one, panel.legend),
                "points": [[t * 1000, v] for t, v in points],
            }
        )
    if not lines:
        return None
    return {
        "panel": str(panel.public_id),
        "kind": panel.kind,
        "points": lines[0]["points"],
        "series": lines,
        # What a stat or gauge of Prometheus shows: the latest value (as the page computes it).
        "value": figures.last_value(fresh),
    }


def poll(*, now: float | None = None, backend: PrometheusBackend | None = None) -> int:
    """Query each Prometheus panel of this tenant's watched dashboards once and send the new
    points to the dashboard's watchers; returns how many queries were sent.

    Runs in the tenant's schema. Nobody watching, no Prometheus panel on the watched
    dashboards, or no new step since the last poll: no query.
    """
    schema = connection.schema_name
    now = time.time() if now is None else now
    watched = _watched_ids(schema, now)
    if not watched:
        return 0
    panels = list(
        Panel.objects.filter(
            dashboard__public_id__in=watched, source=Panel.Source.PROMETHEUS, kind__in=LIVE_KINDS
        ).select_related("dashboard")
    )
    backend = backend or PrometheusBackend()
    if not panels or not backend.configured:
        return 0
    lock = live.redis_client().lock(
        tenant_key(schema, "prometheus-poll.lock"), timeout=LOCK_SECONDS
    )
    if not lock.acquire(blocking=False):
        return 0
    try:
        return _poll_panels(schema, panels, now, backend)
    finally:
        # A poll slower than the lock (Prometheus timing out on many panels) lost it already.
        with contextlib.suppress(LockError):
            lock.release()


def _poll_panels(schema: str, panels: list[Panel], now: float, backend: PrometheusBackend) -> int:
    client = live.redis_client()
    end = math.floor(now / STEP_SECONDS) * STEP_SECONDS
    keys = [_last_step_key(schema, panel) for panel in panels]
    last_steps = client.mget(keys)
    updates: dict[str, list[dict]] = defaultdict(list)
    polled: dict[str, float] = {}
    queried = 0
    for panel, key, last in zip(panels, keys, last_steps, strict=True):
        # First poll of a panel: only the newest step (the page has the rest).
        after = float(last) if last else end - STEP_SECONDS
        after = max(after, end - CATCH_UP_STEPS * STEP_SECONDS)
        if after >= end:
            continue
        queried += 1
        polled[key] = end
        try:
            series = queries.prometheus_series(
                panel, queries.TimeRange(_at(after), _at(end), "live"), backend=backend
            )
        except queries.QueryError as exc:
            # The page shows the error on reload; the next step is tried again.
            logger.info("live poll of panel %s: %s", panel.public_id, exc)
            continue
        update = panel_update(panel, series, after)
        if update is not None:
            updates[str(panel.dashboard.public_id)].append(update)
    if polled:
        with client.pipeline(transaction=False) as pipe:
            for key, step in polled.items():
                pipe.set(key, repr(step), ex=int(CATCH_UP_STEPS * STEP_SECONDS))
            pipe.execute()
    live.send_points(schema, updates)
    return queried
