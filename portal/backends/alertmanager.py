"""Alertmanager client: health, reload, its configuration file, and silences (API v2).

The configuration file is `ALERTMANAGER_CONFIG_PATH`, checked with `amtool check-config` before it
replaces the one in use. Alertmanager's status API returns the configuration it runs
re-serialised (defaults filled in, secrets masked), never the file's bytes, so the file carries a
stamp that survives parsing: an extra receiver named after the hash of the text it was written
from. `loaded_config_hash` reads that stamp back to tell which text is running.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from django.conf import settings

from portal.backends.base import BackendError, HttpBackend
from portal.backends.config_files import candidate_file, check_with_tool, read_text
from portal.backends.prometheus import tenant_matcher

STAMP_PREFIX = "portal-config-"
_SILENCE_LIVE_STATES = ("active", "pending")


def stamped(text: str) -> str:
    """`text` (a configuration) with its stamp receiver added; deterministic."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise BackendError(
            "the configuration is not a YAML mapping", backend="Alertmanager", permanent=True
        )
    receivers = [r for r in document.get("receivers") or [] if not _is_stamp(r)]
    document["receivers"] = [*receivers, {"name": STAMP_PREFIX + digest}]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def _is_stamp(receiver: Any) -> bool:
    return isinstance(receiver, dict) and str(receiver.get("name", "")).startswith(STAMP_PREFIX)


class AlertmanagerBackend(HttpBackend):
    name = "Alertmanager"
    url_setting = "ALERTMANAGER_URL"
    health_path = "/-/ready"

    def reload(self) -> None:
        """Make Alertmanager re-read its configuration file."""
        self.post("/-/reload")

    # ---- the configuration file ---------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return Path(settings.ALERTMANAGER_CONFIG_PATH)

    def read_config(self) -> str:
        """The configuration file as it is now ("" when there is none)."""
        return read_text(self.config_path) or ""

    def holds(self, text: str) -> bool:
        """Whether the file in use was written from exactly `text`."""
        return self.read_config() == stamped(text)

    def check_config(self, text: str) -> None:
        """Check `text` with amtool; BackendError(permanent=True) with amtool's words if not."""
        with candidate_file(self.config_path.parent, ".alertmanager.", stamped(text)) as path:
            self._check(path)

    def write_config(self, text: str) -> bool:
        """Check `text` and atomically make it the configuration file; returns whether the file
        changed (an identical one is left alone). Works without ALERTMANAGER_URL."""
        path = self.config_path
        content = stamped(text)
        if read_text(path) == content:
            return False
        with candidate_file(path.parent, ".alertmanager.", content) as candidate:
            self._check(candidate)
            os.replace(candidate, path)
        return True

    def _check(self, candidate: Path) -> None:
        check_with_tool(
            [settings.AMTOOL_PATH, "check-config"],
            candidate,
            backend=self.name,
            shown_as="the Alertmanager configuration",
        )

    def loaded_config_hash(self) -> str:
        """The hash of the text Alertmanager runs now ("" for a file without a stamp)."""
        status = self.get("/api/v2/status").json()
        original = (status.get("config") or {}).get("original") or ""
        try:
            document = yaml.safe_load(original) or {}
        except yaml.YAMLError:
            return ""
        for receiver in document.get("receivers") or []:
            if _is_stamp(receiver):
                return receiver["name"][len(STAMP_PREFIX) :]
        return ""

    # ---- silences -----------------------------------------------------------------------------

    def active_silence_ids(self, tenant: str) -> set[str]:
        """Ids of the silences not yet expired (active or pending) with `tenant="<tenant>"`."""
        response = self.get("/api/v2/silences", params={"filter": tenant_matcher(tenant)})
        return {
            s["id"]
            for s in response.json()
            if (s.get("status") or {}).get("state") in _SILENCE_LIVE_STATES
        }

    def create_silence(
        self,
        *,
        matchers: list[dict[str, Any]],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Create a silence; returns Alertmanager's id for it."""
        body = {
            "matchers": [
                {
                    "name": m["name"],
                    "value": m["value"],
                    "isRegex": bool(m.get("isRegex", False)),
                    "isEqual": bool(m.get("isEqual", True)),
                }
                for m in matchers
            ],
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": created_by or "portal",
            "comment": comment or "-",
        }
        return self.post("/api/v2/silences", json=body).json()["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now; one that is gone already is fine."""
        try:
            self.request("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")
        except BackendError as exc:
            if exc.status_code != 404:
                raise
