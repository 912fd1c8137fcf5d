"""Grafana HTTP API client: health, folders, dashboards; authenticated with a service account
token. It knows Grafana's endpoints, nothing of the portal's dashboards."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from portal.backends.base import BackendError, HttpBackend


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

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise self.error("the answer is not JSON", permanent=False) from None
        if not isinstance(body, dict):
            raise self.error("the answer is not a JSON object", permanent=False)
        return body

    def ensure_folder(self, uid: str, title: str) -> dict[str, Any]:
        """The folder `uid`, created with `title` if Grafana has none; renamed if it differs."""
        path = f"/api/folders/{quote(uid, safe='')}"
        try:
            folder = self._json(self.get(path))
        except BackendError as exc:
            if exc.status_code != 404:
                raise
            return self._json(self.post("/api/folders", json={"uid": uid, "title": title}))
        if folder.get("title") != title:
            body = {"title": title, "version": folder.get("version"), "overwrite": True}
            folder = self._json(self.request("PUT", path, json=body))
        return folder

    def save_dashboard(self, model: dict, *, folder_uid: str, message: str) -> dict[str, Any]:
        """Create or replace the dashboard `model["uid"]` in the folder; Grafana's answer
        (`uid`, `version`, `url`)."""
        body = {"dashboard": model, "folderUid": folder_uid, "overwrite": True, "message": message}
        return self._json(self.post("/api/dashboards/db", json=body))

    def delete_dashboard(self, uid: str) -> bool:
        """Remove the dashboard; False if Grafana had none with this uid."""
        try:
            self.request("DELETE", f"/api/dashboards/uid/{quote(uid, safe='')}")
        except BackendError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True
