"""What-if evaluation of a rule on real data, before it is saved.

Three answers, each from the same range query of the tenant-scoped expression:
- the expression over the last 1 h / 6 h / 24 h, with its threshold when it ends in `> N`;
- the periods in which the rule would have fired, given `for` and `keep_firing_for`, evaluated
  at the rule group's interval as Prometheus would;
- through the tenant's notification policy for the rule's severity, who would have been told, by
  which channel and how many times (the blast radius): alerts are grouped by the policy's
  `group_by` and flushed after `group_wait`, then every `group_interval`, re-sent after
  `repeat_interval`, muted in maintenance windows, as Alertmanager does.

The evaluation functions are pure (plain data in, plain data out; the notification replay is in
`alerts.blast_radius`); `preview_rule` fetches the data and reads the policy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import promql_parser as pp

from alerts import queries
from alerts.blast_radius import (
    AlertTimeline,
    BlastRadius,
    FirePeriod,
    ReceiverTarget,
    Timings,
    as_datetime,
    blast_radius,
    duration_words,
)
from alerts.durations import parse_duration
from alerts.promql import PromQLError, scope_to_tenant
from alerts.sync import receiver_is_usable

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
DEFAULT_RANGE = "6h"
# Enough points for a smooth chart and exact `for` arithmetic at common group intervals.
MAX_POINTS = 1000
MAX_CHART_SERIES = 20
MAX_LISTED_PERIODS = 50
# Beyond this many series the blast radius is computed on the first ones (and says so).
MAX_EVALUATED_SERIES = 500
# Comparison operators a threshold line can be drawn for, and how each compares.
_COMPARISONS = {
    ">": lambda v, n: v > n,
    "<": lambda v, n: v < n,
    ">=": lambda v, n: v >= n,
    "<=": lambda v, n: v <= n,
    "==": lambda v, n: v == n,
    "!=": lambda v, n: v != n,
}
_TRAILING_COMPARISON = re.compile(
    r"^(?P<lhs>.*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$",
    re.DOTALL,
)


# ---- threshold ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """`lhs op value`: the expression ends in a comparison with a number."""

    lhs: str
    op: str
    value: float

    def passes(self, value: float) -> bool:
        return not math.isnan(value) and _COMPARISONS[self.op](value, self.value)


def split_threshold(expr: str) -> Threshold | None:
    """The trailing `> N` (or <, >=, <=, ==, !=) of `expr`, when that is its outermost operator.

    `a + b > 5` has one (lhs `a + b`); `a > 5 or b` and `a > bool 5` have none.
    """
    match = _TRAILING_COMPARISON.match(expr or "")
    if match is None or not match.group("lhs").strip():
        return None
    tree = _parsed(expr)
    if tree is None or _parsed(match.group("lhs")) is None:
        return None
    if not isinstance(tree, pp.BinaryExpr) or str(tree.op) != match.group("op"):
        return None
    if not isinstance(tree.rhs, pp.NumberLiteral):
        return None
    if tree.modifier is not None and tree.modifier.return_bool:
        return None
    return Threshold(lhs=match.group("lhs").strip(), op=match.group("op"), value=tree.rhs.val)


def _parsed(expr: str) -> pp.Expr | None:
    try:
        return pp.parse(expr)
    except ValueError:
        return None
    except BaseException as exc:
        # pyo3 turns a Rust panic into PanicException, a BaseException the module does not export.
        if type(exc).__name__ == "PanicException":
            return None
        raise


# ---- fire periods ------------------------------------------------------------------------------


def active_grid(
    points: Iterable[tuple[float, float]],
    *,
    start: float,
    step: float,
    count: int,
    threshold: Threshold | None,
) -> list[bool]:
    """For each evaluation at start + i*step: whether the rule's condition held for this series.

    Without a threshold a series is active wherever it has a sample (that is what an alerting
    rule's result is); with one, where its value passes the comparison.
    """
    grid = [False] * count
    for t, value in points:
        index = round((t - start) / step)
        if 0 <= index < count and abs(start + index * step - t) < step / 2:
            grid[index] = threshold.passes(value) if threshold else True
    return grid


def fire_periods(
    active: list[bool], *, start: float, step: float, for_s: float, keep_firing_s: float = 0.0
) -> list[FirePeriod]:
    """When a rule evaluated every `step` seconds would fire, as Prometheus decides it.

    An alert becomes pending at the first evaluation its condition holds and fires once it has
    held for `for_s`; it resolves at the first evaluation it no longer holds, or, with
    `keep_firing_s`, once it has not held for that long.
    """
    periods: list[FirePeriod] = []
    pending_since: float | None = None
    firing_since: float | None = None
    last_active: float | None = None
    for index, holds in enumerate(active):
        t = start + index * step
        if holds:
            last_active = t
            if pending_since is None:
                pending_since = t
            if firing_since is None and t - pending_since >= for_s:
                firing_since = t
            continue
        if firing_since is not None:
            if keep_firing_s and last_active is not None and t - last_active < keep_firing_s:
                continue
            periods.append(FirePeriod(firing_since, t))
        pending_since = firing_since = None
    if firing_since is not None:
        end = start + (len(active) - 1) * step
        periods.append(FirePeriod(firing_since, end, ongoing=True))
    return periods


# ---- the preview of one rule -------------------------------------------------------------------


@dataclass
class SeriesPeriods:
    labels: dict[str, str]
    periods: list[FirePeriod]


@dataclass
class Preview:
    """Everything the editor shows about a rule on the last `range_key` of data."""

    range_key: str
    start: float
    end: float
    step: float
    scoped_expr: str = ""
    chart_expr: str = ""
    threshold: Threshold | None = None
    chart_series: list[queries.Series] = field(default_factory=list)
    series_total: int = 0
    periods: list[SeriesPeriods] = field(default_factory=list)
    blast: BlastRadius | None = None
    severity: str = ""
    error: str = ""
    connected: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def firing_series(self) -> int:
        return sum(1 for p in self.periods if p.periods)

    @property
    def period_count(self) -> int:
        return sum(len(p.periods) for p in self.periods)

    def listed_periods(self) -> list[tuple[str, FirePeriod]]:
        rows = [(series_name(p.labels), period) for p in self.periods for period in p.periods]
        return sorted(rows, key=lambda row: row[1].start)[:MAX_LISTED_PERIODS]

    @property
    def started(self) -> datetime:
        return as_datetime(self.start)

    @property
    def step_words(self) -> str:
        return duration_words(self.step)

    def chart_data(self) -> dict:
        """What static/js/rule-preview.js draws (times in unix milliseconds, UTC)."""
        spans = sorted(
            {(p.start, p.end) for s in self.periods for p in s.periods}, key=lambda span: span
        )
        return {
            "series": [
                {
                    "name": series_name(s.labels),
                    "x": [round(t * 1000) for t, _ in s.points],
                    "y": [None if math.isnan(v) or math.isinf(v) else v for _, v in s.points],
                }
                for s in self.chart_series
            ],
            "threshold": None if self.threshold is None else self.threshold.value,
            "firing": [[round(a * 1000), round(b * 1000)] for a, b in _merge(spans)],
            "start": round(self.start * 1000),
            "end": round(self.end * 1000),
        }


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def series_name(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(
        f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in ("__name__", "tenant")
    )
    return f"{name}{{{rest}}}" if rest or not name else name


def choose_step(range_seconds: int, interval: str) -> float:
    """The group's evaluation interval, widened so a range has at most MAX_POINTS points."""
    try:
        every = parse_duration(interval) / 1000
    except ValueError:
        every = 60.0
    return float(max(every, 1.0, math.ceil(range_seconds / MAX_POINTS)))


def alert_labels(
    series: dict[str, str], *, name: str, severity: str, category: str, labels: dict, schema: str
) -> dict[str, str]:
    """The labels an alert of this rule carries: the series', the rule's, and the portal's."""
    out = {k: v for k, v in series.items() if k != "__name__"}
    out.update(labels)
    out.update(alertname=name, severity=severity, category=category, tenant=schema)
    return out


def preview_rule(
    *,
    schema: str,
    kind: str,
    name: str,
    expr: str,
    for_duration: str = "",
    keep_firing_for: str = "",
    severity: str = "P2",
    category: str = "availability",
    labels: dict | None = None,
    interval: str = "1m",
    range_key: str = DEFAULT_RANGE,
    now: datetime | None = None,
    policy: tuple[Timings, list[ReceiverTarget]] | None = None,
) -> Preview:
    """Evaluate the rule on the last `range_key` of the tenant's data (nothing is saved)."""
    range_key = range_key if range_key in RANGES else DEFAULT_RANGE
    end_dt = now or datetime.now(tz=UTC)
    seconds = RANGES[range_key]
    step = choose_step(seconds, interval)
    end = end_dt.timestamp()
    start = end - math.floor(seconds / step) * step
    preview = Preview(range_key=range_key, start=start, end=end, step=step, severity=severity)
    try:
        preview.scoped_expr = scope_to_tenant(expr, schema)
        threshold = split_threshold(expr) if kind == "alert" else None
        preview.chart_expr = scope_to_tenant(threshold.lhs, schema) if threshold else ""
    except PromQLError as exc:
        preview.error = f"The expression cannot be previewed: {exc}."
        return preview
    preview.threshold = threshold
    preview.chart_expr = preview.chart_expr or preview.scoped_expr
    try:
        series = queries.query_range(
            preview.chart_expr,
            datetime.fromtimestamp(start, tz=UTC),
            datetime.fromtimestamp(end, tz=UTC),
            step,
        )
    except queries.Unavailable as exc:
        preview.error, preview.connected = exc.reason, exc.connected
        return preview
    preview.series_total = len(series)
    preview.chart_series = sorted(series, key=lambda s: -_peak(s))[:MAX_CHART_SERIES]
    if len(series) > MAX_CHART_SERIES:
        preview.notes.append(
            f"The chart shows the {MAX_CHART_SERIES} highest of {len(series)} series."
        )
    if kind != "alert":
        return preview
    count = int(round((end - start) / step)) + 1
    for_s = _seconds(for_duration)
    keep_s = _seconds(keep_firing_for)
    evaluated = series[:MAX_EVALUATED_SERIES]
    if len(series) > MAX_EVALUATED_SERIES:
        preview.notes.append(
            f"Firing periods are computed for the first {MAX_EVALUATED_SERIES} of "
            f"{len(series)} series."
        )
    for s in evaluated:
        grid = active_grid(s.points, start=start, step=step, count=count, threshold=threshold)
        preview.periods.append(
            SeriesPeriods(
                labels=s.labels,
                periods=fire_periods(
                    grid, start=start, step=step, for_s=for_s, keep_firing_s=keep_s
                ),
            )
        )
    if any(s.points and s.points[0][0] <= start + step / 2 for s in evaluated):
        preview.notes.append(
            "A condition already true when the window starts is counted from the window's start."
        )
    timings, receivers = policy if policy is not None else policy_for(severity)
    alerts = [
        AlertTimeline(
            labels=alert_labels(
                p.labels,
                name=name,
                severity=severity,
                category=category,
                labels=labels or {},
                schema=schema,
            ),
            periods=tuple(p.periods),
        )
        for p in preview.periods
    ]
    preview.blast = blast_radius(alerts, timings, receivers, window_end=end)
    return preview


def _peak(series: queries.Series) -> float:
    values = [v for _, v in series.points if not math.isnan(v) and not math.isinf(v)]
    return max(values, default=-math.inf)


def _seconds(duration: str) -> float:
    if not duration:
        return 0.0
    try:
        return parse_duration(duration) / 1000
    except ValueError:
        return 0.0


def policy_for(severity: str) -> tuple[Timings, list[ReceiverTarget]]:
    """The current tenant's policy for `severity`: timings, and every receiver it names."""
    from alerts.models import NotificationPolicy, Receiver

    policy = (
        NotificationPolicy.objects.prefetch_related("receivers", "mute_timings")
        .filter(severity=severity)
        .first()
    )
    if policy is None:
        return Timings(("alertname",), 30, 300, 4 * 3600), []
    mutes = tuple(entry for m in policy.mute_timings.all() for entry in m.intervals)
    timings = Timings(
        group_by=tuple(policy.group_by or ["alertname"]),
        group_wait=_seconds(policy.group_wait),
        group_interval=_seconds(policy.group_interval),
        repeat_interval=_seconds(policy.repeat_interval),
        mute_intervals=mutes,
    )
    receivers = [
        ReceiverTarget(
            name=r.name,
            kind=r.kind,
            kind_label=r.get_kind_display(),
            usable=receiver_is_usable(r),
            # SMS is relayed without resolved messages (see alerts.render).
            send_resolved=r.kind != Receiver.Kind.SMS,
        )
        for r in policy.receivers.order_by("name")
    ]
    return timings, receivers
