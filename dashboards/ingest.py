"""Custom-metric ingest: parse a batch, check every sample against the catalog, store all or none.

A batch arrives as JSON (`{"samples": [{"name", "labels", "value", "timestamp"}]}`) or in the
Prometheus text exposition format. Every problem is reported with the sample's index (its
position in the batch, or its line in the text format) and nothing of a batch with a problem is
stored. Stored samples go to the tenant's store with COPY; watching dashboards get them on commit.

A batch is checked column by column: each distinct (name, labels) once, then all values and all
timestamps at once. Only a batch with a problem is walked sample by sample, to name each one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from redis.exceptions import RedisError

from dashboards import live, store
from dashboards.models import MetricDefinition, MetricSeries, MetricSettings
from tenants.forms import storable

logger = logging.getLogger(__name__)

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NUMBERS = frozenset({int, float})


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
class RawBatch:
    """Samples as sent, column by column: position i of every column is one sample."""

    index: Sequence[int]
    name: list[Any]
    labels: list[Any]
    value: list[Any]
    timestamp: list[Any]

    @classmethod
    def of(cls, samples: Sequence[RawSample]) -> RawBatch:
        return cls(
            [s.index for s in samples],
            [s.name for s in samples],
            [s.labels for s in samples],
            [s.value for s in samples],
            [s.timestamp for s in samples],
        )

    def __len__(self) -> int:
        return len(self.name)

    def samples(self) -> list[RawSample]:
        return [
            RawSample(*row)
            for row in zip(
                self.index, self.name, self.labels, self.value, self.timestamp, strict=True
            )
        ]


@dataclass
class CheckedSample:
    index: int
    metric: MetricDefinition
    labels: dict[str, str]
    value: float
    at: datetime
    key: str = field(default="")


@dataclass(frozen=True)
class _Identity:
    """What a (name, labels) pair checks to; shared by every sample of a batch that has it."""

    problems: tuple[str, ...]
    metric: MetricDefinition | None
    labels: dict[str, str]
    key: str


@dataclass
class CheckedBatch:
    """A batch that passed every check: per sample its identity (a position in `identities`),
    its time in Unix microseconds and its value."""

    index: Sequence[int]
    identities: list[_Identity]
    of: list[int]
    micros: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.of)


# --- Parsing ---------------------------------------------------------------------------------


def parse_json_batch(data: Any) -> RawBatch:
    """Samples of a JSON body; IngestError if the body is not a batch at all."""
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise IngestError('samples: send {"samples": [{"name", "labels", "value", "timestamp"}]}.')
    items = data["samples"]
    if all(type(item) is dict for item in items):
        return RawBatch(
            range(len(items)),
            [item.get("name") for item in items],
            [item.get("labels", {}) for item in items],
            [item.get("value") for item in items],
            [item.get("timestamp") for item in items],
        )
    raw = []
    for index, item in enumerate(items):
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
    return RawBatch.of(raw)


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


def parse_text_batch(text: str) -> RawBatch:
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
    return RawBatch.of(raw)


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
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer past any float
            raise ValueError("timestamp: out of range") from None
        if not finite:
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


def _micros_of(at: datetime) -> int:
    """Unix microseconds of an aware date-time, exactly."""
    return (at - _EPOCH) // _MICROSECOND


def _micros(seconds: float) -> int:
    """Unix microseconds of Unix seconds, rounded as `datetime.fromtimestamp` rounds them."""
    fraction, whole = math.modf(seconds)
    return int(whole) * 1_000_000 + round(fraction * 1e6)


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
        elif not storable(value):
            problems.append(f"labels.{label}: not valid Unicode text (an unpaired surrogate)")
    return problems


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
    elif not _finite(value):
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


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past any float
        return False


def settings_row() -> MetricSettings:
    row, _ = MetricSettings.objects.get_or_create(pk=1)
    return row


def check_batch(
    raw: RawBatch | list[RawSample],
    *,
    now: datetime | None = None,
    settings: MetricSettings | None = None,
) -> CheckedBatch:
    """The checked samples of a batch, or IngestError naming every bad one."""
    if not isinstance(raw, RawBatch):
        raw = RawBatch.of(raw)
    if not len(raw):
        raise IngestError("samples: the batch holds no samples.")
    if len(raw) > MAX_SAMPLES:
        raise IngestError(
            f"samples: at most {MAX_SAMPLES} per batch (this has {len(raw)}).", status=413
        )
    now = now or timezone.now()
    oldest = now - timedelta(days=(settings or settings_row()).retention_days)
    catalog = {m.name: m for m in MetricDefinition.objects.all()}
    return _checked_at_once(raw, now, oldest, catalog) or _checked_one_by_one(
        raw, now, oldest, catalog
    )


def _checked_at_once(raw: RawBatch, now, oldest, catalog) -> CheckedBatch | None:
    """The checked batch when every sample passes, seen column by column; None when any may
    not (then `_checked_one_by_one` finds which and why)."""
    if not all(type(labels) is dict for labels in raw.labels):
        return None
    try:
        # The position of each sample's (name, labels) among the batch's distinct ones.
        firsts: dict[tuple, int] = {}
        of = [
            firsts.setdefault((name, tuple(labels.items())), len(firsts))
            for name, labels in zip(raw.name, raw.labels, strict=True)
        ]
    except TypeError:  # names or label values that are no plain text
        return None
    identities = []
    for name, labels in firsts:
        if type(name) is not str:
            return None
        identity = _identity(name, dict(labels), catalog)
        if identity.problems:
            return None
        identities.append(identity)
    values = raw.value
    if not set(map(type, values)) <= _NUMBERS or not _finite_sum(values):
        return None
    counters = {
        number
        for number, identity in enumerate(identities)
        if identity.metric.type == MetricDefinition.Type.COUNTER
    }
    if counters and any(v < 0 for v, i in zip(values, of, strict=True) if i in counters):
        return None
    micros = _batch_micros(raw.timestamp, now)
    if micros is None:
        return None
    if max(micros) > _micros_of(now + MAX_FUTURE) or min(micros) < _micros_of(oldest):
        return None
    return CheckedBatch(raw.index, identities, of, micros, values)


def _finite_sum(numbers: list) -> bool:
    """Whether every number is finite: their sum is (or overflows, then they are looked at one
    by one)."""
    try:
        return math.isfinite(sum(numbers))
    except OverflowError:
        return False


def _batch_micros(timestamps: list, now: datetime) -> list[int] | None:
    """Unix microseconds of every timestamp, or None if any is not a plain one."""
    kinds = set(map(type, timestamps))
    if kinds <= _NUMBERS:
        if not _finite_sum(timestamps):
            return None
        return [
            int(whole) * 1_000_000 + round(fraction * 1e6)
            for fraction, whole in map(math.modf, timestamps)
        ]
    if kinds <= _NUMBERS | {type(None)}:
        now_micros = _micros_of(now)
        if not _finite_sum([t for t in timestamps if t is not None]):
            return None
        return [now_micros if t is None else _micros(t) for t in timestamps]
    try:
        return [_micros_of(_timestamp(t, now)) for t in timestamps]
    except (ValueError, TypeError):
        return None


def _checked_one_by_one(raw: RawBatch, now, oldest, catalog) -> CheckedBatch:
    """Every sample on its own: IngestError naming each bad one, or the batch if none is."""
    errors, checked = [], []
    identities: dict[tuple, _Identity] = {}
    for sample in raw.samples():
        key = _identity_key(sample)
        identity = identities.get(key) if key is not None else None
        if identity is None:
            identity = _identity(sample.name, sample.labels, catalog)
            if key is not None:
                identities[key] = identity
        problems, one = _problems(sample, identity, now, oldest)
        if problems:
            errors.append(
                {
                    "index": sample.index,
                    "name": sample.name if isinstance(sample.name, str) else None,
                    "errors": problems,
                }
            )
        elif one is not None:
            checked.append(one)
    if errors:
        raise IngestError(
            f"{len(errors)} of {len(raw)} samples refused; nothing stored.", errors=errors
        )
    # One identity per (metric, series key): what the batch path stores from.
    distinct: dict[tuple[int, str], int] = {}
    kept: list[_Identity] = []
    of = []
    for one in checked:
        number = distinct.setdefault((one.metric.pk, one.key), len(distinct))
        if number == len(kept):
            kept.append(_Identity((), one.metric, one.labels, one.key))
        of.append(number)
    return CheckedBatch(
        [one.index for one in checked],
        kept,
        of,
        [_micros_of(one.at) for one in checked],
        [one.value for one in checked],
    )


# --- Storing ---------------------------------------------------------------------------------


def _series_ids(batch: CheckedBatch) -> list[int]:
    """The series id of each identity of the batch, creating new series within each limit."""
    wanted: dict[int, dict[str, dict]] = {}
    metrics: dict[int, MetricDefinition] = {}
    for identity in batch.identities:
        wanted.setdefault(identity.metric.pk, {}).setdefault(identity.key, identity.labels)
        metrics[identity.metric.pk] = identity.metric
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
            refused = {
                number
                for number, identity in enumerate(batch.identities)
                if identity.metric.pk == metric_id and identity.key in over
            }
            errors += [
                {
                    "index": index,
                    "name": metric.name,
                    "errors": [
                        f"labels: a new series would pass {metric.name}'s cardinality limit "
                        f"of {metric.cardinality_limit} series"
                    ],
                }
                for index, number in zip(batch.index, batch.of, strict=True)
                if number in refused
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
    return [found[(identity.metric.pk, identity.key)] for identity in batch.identities]


def _charge_rate(count: int, limit: int) -> str | None:
    """Count `count` samples against the tenant's per-minute allowance, or refuse the batch.

    Returns the key charged, to give the allowance back if the batch is not stored after all
    (None when the counter could not be reached).
    """
    # The cache key carries the tenant's schema (django_tenants.cache.make_key).
    key = f"dashboards:ingest:{int(timezone.now().timestamp()) // RATE_WINDOW_SECONDS}"
    try:
        cache.add(key, 0, timeout=RATE_WINDOW_SECONDS * 2)
        total = cache.incr(key, count)
    except (RedisError, OSError) as exc:
        # Without the counter the batch is still stored: losing samples would be worse than
        # a minute without the allowance. The operator sees why in the log.
        logger.warning("ingest rate not counted, Redis is unreachable (%s)", exc)
        return None
    if total > limit:
        cache.decr(key, count)
        raise IngestError(
            f"rate: more than {limit} samples per minute; this batch of {count} was not stored. "
            "Retry in the next minute.",
            status=429,
        )
    return key


def _give_back(key: str, count: int) -> None:
    with contextlib.suppress(RedisError, OSError):
        cache.decr(key, count)


def _latest(batch: CheckedBatch, series: list[int]) -> dict[int, tuple[datetime, float]]:
    """Each series' newest sample of the batch (the later one in the batch of equal times)."""
    newest: dict[int, tuple[int, int]] = {}  # series id: (microseconds, position)
    for position, (number, at) in enumerate(zip(batch.of, batch.micros, strict=True)):
        series_id = series[number]
        seen = newest.get(series_id)
        if seen is None or seen[0] <= at:
            newest[series_id] = (at, position)
    return {
        series_id: (_EPOCH + at * _MICROSECOND, float(batch.values[position]))
        for series_id, (at, position) in newest.items()
    }


def store_batch(
    batch: CheckedBatch, *, settings: MetricSettings | None = None, charge: bool = True
) -> int:
    """Store checked samples (all or none) and push them to watching dashboards on commit.

    `charge=False` for the portal's own figures: they do not use up what the tenant may push.
    """
    count = len(batch)
    limit = (settings or settings_row()).max_samples_per_minute
    charged: str | None = None
    committed = []
    try:
        with transaction.atomic():
            series = _series_ids(batch)
            # Charged last: a refusal rolls back the series created above, and a batch refused
            # for its samples costs no allowance.
            if charge:
                charged = _charge_rate(count, limit)
            store.store_encoded(_encoded(batch, series))
            store.update_latest(_latest(batch, series))
            transaction.on_commit(lambda: committed.append(True))
            transaction.on_commit(lambda: _push_live(batch))
    except BaseException:
        # Not stored after all (the database refused, or the request went away): the allowance
        # taken for it goes back. A failure once committed (the live push) keeps it.
        if charged is not None and not committed:
            _give_back(charged, count)
        raise
    return count


def _encoded(batch: CheckedBatch, series: list[int]) -> list[bytes]:
    """The batch as COPY rows, one run of rows per identity."""
    runs: list[tuple[list[int], list[float]]] = [([], []) for _ in batch.identities]
    for number, at, value in zip(batch.of, batch.micros, batch.values, strict=True):
        run = runs[number]
        run[0].append(at)
        run[1].append(value)
    return [
        store.encode_rows(series_id, micros, values)
        for series_id, (micros, values) in zip(series, runs, strict=True)
    ]


def _push_live(batch: CheckedBatch) -> None:
    """The samples of metrics that built-in panels show, to the pages watching them."""
    panels = live.panels_showing(identity.metric.name for identity in batch.identities)
    if not panels:
        return
    shown = {panel.metric for panel in panels}
    identities = batch.identities
    samples = [
        CheckedSample(
            index,
            identities[number].metric,
            identities[number].labels,
            float(value),
            _EPOCH + at * _MICROSECOND,
            identities[number].key,
        )
        for index, number, at, value in zip(
            batch.index, batch.of, batch.micros, batch.values, strict=True
        )
        if identities[number].metric.name in shown
    ]
    # Without Redis the batch is still stored (and answered 202): `send_to_groups` logs it.
    live.push_samples(samples, panels)


def ingest(raw: RawBatch | list[RawSample], *, charge: bool = True) -> int:
    """Check and store one batch; returns the number of samples stored."""
    settings = settings_row()
    return store_batch(check_batch(raw, settings=settings), settings=settings, charge=charge)
