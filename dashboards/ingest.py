"""Custom-metric ingest: parse a batch, check every sample against the catalog, store all or none.

A batch arrives as JSON (`{"samples": [{"name", "labels", "value", "timestamp"}]}`) or in the
Prometheus text exposition format. Every problem is reported with the sample's index (its
position in the batch, or its line in the text format) and nothing of a batch with a problem is
stored. Stored samples go to the tenant's store with COPY; watching dashboards get them on commit.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dashboards import live, store
from dashboards.models import MetricDefinition, MetricSeries, MetricSettings

MAX_SAMPLES = 10_000
MAX_LABEL_VALUE = 200
# Clocks drift; a sample a little ahead of ours is fine, one from tomorrow is a bug.
MAX_FUTURE = timedelta(minutes=5)
RATE_WINDOW_SECONDS = 60
# The portal sets `tenant` itself when Prometheus scrapes; a pushed one would be ignored or lie.
RESERVED_LABELS = frozenset({"tenant", "__name__"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class IngestError(Exception):
    """A batch refused as a whole; `status` is the HTTP status, `errors` name each bad sample."""

    def __init__(self, message: str, *, status: int = 400, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or []


@dataclass
class RawSample:
    """A sample as sent, before any check; `index` is where it was in the batch."""

    index: int
    name: Any
    labels: Any
    value: Any
    timestamp: Any = None


@dataclass
class CheckedSample:
    index: int
    metric: MetricDefinition
    labels: dict[str, str]
    value: float
    at: datetime
    key: str = field(default="")


# --- Parsing ---------------------------------------------------------------------------------


def parse_json_batch(data: Any) -> list[RawSample]:
    """Samples of a JSON body; IngestError if the body is not a batch at all."""
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise IngestError('samples: send {"samples": [{"name", "labels", "value", "timestamp"}]}.')
    raw = []
    for index, item in enumerate(data["samples"]):
        if not isinstance(item, dict):
            raw.append(RawSample(index, None, None, None))
            continue
        raw.append(
            RawSample(
                index,
                item.get("name"),
                item.get("labels", {}),
                item.get("value"),
                item.get("timestamp"),
            )
        )
    return raw


_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s+"
    r"(?P<value>\S+)(?:\s+(?P<ts>-?\d+))?\s*$"
)
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _text_labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL_PAIR.match(text, position)
        if match is None:
            return None if text[position:].strip() else labels
        labels[match.group(1)] = re.sub(
            r"\\.", lambda m: _UNESCAPE.get(m.group(0), m.group(0)), match.group(2)
        )
        position = match.end()
    return labels


def parse_text_batch(text: str) -> list[RawSample]:
    """Samples of a Prometheus text exposition body; `index` is the 1-based line number."""
    raw = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        labels = _text_labels(match.group("labels") or "") if match else None
        if match is None or labels is None:
            raw.append(RawSample(number, None, None, None, timestamp="unparsable"))
            continue
        value_text = match.group("value")
        try:
            value: Any = float(value_text)
        except ValueError:
            value = value_text
        ts = match.group("ts")
        raw.append(
            RawSample(
                number,
                match.group("name"),
                labels,
                value,
                None if ts is None else int(ts) / 1000,
            )
        )
    return raw


# --- Checking --------------------------------------------------------------------------------


def _resolve_metric(name: str, catalog: dict[str, MetricDefinition]) -> MetricDefinition | None:
    if name in catalog:
        metric = catalog[name]
        return None if metric.type == MetricDefinition.Type.HISTOGRAM else metric
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            metric = catalog.get(name[: -len(suffix)])
            if metric is not None and metric.type == MetricDefinition.Type.HISTOGRAM:
                return metric
    return None


def _timestamp(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, bool):
        raise ValueError("timestamp: use Unix seconds or an ISO 8601 date-time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("timestamp: must be a finite number of Unix seconds")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("timestamp: out of range") from None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError("timestamp: use Unix seconds or an ISO 8601 date-time")
        if parsed.tzinfo is None:
            raise ValueError("timestamp: give a time zone (e.g. Z or +00:00)")
        return parsed
    raise ValueError("timestamp: use Unix seconds or an ISO 8601 date-time")


@dataclass(frozen=True)
class _Identity:
    """What a (name, labels) pair checks to; shared by every sample of a batch that has it."""

    problems: tuple[str, ...]
    metric: MetricDefinition | None
    labels: dict[str, str]
    key: str


def _label_problems(metric: MetricDefinition, name: str, raw_labels: dict) -> list[str]:
    allowed = metric.allowed_labels
    if name.endswith("_bucket") and metric.name != name:
        allowed = allowed | {"le"}
    problems = []
    for label, value in raw_labels.items():
        if label in RESERVED_LABELS:
            problems.append(f"labels.{label}: reserved (the portal sets it)")
        elif not LABEL_NAME.fullmatch(str(label)):
            problems.append(f"labels: {label!r} is not a label name")
        elif label not in allowed:
            problems.append(
                f"labels.{label}: not allowed for {metric.name} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
        elif not isinstance(value, str):
            problems.append(f"labels.{label}: must be text")
        elif len(value) > MAX_LABEL_VALUE:
            problems.append(f"labels.{label}: at most {MAX_LABEL_VALUE} characters")
        elif not _storable(value):
            problems.append(f"labels.{label}: not valid Unicode text (an unpaired surrogate)")
    return problems


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _identity(name: Any, raw_labels: Any, catalog: dict[str, MetricDefinition]) -> _Identity:
    if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
        return _Identity(("name: must be a metric name such as http_requests_total",), None, {}, "")
    if not isinstance(raw_labels, dict):
        return _Identity(("labels: must be an object of label names to text values",), None, {}, "")
    metric = _resolve_metric(name, catalog)
    if metric is None:
        if name in catalog:
            problem = f"name: {name} is a histogram; push {name}_bucket/_sum/_count"
        else:
            problem = f"name: {name} is not in the metric catalog"
        return _Identity((problem,), None, {}, "")
    problems = _label_problems(metric, name, raw_labels)
    if problems:
        return _Identity(tuple(problems), None, {}, "")
    labels = dict(raw_labels)
    if metric.name != name:
        labels["__name__"] = name  # histogram parts share the metric; the name tells them apart
    return _Identity((), metric, labels, store.labels_key(labels))


def _identity_key(raw: RawSample) -> tuple | None:
    """A hashable key of (name, labels), or None when they are not plain text."""
    if not isinstance(raw.name, str) or not isinstance(raw.labels, dict):
        return None
    try:
        return (raw.name, tuple(raw.labels.items()))
    except TypeError:
        return None


def _problems(
    raw: RawSample,
    identity: _Identity,
    now: datetime,
    oldest: datetime,
) -> tuple[list[str], CheckedSample | None]:
    if raw.timestamp == "unparsable":
        return ['line: not a sample (expected `name{label="value"} value [timestamp_ms]`)'], None
    problems = list(identity.problems)
    metric = identity.metric
    value = raw.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append("value: must be a number")
    elif not math.isfinite(value):
        problems.append("value: must be finite (no NaN or infinity)")
    elif metric is not None and metric.type == MetricDefinition.Type.COUNTER and value < 0:
        problems.append("value: a counter cannot be negative")
    try:
        at = _timestamp(raw.timestamp, now)
    except ValueError as exc:
        problems.append(str(exc))
        at = now
    else:
        if at > now + MAX_FUTURE:
            problems.append(f"timestamp: more than {MAX_FUTURE} in the future")
        elif at < oldest:
            problems.append(
                f"timestamp: older than the retention period (before {oldest:%Y-%m-%d %H:%M} UTC)"
            )
    if problems or metric is None:
        return problems, None
    return problems, CheckedSample(
        raw.index, metric, identity.labels, float(value), at, identity.key
    )


def settings_row() -> MetricSettings:
    row, _ = MetricSettings.objects.get_or_create(pk=1)
    return row


def check_batch(
    raw_samples: list[RawSample], *, now: datetime | None = None
) -> list[CheckedSample]:
    """The checked samples of a batch, or IngestError naming every bad one."""
    if not raw_samples:
        raise IngestError("samples: the batch holds no samples.")
    if len(raw_samples) > MAX_SAMPLES:
        raise IngestError(
            f"samples: at most {MAX_SAMPLES} per batch (this has {len(raw_samples)}).", status=413
        )
    now = now or timezone.now()
    oldest = now - timedelta(days=settings_row().retention_days)
    catalog = {m.name: m for m in MetricDefinition.objects.all()}
    errors, checked = [], []
    identities: dict[tuple, _Identity] = {}
    for raw in raw_samples:
        key = _identity_key(raw)
        identity = identities.get(key) if key is not None else None
        if identity is None:
            identity = _identity(raw.name, raw.labels, catalog)
            if key is not None:
                identities[key] = identity
        problems, sample = _problems(raw, identity, now, oldest)
        if problems:
            errors.append(
                {
                    "index": raw.index,
                    "name": raw.name if isinstance(raw.name, str) else None,
                    "errors": problems,
                }
            )
        elif sample is not None:
            checked.append(sample)
    if errors:
        raise IngestError(
            f"{len(errors)} of {len(raw_samples)} samples refused; nothing stored.", errors=errors
        )
    return checked


# --- Storing ---------------------------------------------------------------------------------


def _series_ids(samples: list[CheckedSample]) -> dict[tuple[int, str], int]:
    """Series id of every (metric, labels) of the batch, creating new ones within each limit."""
    wanted: dict[int, dict[str, dict]] = defaultdict(dict)
    for sample in samples:
        wanted[sample.metric.pk].setdefault(sample.key, sample.labels)
    metrics = {s.metric.pk: s.metric for s in samples}
    found = {
        (metric_id, key): pk
        for pk, metric_id, key in MetricSeries.objects.filter(
            metric_id__in=wanted, labels_key__in={k for keys in wanted.values() for k in keys}
        ).values_list("pk", "metric_id", "labels_key")
    }
    errors = []
    for metric_id, keys in wanted.items():
        new = [key for key in keys if (metric_id, key) not in found]
        if not new:
            continue
        metric = metrics[metric_id]
        existing = MetricSeries.objects.filter(metric_id=metric_id).count()
        if existing + len(new) > metric.cardinality_limit:
            over = set(new[max(0, metric.cardinality_limit - existing) :])
            errors += [
                {
                    "index": s.index,
                    "name": metric.name,
                    "errors": [
                        f"labels: a new series would pass {metric.name}'s cardinality limit "
                        f"of {metric.cardinality_limit} series"
                    ],
                }
                for s in samples
                if s.metric.pk == metric_id and s.key in over
            ]
            continue
        MetricSeries.objects.bulk_create(
            [MetricSeries(metric_id=metric_id, labels_key=key, labels=keys[key]) for key in new],
            ignore_conflicts=True,  # another batch may create the same series at the same time
        )
        for pk, key in MetricSeries.objects.filter(
            metric_id=metric_id, labels_key__in=new
        ).values_list("pk", "labels_key"):
            found[(metric_id, key)] = pk
    if errors:
        errors.sort(key=lambda e: e["index"])
        raise IngestError(
            f"{len(errors)} samples refused: too many series; nothing stored.", errors=errors
        )
    return found


def _charge_rate(count: int) -> None:
    """Count `count` samples against the tenant's per-minute allowance, or refuse the batch."""
    limit = settings_row().max_samples_per_minute
    # The cache key carries the tenant's schema (django_tenants.cache.make_key).
    key = f"dashboards:ingest:{int(timezone.now().timestamp()) // RATE_WINDOW_SECONDS}"
    cache.add(key, 0, timeout=RATE_WINDOW_SECONDS * 2)
    total = cache.incr(key, count)
    if total > limit:
        cache.decr(key, count)
        raise IngestError(
            f"rate: more than {limit} samples per minute; this batch of {count} was not stored. "
            "Retry in the next minute.",
            status=429,
        )


@transaction.atomic
def store_batch(samples: list[CheckedSample]) -> int:
    """Store checked samples (all or none) and push them to watching dashboards on commit."""
    ids = _series_ids(samples)
    # Charged last: a refusal rolls back the series created above, and a batch refused for its
    # samples costs no allowance.
    _charge_rate(len(samples))
    latest: dict[int, tuple[datetime, float]] = {}
    rows = []
    for sample in samples:
        series_id = ids[(sample.metric.pk, sample.key)]
        rows.append((series_id, sample.at, sample.value))
        seen = latest.get(series_id)
        if seen is None or seen[0] <= sample.at:
            latest[series_id] = (sample.at, sample.value)
    written = store.copy_rows(rows)
    store.add_to_rollup(rows)
    store.update_latest(latest)
    transaction.on_commit(lambda: live.push_samples(samples))
    return written


def ingest(raw_samples: list[RawSample]) -> int:
    """Check and store one batch; returns the number of samples stored."""
    return store_batch(check_batch(raw_samples))
