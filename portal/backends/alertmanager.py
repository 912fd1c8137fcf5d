"""Alertmanager HTTP API client: health and configuration reload."""

from __future__ import annotations

from portal.backends.base import HttpBackend


class AlertmanagerBackend(HttpBackend):
    name = "Alertmanager"
    url_setting = "ALERTMANAGER_URL"
    health_path = "/-/ready"

    def reload(self) -> None:
        """Make Alertmanager re-read its configuration file."""
        self.post("/-/reload")
