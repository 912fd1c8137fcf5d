"""Prometheus HTTP API client: health, configuration reload and instant queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.backends.base import HttpBackend


class PrometheusBackend(HttpBackend):
    name = "Prometheus"
    url_setting = "PROMETHEUS_URL"
    health_path = "/-/ready"

    def reload(self) -> None:
        """Make Prometheus re-read its rule files (needs `--web.enable-lifecycle`)."""
        self.post("/-/reload")

    def query(self, expr: str, at: datetime | None = None) -> dict[str, Any]:
        """Evaluate `expr` now (or at `at`); returns the API's `data` object."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        payload = self.get("/api/v1/query", params=params).json()
        if payload.get("status") != "success":
            raise self.error(payload.get("error") or "query failed", permanent=True)
        return payload["data"]
