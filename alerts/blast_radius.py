"""Who would have been told: Alertmanager's grouping and timing, replayed on fire periods.

Alerts are grouped by the policy's `group_by`; a group is flushed after `group_wait`, then every
`group_interval`; a receiver is told when an alert is new to it, when everything resolved, when
new alerts resolved (if it takes resolved messages) or when `repeat_interval` has passed; a flush
in a maintenance window sends nothing. Pure functions over plain data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerts.mute_timings import is_muted


@dataclass(frozen=True)
class FirePeriod:
    """A span in which an alert fired; `ongoing` when it still fires at the window's end."""

    start: float
    end: float
    ongoing: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def started(self) -> datetime:
        return as_datetime(self.start)

    @property
    def ended(self) -> datetime:
        return as_datetime(self.end)

    @property
    def length(self) -> str:
        return duration_words(self.seconds)


def as_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def duration_words(seconds: float) -> str:
    """'1h 5m', '45s': a span for people (the two largest units)."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return " ".join(parts[:2]) or "0s"


@dataclass(frozen=True)
class AlertTimeline:
    """One alert (a label set) and when it fired."""

    labels: dict[str, str]
    periods: tuple[FirePeriod, ...]

    def firing_at(self, t: float) -> bool:
        return any(p.start <= t and (p.ongoing or t < p.end) for p in self.periods)

    def touches(self, after: float, until: float) -> bool:
        """Whether it fired at some moment in (after, until]."""
        return any(p.start <= until and (p.ongoing or p.end > after) for p in self.periods)


@dataclass(frozen=True)
class Timings:
    """The parts of a notification policy that decide when messages go out (seconds)."""

    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_intervals: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Notification:
    at: float
    group: tuple
    firing: int
    resolved: int


@dataclass
class GroupOutcome:
    sent: list[Notification] = field(default_factory=list)
    muted: int = 0


def group_key(labels: dict[str, str], group_by: tuple[str, ...]) -> tuple:
    """Alertmanager's grouping: by the named labels, or by every label for `...`."""
    if "..." in group_by:
        return tuple(sorted(labels.items()))
    return tuple((name, labels.get(name, "")) for name in group_by)


def _next_tick(t: float, target: float, interval: float) -> float:
    """The first flush tick (t + k*interval, k >= 1) at or after `target`."""
    if target <= t:
        return t + interval
    return t + max(1, math.ceil((target - t) / interval - 1e-9)) * interval


def simulate_group(
    alerts: list[AlertTimeline],
    timings: Timings,
    *,
    window_end: float,
    send_resolved: bool,
    key: tuple = (),
) -> GroupOutcome:
    """The messages one receiver gets for one alert group, following Alertmanager's rules.

    A group starts when its first alert fires and flushes after group_wait, then every
    group_interval. A flush notifies when an alert is new to the receiver, when every alert
    resolved (if the last message had firing ones), when resolved alerts are new and the
    receiver takes resolved messages, or when repeat_interval has passed; a flush in a
    maintenance window sends nothing and leaves the receiver's state as it was. Resolved alerts
    leave the group after a flush; an empty group ends, and the next alert starts a new one.
    """
    outcome = GroupOutcome()
    interval = max(timings.group_interval, 1.0)
    changes = sorted(
        {p.start for a in alerts for p in a.periods}
        | {p.end for a in alerts for p in a.periods if not p.ongoing}
    )
    starts = sorted(p.start for a in alerts for p in a.periods)
    notified_firing: frozenset[int] | None = None
    notified_resolved: frozenset[int] = frozenset()
    notified_at = -math.inf
    cursor = starts[0] if starts else None
    while cursor is not None and cursor <= window_end:
        members: set[int] = set()
        previous = cursor - 1e-6
        t = cursor + max(timings.group_wait, 0.0)
        ended = False
        while t <= window_end:
            members |= {i for i, a in enumerate(alerts) if a.touches(previous, t)}
            firing = frozenset(i for i in members if alerts[i].firing_at(t))
            resolved = frozenset(members - firing)
            wanted = _needs_update(
                notified_firing,
                notified_resolved,
                notified_at,
                firing,
                resolved,
                now=t,
                send_resolved=send_resolved,
                repeat=timings.repeat_interval,
            )
            muted = wanted and is_muted(list(timings.mute_intervals), _moment(t))
            if wanted and muted:
                outcome.muted += 1
            elif wanted:
                if firing or (send_resolved and resolved):
                    outcome.sent.append(
                        Notification(
                            at=t,
                            group=key,
                            firing=len(firing),
                            resolved=len(resolved) if send_resolved else 0,
                        )
                    )
                notified_firing, notified_at = firing, t
                notified_resolved = resolved if send_resolved else frozenset()
            members -= resolved
            previous = t
            if not members:
                ended = True
                break
            t = _after(t, interval, changes, notified_firing, notified_at, timings, muted)
        if not ended:
            break  # the group outlives the window
        later = [s for s in starts if s > previous]
        cursor = later[0] if later else None
        if cursor is not None and cursor <= previous:
            break
    return outcome


def _after(
    t: float,
    interval: float,
    changes: list[float],
    notified_firing: frozenset[int] | None,
    notified_at: float,
    timings: Timings,
    muted: bool,
) -> float:
    """The next flush tick at which anything can happen (ticks in between change nothing)."""
    if muted:
        return t + interval  # the held-back message goes out at the first tick after the window
    upcoming = [c for c in changes if c > t]
    candidates = [_next_tick(t, upcoming[0], interval)] if upcoming else []
    if notified_firing:
        candidates.append(_next_tick(t, notified_at + timings.repeat_interval, interval))
    return min(candidates) if candidates else math.inf


def _needs_update(
    notified_firing: frozenset[int] | None,
    notified_resolved: frozenset[int],
    notified_at: float,
    firing: frozenset[int],
    resolved: frozenset[int],
    *,
    now: float,
    send_resolved: bool,
    repeat: float,
) -> bool:
    if notified_firing is None:
        return bool(firing)
    if not firing <= notified_firing:
        return True
    if not firing:
        return bool(notified_firing)
    if send_resolved and not resolved <= notified_resolved:
        return True
    return notified_at <= now - repeat


def _moment(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


@dataclass(frozen=True)
class ReceiverTarget:
    name: str
    kind: str
    kind_label: str
    usable: bool  # enabled and configured: Alertmanager sends to it
    send_resolved: bool


@dataclass(frozen=True)
class ReceiverImpact:
    receiver: ReceiverTarget
    messages: int
    resolved_messages: int
    first_at: float | None

    @property
    def first_time(self) -> datetime | None:
        return None if self.first_at is None else as_datetime(self.first_at)


@dataclass(frozen=True)
class BlastRadius:
    groups: int
    alerts: int
    receivers: tuple[ReceiverImpact, ...]
    muted: int

    @property
    def messages(self) -> int:
        return sum(r.messages for r in self.receivers if r.receiver.usable)


def blast_radius(
    alerts: list[AlertTimeline],
    timings: Timings,
    receivers: list[ReceiverTarget],
    *,
    window_end: float,
) -> BlastRadius:
    """Who would have been told about `alerts`, by which channel, how many times."""
    groups: dict[tuple, list[AlertTimeline]] = {}
    for alert in alerts:
        if alert.periods:
            groups.setdefault(group_key(alert.labels, timings.group_by), []).append(alert)
    outcomes: dict[bool, list[GroupOutcome]] = {}
    for send_resolved in {r.send_resolved for r in receivers}:
        outcomes[send_resolved] = [
            simulate_group(
                members, timings, window_end=window_end, send_resolved=send_resolved, key=key
            )
            for key, members in groups.items()
        ]
    impacts = []
    for receiver in receivers:
        sent = [n for o in outcomes.get(receiver.send_resolved, []) for n in o.sent]
        impacts.append(
            ReceiverImpact(
                receiver=receiver,
                messages=len(sent),
                resolved_messages=sum(1 for n in sent if n.firing == 0),
                first_at=min((n.at for n in sent), default=None),
            )
        )
    muted = max((sum(o.muted for o in outs) for outs in outcomes.values()), default=0)
    return BlastRadius(
        groups=len(groups),
        alerts=sum(1 for a in alerts if a.periods),
        receivers=tuple(impacts),
        muted=muted,
    )
