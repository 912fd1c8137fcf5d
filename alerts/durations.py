"""Prometheus durations ("1m", "1h30m", "250ms"): validation and conversion."""

from __future__ import annotations

import re

# Units largest first, each at most once: Prometheus' own grammar for durations.
_DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
MAX_DURATION_MS = 10 * 365 * 86_400_000


def parse_duration(value: str) -> int:
    """Milliseconds in `value`; ValueError with the reason when it is not a Prometheus duration."""
    if not isinstance(value, str) or not value or len(value) > 20:
        raise ValueError("a duration such as 30s, 5m, 1h30m or 1d is required")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a duration; use e.g. 30s, 5m, 1h30m or 1d")
    total = sum(int(n) * _MS[unit] for unit, n in match.groupdict().items() if n)
    if total > MAX_DURATION_MS:
        raise ValueError(f"'{value}' is longer than 10 years")
    return total
