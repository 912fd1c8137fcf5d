"""Where the portal may send notifications: https to public addresses only.

A receiver URL is checked when it is saved and again at every send, by resolving the host and
refusing loopback, private, link-local, multicast and reserved addresses, so a name that later
resolves to 169.254.169.254 (DNS rebinding) is still refused. Hosts that the platform's operator
lists in `OUTBOUND_ALLOWED_HOSTS` (e.g. an internal mail relay, or local test sinks) are exempt.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class OutboundURLError(ValueError):
    """The URL may not be called; the message says why."""


def _allowed_hosts() -> set[str]:
    return {h.lower() for h in getattr(settings, "OUTBOUND_ALLOWED_HOSTS", [])}


def is_allowed_host(host: str, port: int) -> bool:
    """Whether the platform's operator exempted this host (or host:port) from the checks."""
    allowed = _allowed_hosts()
    return host in allowed or f"{host}:{port}" in allowed


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def resolve_addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundURLError(f"the host {host} does not resolve ({exc})") from None
    return sorted({info[4][0] for info in infos})


def check_outbound_url(url: str, *, resolve: bool = True) -> str:
    """Return `url` if the portal may call it; raise OutboundURLError with the reason if not."""
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise OutboundURLError("a URL of at most 2,000 characters is required")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise OutboundURLError("the URL contains control characters")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundURLError("the URL has no host")
    if parts.username or parts.password:
        raise OutboundURLError("credentials in the URL are not allowed; use the secret field")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundURLError("the URL's port is not a number from 1 to 65535") from None
    if is_allowed_host(host, port):
        if parts.scheme not in ("http", "https"):
            raise OutboundURLError("only http and https URLs can be called")
        return url
    if parts.scheme != "https":
        raise OutboundURLError("the URL must use https")
    if resolve:
        public_addresses(host, port)
    return url


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, all of them public; OutboundURLError otherwise."""
    addresses = resolve_addresses(host, port)
    refused = [a for a in addresses if not _is_public(a)]
    if refused:
        raise OutboundURLError(
            f"{host} resolves to a loopback, private, link-local or reserved address "
            f"({', '.join(refused)}); the portal only calls public addresses"
        )
    return addresses
