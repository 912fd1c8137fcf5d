"""Grafana HTTP API client: health; authenticated with a service account token."""

from __future__ import annotations

import httpx
from django.conf import settings

from portal.backends.base import HttpBackend


class GrafanaBackend(HttpBackend):
    name = "Grafana"
    url_setting = "GRAFANA_URL"
    health_path = "/api/health"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, transport=transport)
        self.token = settings.GRAFANA_TOKEN if token is None else token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}
