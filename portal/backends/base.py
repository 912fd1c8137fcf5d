"""The one shape of every HTTP backend client: timeouts, classified errors, a cached status."""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context
from redis.exceptions import RedisError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# Loading the CA bundle costs ~170 ms: once per process, not once per client.
_TLS = ssl.create_default_context()
# The home page asks for every backend's status: it must answer quickly even when one hangs.
STATUS_TIMEOUT = httpx.Timeout(1.5, connect=0.5)
STATUS_CACHE_SECONDS = 10
# Status codes worth retrying: the request may succeed later without any change on our side.
TRANSIENT_STATUS_CODES = frozenset({408, 425, 429})


class BackendError(Exception):
    """A backend call failed; `permanent` says whether retrying the same call can ever help."""

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        permanent: bool = False,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.permanent = permanent
        self.status_code = status_code

    def __str__(self) -> str:
        return f"{self.backend}: {self.message}" if self.backend else self.message

    def __reduce__(self):
        # Celery stores a failed task's exception: keep the keyword-only fields through pickling.
        fields = (self.message, self.backend, self.permanent, self.status_code)
        return (_rebuild_backend_error, fields)


def _rebuild_backend_error(
    message: str, backend: str, permanent: bool, status_code: int | None
) -> BackendError:
    return BackendError(message, backend=backend, permanent=permanent, status_code=status_code)


@dataclass(frozen=True)
class BackendStatus:
    """What a page shows about one backend: configured or not, reachable or not, and why."""

    name: str
    configured: bool
    ok: bool
    detail: str
    checked_at: datetime

    @property
    def label(self) -> str:
        if not self.configured:
            return "not connected"
        return "connected" if self.ok else f"unreachable: {self.detail}"

    def as_cache_value(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "configured": self.configured,
            "ok": self.ok,
            "detail": self.detail,
            "checked_at": self.checked_at.isoformat(),
        }

    @classmethod
    def from_cache_value(cls, value: dict[str, Any]) -> BackendStatus:
        return cls(**{**value, "checked_at": datetime.fromisoformat(value["checked_at"])})


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a backend's base URL, or None when it can (empty means unset)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "a host name is required"
    if any(char.isspace() for char in url):
        return "it must not contain spaces"
    if parts.query or parts.fragment:
        return "it must not have a query string or a fragment"
    if port == 0:
        return "port 0 is not a port a server listens on"
    return None


class HttpBackend:
    """Base of the Prometheus, Alertmanager and Grafana clients.

    `get`/`post` return the response of a successful call and raise BackendError otherwise:
    connection errors, timeouts, 5xx and 408/425/429 as transient, other 4xx as permanent.
    """

    name: ClassVar[str] = "backend"
    url_setting: ClassVar[str] = ""
    health_path: ClassVar[str] = "/"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if base_url is None:
            base_url = getattr(settings, self.url_setting, "") if self.url_setting else ""
        self.base_url = (base_url or "").rstrip("/")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self._transport = transport
        self._client: httpx.Client | None = None

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    def headers(self) -> dict[str, str]:
        """Headers sent with every request (authentication, for backends that need it)."""
        return {}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                timeout=self.timeout,
                headers=self.headers(),
                transport=self._transport,
                verify=_TLS,
                # Backends are configured by the platform admin: never follow a redirect elsewhere.
                follow_redirects=False,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def error(
        self, message: str, *, permanent: bool, status_code: int | None = None
    ) -> BackendError:
        return BackendError(
            message, backend=self.name, permanent=permanent, status_code=status_code
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; raise BackendError (transient or permanent) unless it succeeded."""
        if not self.configured:
            raise self.error(f"{self.url_setting or 'the URL'} is not set", permanent=True)
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise self.error(f"timed out ({type(exc).__name__})", permanent=False) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise self.error(f"cannot connect: {reason}", permanent=False) from exc
        if response.is_success:
            return response
        code = response.status_code
        transient = code >= 500 or code in TRANSIENT_STATUS_CODES
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        message = f"HTTP {code} from {method} {path}" + (f": {detail}" if detail else "")
        raise self.error(message, permanent=not transient, status_code=code)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def probe(self) -> BackendStatus:
        """Ask the backend's health endpoint now, with short timeouts."""
        now = timezone.now()
        if not self.configured:
            return BackendStatus(self.name, configured=False, ok=False, detail="", checked_at=now)
        problem = url_problem(self.base_url)
        if problem:
            return BackendStatus(self.name, True, False, f"{self.url_setting}: {problem}", now)
        try:
            self.get(self.health_path, timeout=STATUS_TIMEOUT)
        except BackendError as exc:
            return BackendStatus(self.name, True, False, exc.message, timezone.now())
        return BackendStatus(self.name, True, True, "", timezone.now())

    def status(self) -> BackendStatus:
        """The backend's status, cached briefly so that pages asking for it stay fast."""
        if not self.configured:
            return self.probe()
        url_hash = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        key = f"backend-status:{self.name}:{url_hash}"
        # One entry for the whole platform: a backend's health is the same for every tenant.
        with schema_context(get_public_schema_name()):
            try:
                cached = cache.get(key)
            except RedisError:
                cached = None
            if cached is not None:
                return BackendStatus.from_cache_value(cached)
            status = self.probe()
            # Without the cache the page still shows a fresh status; the next one asks again.
            with contextlib.suppress(RedisError):
                cache.set(key, status.as_cache_value(), timeout=STATUS_CACHE_SECONDS)
        return status
