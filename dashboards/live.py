"""Live dashboards: new samples pushed to the pages watching a dashboard that shows them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from dashboards.models import Panel
from portal.scoping import tenant_group

if TYPE_CHECKING:
    from dashboards.ingest import CheckedSample

POINTS_EVENT = "dashboard.points"


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
    if aggregation == "sum":
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


def push_samples(samples: Sequence[CheckedSample]) -> int:
    """Send each watching dashboard the new points of its built-in panels; returns messages sent.

    Runs after the batch committed, in the tenant's schema.
    """
    names = {sample.metric.name for sample in samples}
    panels = Panel.objects.filter(source=Panel.Source.BUILTIN, metric__in=names).select_related(
        "dashboard"
    )
    updates: dict[str, list[dict]] = defaultdict(list)
    for panel in panels:
        points = panel_points(panel, samples)
        if points:
            updates[str(panel.dashboard.public_id)].append(
                {"panel": str(panel.public_id), "kind": panel.kind, "points": points}
            )
    layer = get_channel_layer()
    schema = connection.schema_name
    for dashboard_id, panel_updates in updates.items():
        async_to_sync(layer.group_send)(
            dashboard_group(schema, dashboard_id), {"type": POINTS_EVENT, "panels": panel_updates}
        )
    return len(updates)
