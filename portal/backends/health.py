"""The status of every backend at once, as the home page shows it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from portal.backends.alertmanager import AlertmanagerBackend
from portal.backends.base import BackendStatus, HttpBackend
from portal.backends.grafana import GrafanaBackend
from portal.backends.prometheus import PrometheusBackend

BACKENDS: tuple[type[HttpBackend], ...] = (PrometheusBackend, AlertmanagerBackend, GrafanaBackend)


def _status_of(backend_class: type[HttpBackend]) -> BackendStatus:
    with backend_class() as backend:
        return backend.status()


def backend_statuses() -> list[BackendStatus]:
    """Each backend's (briefly cached) status, asked in parallel so one slow backend costs once."""
    configured = [cls for cls in BACKENDS if cls().configured]
    if len(configured) <= 1:
        return [_status_of(cls) for cls in BACKENDS]
    with ThreadPoolExecutor(max_workers=len(BACKENDS)) as pool:
        return list(pool.map(_status_of, BACKENDS))
