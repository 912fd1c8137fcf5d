"""Alertmanager's webhook payload (version 4): parsing and checking, nothing written.

Refuses with a reason naming the part that is wrong; an alert whose `tenant` label is not the
tenant of the URL is refused, so one tenant's Alertmanager route can never feed another tenant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from tenants.forms import storable, tidy_text

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
            or not storable(key + text)
        ):
            raise PayloadError(
                f"{where}.{tidy_text(str(key), 50)} must be text of at most {MAX_TEXT} chars, "
                "without NUL or unpaired surrogates"
            )
    return dict(value)


def _time(value, where: str, required: bool) -> datetime | None:
    if value and not isinstance(value, str):
        raise PayloadError(f"{where} is not an RFC 3339 time")
    if not value or value.startswith("0001-01-01"):  # Go's zero time: "not ended"
        if required:
            raise PayloadError(f"{where} is required")
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        # RFC 3339 times carry their offset; a naive one would never match the stored key.
        raise PayloadError(f"{where} is not an RFC 3339 time (it has no offset)")
    return moment


def _text(value, where: str, limit: int) -> str:
    """Free text kept as given (cut to `limit`), if PostgreSQL can keep it."""
    text = str(value or "")[:limit]
    if not storable(text):
        raise PayloadError(f"{where} must not contain NUL characters or unpaired surrogates")
    return text


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
        if not isinstance(fingerprint, str) or not fingerprint:
            raise PayloadError(f"{where}.fingerprint is required")
        if len(fingerprint) > 64 or not storable(fingerprint):
            raise PayloadError(f"{where}.fingerprint must be at most 64 characters, without NUL")
        alerts.append(
            Alert(
                status=status,
                labels=labels,
                annotations=_strings(item.get("annotations") or {}, f"{where}.annotations"),
                starts_at=_time(item.get("startsAt"), f"{where}.startsAt", required=True),
                ends_at=_time(item.get("endsAt"), f"{where}.endsAt", required=False),
                fingerprint=fingerprint,
                generator_url=_text(item.get("generatorURL"), f"{where}.generatorURL", 2000),
            )
        )
    return Notification(
        status=document["status"],
        # The group key becomes the reason of a log row, the receiver part of an audit event.
        group_key=_text(document.get("groupKey"), "groupKey", 300),
        receiver=_text(document.get("receiver"), "receiver", 200),
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
