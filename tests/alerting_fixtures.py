"""The alerting stack for end-to-end tests: real Prometheus and Alertmanager wired to the portal.

`alerting_stack` (one per module: Prometheus hands new targets to scraping and alerting only
every 5 s, so starting one per test would cost that each time) runs an exporter, an Alertmanager
and a Prometheus that loads the portal's rule directory and alerts that Alertmanager. The portal
is pointed at them through settings in this process and through the environment in the processes
the tests start (a Celery worker consuming the sync and notify queues).

Data the tests write is committed (other processes must see it), so `committed_alerting` puts
acme's and globex's alerting back as it found it after each test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from tests.backend_servers import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
    ServerProcess,
    alertmanager_config,
    running_alertmanager,
    running_exporter,
    running_prometheus,
)
from tests.helpers import (
    celery_worker_answers,
    celery_worker_command,
    started_process,
    wait_for,
)

SEED_TENANTS = ("acme", "globex")


@dataclass
class AlertingStack:
    """The servers of one module and the settings that point the portal at them."""

    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    exporter: MetricsExporter
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rules_dir(self) -> Path:
        return self.prometheus.rules_dir

    def settings(self) -> dict[str, Any]:
        return {
            "PROMETHEUS_URL": self.prometheus.url,
            "ALERTMANAGER_URL": self.alertmanager.url,
            "PROMETHEUS_RULES_DIR": str(self.rules_dir),
            "ALERTMANAGER_CONFIG_PATH": str(self.alertmanager.config_path),
            **self.extra,
        }

    def environment(self) -> dict[str, str]:
        """The same settings as environment variables, for the processes tests start."""
        env = {}
        for name, value in self.settings().items():
            if isinstance(value, bool):
                env[name] = "true" if value else "false"
            elif isinstance(value, list | tuple):
                env[name] = ",".join(value)
            else:
                env[name] = str(value)
        return env

    def loaded_rules(self, prefix: str) -> dict[str, list[dict]]:
        """{group: rules} Prometheus has loaded, for groups whose name starts with `prefix`."""
        with httpx.Client(timeout=10, trust_env=False) as client:
            payload = client.get(f"{self.prometheus.url}/api/v1/rules").json()
        return {
            g["name"]: g["rules"] for g in payload["data"]["groups"] if g["name"].startswith(prefix)
        }

    def alertmanager_status(self) -> dict:
        with httpx.Client(timeout=10, trust_env=False) as client:
            return client.get(f"{self.alertmanager.url}/api/v2/status").json()

    def alertmanager_receivers(self) -> set[str]:
        """Names of the receivers in the configuration Alertmanager runs now."""
        import yaml

        original = self.alertmanager_status()["config"]["original"]
        return {r["name"] for r in yaml.safe_load(original)["receivers"]}


@contextmanager
def running_alerting_stack(directory: Path, **extra: Any) -> Iterator[AlertingStack]:
    with ExitStack() as stack:
        exporter = stack.enter_context(running_exporter())
        alertmanager = stack.enter_context(
            running_alertmanager(directory / "alertmanager", alertmanager_config())
        )
        prometheus = stack.enter_context(
            running_prometheus(
                directory / "prometheus",
                alertmanager_url=alertmanager.url,
                scrape_configs=[exporter.scrape_config()],
            )
        )
        yield AlertingStack(prometheus, alertmanager, exporter, extra)


def apply_settings(django_settings, stack: AlertingStack) -> None:
    """Point this process at the stack (pytest-django's `settings` undoes it after the test)."""
    for name, value in stack.settings().items():
        setattr(django_settings, name, value)


def restart_on_same_port(server: ServerProcess) -> None:
    """Start a stopped server again with the very same command line (port, storage, files)."""
    assert server.process.poll() is not None, f"{server.name} is still running"
    with server.log_path.open("a") as log:
        server.process = subprocess.Popen(
            server.process.args,
            cwd=server.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            with httpx.Client(timeout=2, trust_env=False) as client:
                return client.get(f"{server.url}/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=30, message=f"{server.name} to be ready again on {server.url}")


# ---- committed data ---------------------------------------------------------------------------


def seed_tenants() -> list:
    from tenants.models import Tenant

    return list(Tenant.objects.filter(schema_name__in=SEED_TENANTS).order_by("schema_name"))


def _snapshot() -> dict:
    from alerts.models import (
        AlertRule,
        MuteTiming,
        NotificationLog,
        NotificationPolicy,
        Receiver,
        RuleGroup,
        Silence,
    )

    return {
        "models": {
            model: set(model.objects.values_list("pk", flat=True))
            for model in (AlertRule, RuleGroup, Receiver, Silence, MuteTiming, NotificationLog)
        },
        "policies": {
            p.severity: (
                list(p.receivers.all()),
                list(p.mute_timings.all()),
                {
                    "group_by": p.group_by,
                    "group_wait": p.group_wait,
                    "group_interval": p.group_interval,
                    "repeat_interval": p.repeat_interval,
                },
            )
            for p in NotificationPolicy.objects.all()
        },
    }


def _restore(snapshot: dict) -> None:
    """Test clean-up: rows the test added go, policies are put back (straight through the ORM)."""
    from alerts.models import (
        AlertRule,
        MuteTiming,
        NotificationLog,
        NotificationPolicy,
        Receiver,
        RuleGroup,
        Silence,
    )

    for model in (Silence, NotificationLog, AlertRule, RuleGroup):
        model.objects.exclude(pk__in=snapshot["models"][model]).delete()
    for policy in NotificationPolicy.objects.all():
        saved = snapshot["policies"].get(policy.severity)
        if saved is None:
            policy.delete()
            continue
        receivers, mutes, values = saved
        for name, value in values.items():
            setattr(policy, name, value)
        policy.save()
        policy.receivers.set(receivers)
        policy.mute_timings.set(mutes)
    for model in (Receiver, MuteTiming):
        model.objects.exclude(pk__in=snapshot["models"][model]).delete()


@pytest.fixture
def committed_alerting(django_db_setup, django_db_blocker) -> Iterator[dict[str, Any]]:
    """Committed database access (other processes see every write), with acme's and globex's
    alerting restored afterwards; yields {"acme": tenant, "globex": tenant}."""
    with django_db_blocker.unblock():
        tenants = seed_tenants()
        snapshots = {}
        for tenant in tenants:
            with tenant_context(tenant):
                snapshots[tenant.schema_name] = _snapshot()
        try:
            yield {t.schema_name: t for t in tenants}
        finally:
            for tenant in tenants:
                with tenant_context(tenant):
                    _restore_settled(snapshots[tenant.schema_name])


def _restore_settled(snapshot: dict) -> None:
    """`_restore` in one transaction, again if a relay the worker is still recording wrote a row
    that refers to one being removed (an IntegrityError), until it holds."""
    from django.db import IntegrityError, transaction

    def attempt() -> bool | None:
        try:
            with transaction.atomic():
                _restore(snapshot)
        except IntegrityError:
            return None
        return True

    wait_for(attempt, timeout=30, interval=0.5, message="the alerting test data to be put back")


def actor():
    from tenants import audit

    return audit.Actor.system("alerting tests")


# ---- a Celery worker for the sync and notify queues ----------------------------------------------


@contextmanager
def running_sync_worker(env: dict[str, str], log_path: Path) -> Iterator[Callable[[], str]]:
    """A Celery worker consuming this run's sync and notify queues with `env` (the session's
    worker consumes only the default queue); yields a function returning its log so far."""
    queues = [settings.PORTAL_TASK_QUEUES["sync"], settings.PORTAL_TASK_QUEUES["notify"]]
    hostname = f"alerting-{os.getpid()}-{log_path.parent.name}@localhost"
    command = celery_worker_command(queues, hostname, pool="threads", concurrency=2)
    with started_process(
        command,
        env=env,
        log=log_path,
        ready=lambda: celery_worker_answers(hostname),
        what="the alerting Celery worker",
        timeout=60,
    ):
        yield log_path.read_text


# ---- a local HTTP sink for the providers Alertmanager and the portal send to ------------------


@dataclass
class HttpSink:
    """One HTTP server standing in for Slack, Teams, PagerDuty, webhooks and the SMS provider:
    every POST is answered "ok" and kept."""

    http: Any

    def url(self, path: str) -> str:
        return self.http.url_for(path)

    def bodies(self, path: str) -> list[dict]:
        return [json.loads(r.data) for r, _ in list(self.http.log) if r.path == path]

    def paths(self) -> list[str]:
        return [r.path for r, _ in list(self.http.log)]


@contextmanager
def running_http_sink() -> Iterator[HttpSink]:
    from pytest_httpserver import HTTPServer

    http = HTTPServer(host="127.0.0.1", port=0)
    http.expect_request(re.compile(r"^/.*"), method="POST").respond_with_data("ok")
    http.start()
    try:
        yield HttpSink(http)
    finally:
        http.clear()
        http.stop()
