"""Prometheus client: health, reload, queries, and the rule files it loads from disk.

Rule files live in `PROMETHEUS_RULES_DIR` (one per name, `<name>.yml`), which Prometheus loads
through `rule_files: [<dir>/*.yml]`. A file is checked with `promtool check rules` before it
replaces the one in use, so a file that would break the next reload never gets there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from portal.backends.base import HttpBackend
from portal.backends.config_files import candidate_file, check_with_tool, read_text

# Names of rule files (the portal uses tenant schema names): no path separators, no dots.
_FILE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Reloading and listing rules grow with every tenant's rules together (tens of thousands).
LONG_TIMEOUT = httpx.Timeout(60.0, connect=2.0)


@dataclass(frozen=True)
class LoadedRule:
    """One rule as Prometheus evaluates it now."""

    group: str
    name: str
    kind: str  # "alert" | "record"
    state: str  # firing | pending | inactive (always inactive for recording rules)
    health: str  # ok | err | unknown (not evaluated yet)
    last_error: str
    last_evaluation: str
    active_alerts: int


def tenant_matcher(tenant: str) -> str:
    """`tenant="<schema>"`; ValueError unless `tenant` is a schema name (so it can never widen
    a selector or a filter to other tenants)."""
    if not isinstance(tenant, str) or not _FILE_NAME.fullmatch(tenant):
        raise ValueError(f"{tenant!r} is not a tenant schema name")
    return f'tenant="{tenant}"'


def tenant_selector(tenant: str) -> str:
    """`{tenant="<schema>"}`: the matcher every suggestion query is limited by."""
    return "{" + tenant_matcher(tenant) + "}"


class PrometheusBackend(HttpBackend):
    name = "Prometheus"
    url_setting = "PROMETHEUS_URL"
    health_path = "/-/ready"

    def reload(self) -> None:
        """Make Prometheus re-read its rule files (needs `--web.enable-lifecycle`).

        The call returns once every file is loaded, which takes longer the more rules all
        tenants have together: it gets a longer timeout than other calls.
        """
        self.post("/-/reload", timeout=LONG_TIMEOUT)

    def query(self, expr: str, at: datetime | None = None) -> dict[str, Any]:
        """Evaluate `expr` now (or at `at`); returns the API's `data` object."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        payload = self.get("/api/v1/query", params=params).json()
        if payload.get("status") != "success":
            raise self.error(payload.get("error") or "query failed", permanent=True)
        return payload["data"]

    # ---- rule files ---------------------------------------------------------------------------

    @property
    def rules_dir(self) -> Path:
        return Path(settings.PROMETHEUS_RULES_DIR)

    def rule_file_path(self, name: str) -> Path:
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} cannot name a rule file")
        return self.rules_dir / f"{name}.yml"

    def write_rule_file(self, name: str, text: str) -> bool:
        """Check `text` with promtool and atomically make it the rule file `name`.

        Returns whether the file changed (an identical one is left alone). A file promtool
        refuses never replaces the one in use: BackendError(permanent=True) with its words.
        Works without PROMETHEUS_URL: the file is then ready for when Prometheus is connected.
        """
        path = self.rule_file_path(name)
        if read_text(path) == text:
            return False
        # The candidate's name does not end in .yml: a reload for another file must never load a
        # file that is still being checked.
        with candidate_file(path.parent, f".{name}.", text) as candidate:
            check_with_tool(
                [settings.PROMTOOL_PATH, "check", "rules"],
                candidate,
                backend=self.name,
                shown_as=f"the rule file {path.name}",
            )
            os.replace(candidate, path)
        return True

    def remove_rule_file(self, name: str) -> bool:
        """Remove the rule file `name`; returns whether there was one."""
        try:
            self.rule_file_path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def rule_file_names(self) -> list[str]:
        """Names of the rule files in the directory (as `write_rule_file` was given them)."""
        if not self.rules_dir.is_dir():
            return []
        return sorted(
            path.stem for path in self.rules_dir.glob("*.yml") if _FILE_NAME.fullmatch(path.stem)
        )

    # ---- what Prometheus has loaded -----------------------------------------------------------

    def rule_groups(self, prefix: str = "") -> list[dict[str, Any]]:
        """Loaded rule groups whose name starts with `prefix`, as `/api/v1/rules` shows them."""
        groups = self._data("/api/v1/rules", timeout=LONG_TIMEOUT).get("groups") or []
        return [g for g in groups if str(g.get("name", "")).startswith(prefix)]

    def rule_group_sizes(self, prefix: str = "") -> dict[str, int]:
        """{group name: number of rules} of the loaded groups whose name starts with `prefix`."""
        return {g["name"]: len(g.get("rules") or []) for g in self.rule_groups(prefix)}

    def rules(self, prefix: str = "") -> list[LoadedRule]:
        """Every loaded rule of the groups starting with `prefix`: state, health, last error."""
        loaded = []
        for group in self.rule_groups(prefix):
            for rule in group.get("rules") or []:
                kind = "alert" if rule.get("type") == "alerting" else "record"
                loaded.append(
                    LoadedRule(
                        group=group["name"],
                        name=rule.get("name", ""),
                        kind=kind,
                        state=rule.get("state", "inactive") if kind == "alert" else "inactive",
                        health=rule.get("health", "unknown"),
                        last_error=rule.get("lastError", ""),
                        last_evaluation=rule.get("lastEvaluation", ""),
                        active_alerts=len(rule.get("alerts") or []),
                    )
                )
        return loaded

    # ---- previews and suggestions -------------------------------------------------------------

    def query_range(
        self, expr: str, start: datetime, end: datetime, step: float
    ) -> list[dict[str, Any]]:
        """A range query: `[{"metric": {...}, "values": [[t, "v"], ...]}, ...]`.

        `expr` must already be scoped to a tenant (alerts.promql.scope_to_tenant).
        """
        if step <= 0 or end <= start:
            raise ValueError("a range query needs start < end and a positive step")
        data = self._data(
            "/api/v1/query_range",
            params={
                "query": expr,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step:g}",
            },
        )
        if data.get("resultType") != "matrix":
            raise self.error(f"expected a matrix, got {data.get('resultType')}", permanent=True)
        return data["result"]

    def label_names(self, tenant: str) -> list[str]:
        """Label names on one tenant's series (never another's: the matcher is required)."""
        return self._data("/api/v1/labels", params={"match[]": tenant_selector(tenant)})

    def label_values(self, label: str, tenant: str) -> list[str]:
        """Values of `label` on one tenant's series."""
        if not isinstance(label, str) or not _LABEL_NAME.fullmatch(label):
            raise ValueError(f"{label!r} is not a label name")
        return self._data(
            f"/api/v1/label/{label}/values", params={"match[]": tenant_selector(tenant)}
        )

    def metric_names(self, tenant: str) -> list[str]:
        """Names of the metrics one tenant has series of."""
        return self.label_values("__name__", tenant)

    def _data(self, path: str, **kwargs: Any) -> Any:
        payload = self.get(path, **kwargs).json()
        if payload.get("status") != "success":
            raise self.error(payload.get("error") or f"{path} failed", permanent=True)
        return payload["data"]
