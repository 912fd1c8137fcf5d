"""Sending notifications from the portal itself: relayed kinds (Teams, SMS) and test sends.

Every outbound call goes through `post_json`, which resolves the host, refuses non-public
addresses (unless the host is allowed by `OUTBOUND_ALLOWED_HOSTS`), connects to the very address
it checked (so the name cannot be re-pointed between check and connect), and follows no redirect
without checking its target the same way.
"""

from __future__ import annotations

import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from alerts.models import NotificationLog, Receiver
from alerts.outbound import (
    OutboundURLError,
    check_outbound_url,
    is_allowed_host,
    public_addresses,
)

MAX_REDIRECTS = 3
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass(frozen=True)
class ProviderAnswer:
    ok: bool
    detail: str  # status and the start of the provider's answer, or why nothing was sent


def _pinned(url: str) -> tuple[str, dict, dict]:
    """The URL rewritten to the checked address, with the Host header and TLS name kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if is_allowed_host(host, port):
        return url, {}, {}
    # Resolved and checked once, here: the connection goes to this very address, so a name
    # re-pointed after the check (DNS rebinding) is never reached.
    address = public_addresses(host, port)[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return pinned, {"Host": parts.netloc.rsplit("@", 1)[-1]}, {"sni_hostname": host}


def post_json(url: str, payload: dict, headers: dict | None = None) -> ProviderAnswer:
    for _ in range(MAX_REDIRECTS + 1):
        try:
            check_outbound_url(url, resolve=False)
            target, host_header, extensions = _pinned(url)
        except OutboundURLError as exc:
            return ProviderAnswer(False, f"not sent: {exc}")
        try:
            # No proxy from the environment: it would connect to the name, not the checked address.
            with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
                request = client.build_request(
                    "POST",
                    target,
                    content=json.dumps(payload),
                    headers={
                        "Content-Type": "application/json",
                        **(headers or {}),
                        **host_header,
                    },
                    extensions=extensions,
                )
                response = client.send(request)
        except httpx.HTTPError as exc:
            return ProviderAnswer(False, f"not delivered: {exc or type(exc).__name__}")
        if response.is_redirect and "location" in response.headers:
            url = str(httpx.URL(url).join(response.headers["location"]))
            continue
        body = response.text.strip()[:300]
        return ProviderAnswer(response.is_success, f"HTTP {response.status_code} {body}".strip())
    return ProviderAnswer(False, f"not delivered: more than {MAX_REDIRECTS} redirects")


def teams_payload(title: str, text: str) -> dict:
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": title[:200],
        "title": title[:200],
        "text": text[:20_000],
    }


def send_sms(phone: str, text: str) -> ProviderAnswer:
    """Through the platform's SMS provider (an HTTP API in the style of Twilio's)."""
    api = getattr(settings, "SMS_API_URL", "")
    if not api:
        return ProviderAnswer(False, "not sent: no SMS provider is configured (SMS_API_URL)")
    headers = {}
    token = getattr(settings, "SMS_API_TOKEN", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = {"to": phone, "from": getattr(settings, "SMS_FROM", ""), "body": text[:1600]}
    return post_json(api, payload, headers)


def send_email(receiver: Receiver, subject: str, text: str) -> ProviderAnswer:
    s = receiver.settings
    host, _, port = (
        s.get("smarthost") or getattr(settings, "ALERTMANAGER_SMTP_SMARTHOST", "")
    ).partition(":")
    if not host:
        return ProviderAnswer(False, "not sent: no SMTP server for this receiver")
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = s.get("from") or settings.DEFAULT_FROM_EMAIL
    message["To"] = s["to"]
    message.set_content(text)
    try:
        with smtplib.SMTP(host, int(port or 25), timeout=10) as smtp:
            if s.get("require_tls"):
                smtp.starttls()
            if s.get("auth_username") and receiver.secret:
                smtp.login(s["auth_username"], receiver.secret)
            refused = smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return ProviderAnswer(False, f"not delivered: {exc}")
    return ProviderAnswer(
        not refused, "accepted by the SMTP server" if not refused else f"refused: {refused}"
    )


def send_to_receiver(
    receiver: Receiver, *, title: str, text: str, severity: str = "P3", status: str = "firing"
) -> ProviderAnswer:
    """One message to one receiver, the way its provider takes it."""
    kind = receiver.kind
    if kind == Receiver.Kind.MSTEAMS:
        return post_json(receiver.secret, teams_payload(title, text))
    if kind == Receiver.Kind.SMS:
        return send_sms(receiver.secret, f"{title}: {text}"[:1600])
    if kind == Receiver.Kind.SLACK:
        payload = {"text": f"*{title}*\n{text}"}
        if receiver.settings.get("channel"):
            payload["channel"] = receiver.settings["channel"]
        return post_json(receiver.secret, payload)
    if kind == Receiver.Kind.PAGERDUTY:
        url = receiver.settings.get("url") or "https://events.pagerduty.com/v2/enqueue"
        return post_json(
            url,
            {
                "routing_key": receiver.secret,
                "event_action": "trigger" if status == "firing" else "resolve",
                "payload": {
                    "summary": title[:1024],
                    "source": "monitoring portal",
                    "severity": {"P0": "critical", "P1": "error", "P2": "warning"}.get(
                        severity, "info"
                    ),
                },
            },
        )
    if kind == Receiver.Kind.WEBHOOK:
        return post_json(receiver.secret, {"title": title, "text": text, "status": status})
    return send_email(receiver, title, text)


def send_and_log(
    receiver: Receiver,
    *,
    title: str,
    text: str,
    reason: str,
    severity: str = "P3",
    status: str = "firing",
) -> NotificationLog:
    answer = send_to_receiver(receiver, title=title, text=text, severity=severity, status=status)
    return NotificationLog.objects.create(
        receiver=receiver,
        receiver_name=receiver.name,
        kind=receiver.kind,
        reason=reason[:300],
        alert_status=status,
        outcome=NotificationLog.Outcome.SENT if answer.ok else NotificationLog.Outcome.FAILED,
        detail=answer.detail,
    )
