"""Real Prometheus and Alertmanager processes for tests, and an exporter whose series tests control.

Each server runs from the Debian binaries on a free 127.0.0.1 port with its own storage in a
temporary directory, is waited for through `/-/ready` and is stopped (terminate, then kill) when
the test or module that started it ends. The exporter is a stdlib HTTP server in a thread that
serves a text exposition the test sets; Prometheus scrapes it every second with `honor_labels`, so
the exposition can carry `tenant` labels for several tenants.

The context managers (`running_*`) serve any fixture scope; the pytest fixtures at the bottom are
the per-test defaults. Prometheus 2.42 hands new targets to scraping and to alerting only every
5 s, so the first scrape and the first alert to reach Alertmanager come ~5-6 s after a start:
start one Prometheus per module where tests can share it, and wait with a deadline, never a sleep.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.helpers import IN_CI, free_port, wait_for

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
EXPORTER_JOB = "portal-test"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# A port picked free can be taken before the server binds it; starting again on another is enough.
START_ATTEMPTS = 3


def require_binary(path: Path) -> None:
    """Skip the test when `path` is not installed; under CI that is a failure, never a skip."""
    if path.is_file() and os.access(path, os.X_OK):
        return
    message = (
        f"{path} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _client() -> httpx.Client:
    # trust_env off: a proxy from the environment must never sit between a test and 127.0.0.1.
    return httpx.Client(timeout=10.0, trust_env=False)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A started server: its base URL, working directory and log."""

    name: str
    url: str
    directory: Path
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process, and kill it if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)

    def reload(self) -> None:
        """Ask the server to re-read its configuration; fails the test if it refuses."""
        with _client() as client:
            response = client.post(f"{self.url}/-/reload")
        assert response.status_code == 200, (
            f"{self.name} refused to reload ({response.status_code}): {response.text}"
        )


@dataclass
class PrometheusServer(ServerProcess):
    """A running Prometheus with the rules directory it loads `*.yml`/`*.yaml` from."""

    rules_dir: Path = field(default_factory=Path)

    def query(self, expr: str) -> list[Sample]:
        return promql_query(self.url, expr)

    def wait_for_samples(self, expr: str, count: int, timeout: float = 30.0) -> list[Sample]:
        """Poll `expr` until it returns exactly `count` (>= 1) samples, e.g. the first scrape."""
        if count < 1:
            raise ValueError("wait for at least one sample; an empty result is also the start")

        def counted() -> list[Sample] | None:
            samples = self.query(expr)
            return samples if len(samples) == count else None

        return wait_for(
            counted,
            timeout=timeout,
            interval=0.1,
            message=f"{expr} to return {count} samples on {self.url}",
        )


def _ready(server: ServerProcess) -> bool:
    if server.process.poll() is not None:
        raise _Exited(server)
    try:
        with _client() as client:
            return client.get(f"{server.url}/-/ready").status_code == 200
    except httpx.TransportError:
        return False


class _Exited(Exception):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__(f"{server.name} exited with {server.process.returncode}")
        self.server = server


def _start(
    name: str,
    command: Callable[[int], list[str]],
    directory: Path,
    factory: type = ServerProcess,
    **extra: Any,
) -> ServerProcess:
    """Start `command(port)` on a free port and wait until it reports ready."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{name.lower()}.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command(port),
                cwd=directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = factory(
            name=name,
            url=f"http://127.0.0.1:{port}",
            directory=directory,
            process=process,
            log_path=log_path,
            **extra,
        )
        try:
            wait_for(
                lambda server=server: _ready(server),
                timeout=READY_TIMEOUT,
                interval=0.05,
                message=f"{name} to report ready on {server.url}",
            )
            return server
        except _Exited:
            tail = server.log_tail()
            if "address already in use" in tail and attempt < START_ATTEMPTS:
                continue
            raise AssertionError(f"{name} exited before it was ready:\n{tail}") from None
        except AssertionError:
            server.stop()
            raise AssertionError(f"{name} did not become ready:\n{server.log_tail()}") from None
        except BaseException:
            server.stop()
            raise
    raise AssertionError(f"{name} could not bind a free port")  # pragma: no cover


def prometheus_config(
    *,
    rules_dir: Path | None = None,
    alertmanager_url: str | None = None,
    scrape_configs: Iterable[Mapping[str, Any]] = (),
    interval: str = "1s",
) -> dict[str, Any]:
    """A Prometheus configuration: rule files from `rules_dir`, alerts to `alertmanager_url`."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [dict(c) for c in scrape_configs],
    }
    if rules_dir is not None:
        config["rule_files"] = [str(rules_dir / "*.yml"), str(rules_dir / "*.yaml")]
    if alertmanager_url is not None:
        parts = urlsplit(alertmanager_url)
        target: dict[str, Any] = {
            "scheme": parts.scheme or "http",
            "api_version": "v2",
            "static_configs": [{"targets": [parts.netloc]}],
        }
        if parts.path.strip("/"):
            target["path_prefix"] = parts.path
        config["alerting"] = {"alertmanagers": [target]}
    return config


@contextmanager
def running_prometheus(
    directory: Path,
    *,
    rules_dir: Path | None = None,
    alertmanager_url: str | None = None,
    scrape_configs: Iterable[Mapping[str, Any]] = (),
) -> Iterator[PrometheusServer]:
    """A Prometheus evaluating rules every second from `rules_dir` (default `directory/rules`)."""
    require_binary(PROMETHEUS_BIN)
    rules_dir = rules_dir or directory / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    config_path = directory / "prometheus.yml"
    directory.mkdir(parents=True, exist_ok=True)
    config = prometheus_config(
        rules_dir=rules_dir, alertmanager_url=alertmanager_url, scrape_configs=scrape_configs
    )
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def command(port: int) -> list[str]:
        data = directory / "data"
        shutil.rmtree(data, ignore_errors=True)
        return [
            str(PROMETHEUS_BIN),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            # Without it the first notification after a start or reload can wait a minute.
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]

    server = _start("Prometheus", command, directory, PrometheusServer, rules_dir=rules_dir)
    try:
        yield server
    finally:
        server.stop()


def alertmanager_config(receiver_url: str | None = None) -> dict[str, Any]:
    """A one-route Alertmanager configuration; alerts go to a webhook at `receiver_url` if given."""
    receiver: dict[str, Any] = {"name": "test-default"}
    if receiver_url is not None:
        receiver["webhook_configs"] = [{"url": receiver_url, "send_resolved": True}]
    return {
        "route": {
            "receiver": "test-default",
            "group_by": ["alertname", "tenant"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [receiver],
    }


@dataclass
class AlertmanagerServer(ServerProcess):
    """A running Alertmanager and the configuration file it reads."""

    config_path: Path = field(default_factory=Path)

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (API v2)."""
        with _client() as client:
            response = client.get(f"{self.url}/api/v2/alerts")
        response.raise_for_status()
        return response.json()


@contextmanager
def running_alertmanager(
    directory: Path, config: Mapping[str, Any] | None = None
) -> Iterator[AlertmanagerServer]:
    """An Alertmanager with `config` (default: one silent receiver) and fresh storage."""
    require_binary(ALERTMANAGER_BIN)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(dict(config or alertmanager_config()), sort_keys=False))

    def command(port: int) -> list[str]:
        data = directory / "data"
        shutil.rmtree(data, ignore_errors=True)
        return [
            str(ALERTMANAGER_BIN),
            f"--config.file={config_path}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Empty: no gossip port, so parallel test runs do not find each other.
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    server = _start("Alertmanager", command, directory, AlertmanagerServer, config_path=config_path)
    try:
        yield server
    finally:
        server.stop()


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


class PrometheusQueryError(AssertionError):
    """Prometheus refused or failed a query; the message is Prometheus' own."""


def promql_query_data(url: str, expr: str, *, time: float | None = None) -> dict[str, Any]:
    """The `data` object of an instant query; PrometheusQueryError if Prometheus refuses it."""
    params = {"query": expr}
    if time is not None:
        params["time"] = f"{time:.3f}"
    with _client() as client:
        response = client.get(f"{url}/api/v1/query", params=params)
    payload = response.json()
    if response.status_code != 200 or payload.get("status") != "success":
        raise PrometheusQueryError(
            f"Prometheus refused {expr!r} ({response.status_code}): {payload.get('error')}"
        )
    return payload["data"]


def promql_query(url: str, expr: str, *, time: float | None = None) -> list[Sample]:
    """Evaluate `expr` as an instant vector; samples sorted by their labels."""
    data = promql_query_data(url, expr, time=time)
    if data["resultType"] != "vector":
        raise PrometheusQueryError(f"{expr!r} returned a {data['resultType']}, not a vector")
    samples = [Sample(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
    return sorted(samples, key=lambda s: sorted(s.labels.items()))


# --- exporter ----------------------------------------------------------------------------------


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(series: Iterable[tuple[str, Mapping[str, str], float]]) -> str:
    """Prometheus text format for (metric name, labels, value) triples."""
    lines = []
    for name, labels, value in series:
        rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{rendered}}} {float(value)!r}")
    return "\n".join(lines) + "\n"


class MetricsExporter:
    """A thread serving `/metrics` with whatever the test last set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""
        self._scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter._serve().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # a scrape a second would drown the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-exporter", daemon=True
        )

    @property
    def target(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    @property
    def scrapes(self) -> int:
        with self._lock:
            return self._scrapes

    def _serve(self) -> str:
        with self._lock:
            self._scrapes += 1
            return self._text

    def set_text(self, text: str) -> None:
        with self._lock:
            self._text = text

    def set_series(self, series: Iterable[tuple[str, Mapping[str, str], float]]) -> None:
        self.set_text(exposition(series))

    def scrape_config(self, job: str = EXPORTER_JOB) -> dict[str, Any]:
        """The scrape configuration for Prometheus; the exporter's labels win over the target's."""
        return {
            "job_name": job,
            "honor_labels": True,
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "static_configs": [{"targets": [self.target]}],
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_TIMEOUT)


@contextmanager
def running_exporter() -> Iterator[MetricsExporter]:
    exporter = MetricsExporter()
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop()


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def metrics_exporter() -> Iterator[MetricsExporter]:
    """An exporter with no series yet; `set_series` before waiting for a scrape."""
    with running_exporter() as exporter:
        yield exporter


@pytest.fixture
def alertmanager_server(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    """A fresh Alertmanager (new storage, so nothing is deduplicated from an earlier test)."""
    with running_alertmanager(tmp_path / "alertmanager") as server:
        yield server


@pytest.fixture
def prometheus_server(
    tmp_path: Path, metrics_exporter: MetricsExporter, alertmanager_server: AlertmanagerServer
) -> Iterator[PrometheusServer]:
    """Prometheus scraping `metrics_exporter`, loading its `rules_dir`, alerting Alertmanager."""
    with running_prometheus(
        tmp_path / "prometheus",
        alertmanager_url=alertmanager_server.url,
        scrape_configs=[metrics_exporter.scrape_config()],
    ) as server:
        yield server
