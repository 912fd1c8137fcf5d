"""What the alerting pages ask Prometheus: rule states, range queries, name suggestions.

Every call goes through `portal.backends.prometheus` with short timeouts, and every answer is for
one tenant only: range queries take an expression already scoped by `alerts.promql`, suggestions
are asked with the tenant's matcher. "Not connected" (no `PROMETHEUS_URL`) is a normal answer,
never an error page; a backend failure comes back as `Unavailable` with the backend's own words.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.core.cache import cache
from redis.exceptions import RedisError

from portal.backends.base import BackendError
from portal.backends.prometheus import PrometheusBackend

# Pages wait at most this long for Prometheus; a slow backend shows "unknown", not a hung page.
PAGE_TIMEOUT = httpx.Timeout(3.0, connect=1.0)
# A range query over a day may take longer than a page's status call.
PREVIEW_TIMEOUT = httpx.Timeout(15.0, connect=1.0)
STATES_CACHE_SECONDS = 5
SUGGESTIONS_CACHE_SECONDS = 60
MAX_SUGGESTIONS = 2000


class Unavailable(Exception):
    """Prometheus cannot answer: not connected (`connected` False) or failing (its reason)."""

    def __init__(self, reason: str, *, connected: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connected = connected


@dataclass(frozen=True)
class RuleState:
    """What Prometheus says about one of the tenant's rules now."""

    state: str  # firing | pending | inactive
    health: str  # ok | err | unknown
    last_error: str
    active_alerts: int


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and (unix seconds, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _backend(timeout: httpx.Timeout) -> PrometheusBackend:
    return PrometheusBackend(timeout=timeout)


def connected() -> bool:
    return _backend(PAGE_TIMEOUT).configured


def _not_connected() -> Unavailable:
    return Unavailable("Prometheus is not connected (PROMETHEUS_URL is not set).", connected=False)


def _cached(key: str, seconds: int, compute):
    """`compute()` cached under `key` (which names the tenant; the cache adds the connection's
    schema too) and the Prometheus that answered; None is not cached."""
    url = _backend(PAGE_TIMEOUT).base_url
    key = f"{key}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    try:
        value = cache.get(key)
    except RedisError:
        value = None
    if value is not None:
        return value
    value = compute()
    if value is not None:
        with contextlib.suppress(RedisError):
            cache.set(key, value, timeout=seconds)
    return value


def rule_states(schema: str) -> dict[tuple[str, str], RuleState]:
    """{(group, rule name) as the portal names them: state}; Unavailable if Prometheus can't say."""

    def ask() -> dict[tuple[str, str], RuleState]:
        prefix = f"{schema}/"
        with _backend(PAGE_TIMEOUT) as prometheus:
            if not prometheus.configured:
                raise _not_connected()
            try:
                loaded = prometheus.rules(prefix=prefix)
            except BackendError as exc:
                raise Unavailable(str(exc), connected=True) from None
        return {
            (rule.group[len(prefix) :], rule.name): RuleState(
                state=rule.state,
                health=rule.health,
                last_error=rule.last_error,
                active_alerts=rule.active_alerts,
            )
            for rule in loaded
        }

    return _cached(f"alerting-rule-states:{schema}", STATES_CACHE_SECONDS, ask)


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def query_range(
    scoped_expr: str,
    start: datetime,
    end: datetime,
    step: float,
    *,
    timeout: httpx.Timeout = PREVIEW_TIMEOUT,
) -> list[Series]:
    """A range query of an expression scoped to the tenant already; Unavailable on failure."""
    with _backend(timeout) as prometheus:
        if not prometheus.configured:
            raise _not_connected()
        try:
            result = prometheus.query_range(scoped_expr, start, end, step)
        except BackendError as exc:
            raise Unavailable(str(exc), connected=True) from None
    return [
        Series(
            labels={str(k): str(v) for k, v in (item.get("metric") or {}).items()},
            points=[(float(t), _float(v)) for t, v in item.get("values") or []],
        )
        for item in result
    ]


def _names(key: str, ask) -> list[str]:
    def compute() -> list[str]:
        with _backend(PAGE_TIMEOUT) as prometheus:
            if not prometheus.configured:
                raise _not_connected()
            try:
                names = ask(prometheus)
            except BackendError as exc:
                raise Unavailable(str(exc), connected=True) from None
        return sorted(str(n) for n in names)[:MAX_SUGGESTIONS]

    return _cached(key, SUGGESTIONS_CACHE_SECONDS, compute)


def metric_names(schema: str) -> list[str]:
    """Names of the metrics the tenant has series of (asked with the tenant's matcher)."""
    return _names(f"alerting-metric-names:{schema}", lambda p: p.metric_names(schema))


def label_names(schema: str) -> list[str]:
    """Label names on the tenant's series, without `tenant` and internal ones."""
    names = _names(f"alerting-label-names:{schema}", lambda p: p.label_names(schema))
    return [n for n in names if n != "tenant" and not n.startswith("__")]
