"""Alertmanager's webhook payload (version 4): parsing and checking, nothing written.

Refuses with a reason naming the part that is wrong; an alert whose `tenant` label is not the
tenant of the URL is refused, so one tenant's Alertmanager route can never feed another tenant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_TEXT = 10_000


class PayloadError(ValueError):
    """The payload is not one the portal takes; the message says where and why."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str


@dataclass(frozen=True)
class Notification:
    status: str
    group_key: str
    receiver: str
    alerts: tuple[Alert, ...]


def _strings(value, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_LABELS:
        raise PayloadError(f"{where} must be an object of at most {MAX_LABELS} entries")
    for key, text in value.items():
        if (
            not isinstance(text, str)
            or len(key) > 200
            or len(text) > MAX_TEXT
            or "\x00" in key + text
        ):
            raise PayloadError(f"{where}.{str(key)[:50]} must be text of at most {MAX_TEXT} chars")
    return dict(value)


def _time(value, where: str, required: bool) -> datetime | None:
    if value and not isinstance(value, str):
        raise PayloadError(f"{where} is not an RFC 3339 time")
    if not value or value.startswith("0001-01-01"):  # Go's zero time: "not ended"
        if required:
            raise PayloadError(f"{where} is required")
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where} is not an RFC 3339 time") from None


def parse_notification(body: bytes, *, schema: str) -> Notification:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not JSON") from None
    if not isinstance(document, dict):
        raise PayloadError("the body must be a JSON object")
    if document.get("version") != "4":
        raise PayloadError('version must be "4" (Alertmanager\'s webhook format)')
    if document.get("status") not in ("firing", "resolved"):
        raise PayloadError("status must be firing or resolved")
    raw = document.get("alerts")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ALERTS:
        raise PayloadError(f"alerts must be a list of 1 to {MAX_ALERTS} alerts")
    alerts = []
    for index, item in enumerate(raw):
        where = f"alerts[{index}]"
        if not isinstance(item, dict):
            raise PayloadError(f"{where} must be an object")
        labels = _strings(item.get("labels"), f"{where}.labels")
        if labels.get("tenant") != schema:
            raise PayloadError(f"{where}.labels.tenant does not name this tenant")
        status = item.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status must be firing or resolved")
        fingerprint = item.get("fingerprint")
        if not isinstance(fingerprint, str) or not 1 <= len(fingerprint) <= 64:
            raise PayloadError(f"{where}.fingerprint is required")
        alerts.append(
            Alert(
                status=status,
                labels=labels,
                annotations=_strings(item.get("annotations") or {}, f"{where}.annotations"),
                starts_at=_time(item.get("startsAt"), f"{where}.startsAt", required=True),
                ends_at=_time(item.get("endsAt"), f"{where}.endsAt", required=False),
                fingerprint=fingerprint,
                generator_url=str(item.get("generatorURL") or "")[:2000],
            )
        )
    group_key = str(document.get("groupKey") or "")[:300]
    if "\x00" in group_key:
        # It becomes the reason of a notification log row: PostgreSQL text cannot hold NUL.
        raise PayloadError("groupKey must not contain NUL characters")
    return Notification(
        status=document["status"],
        group_key=group_key,
        receiver=str(document.get("receiver") or "")[:200],
        alerts=tuple(alerts),
    )


def summarise(notification: Notification) -> tuple[str, str, str]:
    """(title, text, severity) of a notification, for providers that take plain messages."""
    first = notification.alerts[0]
    name = first.labels.get("alertname", "Alert")
    severity = first.labels.get("severity", "P3")
    count = len(notification.alerts)
    state = "RESOLVED" if notification.status == "resolved" else "FIRING"
    title = f"[{state}] {severity} {name}" + (f" ({count} alerts)" if count > 1 else "")
    lines = [
        a.annotations.get("summary") or a.annotations.get("description") or name
        for a in notification.alerts[:10]
    ]
    return title, "\n".join(lines), severity
