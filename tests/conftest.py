"""Shared test set-up: real PostgreSQL and Redis, demo tenants committed once per session.

Tenants acme and globex are created (by cloning the template schema) right after the test
database, and committed, so that other processes (a Celery worker, an ASGI server) and threads
(Channels consumers) see them. Each seeded tenant has a dashboard with primary key 1: the same
id in two schemas, which is what the isolation tests need.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.backend_servers import alertmanager_server, metrics_exporter, prometheus_server  # noqa: F401,E501

BASE_DIR = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))
PASSWORD = "demo"


def wait_for(
    condition: Callable[[], object],
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


_NONCE_RE = re.compile(r'name="form_nonce" value="([^"]+)"')


def submit_token_form(client: Client, data: dict):
    """POST the token form as a browser does: with the one-time nonce of a freshly loaded page."""
    page = client.get("/tokens/").content.decode()
    nonce = _NONCE_RE.search(page)
    assert nonce, "the token form carries no form_nonce"
    return client.post("/tokens/", {**data, "form_nonce": nonce.group(1)})


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL).ping()
    except Exception as exc:  # a missing service is an error, never a skip
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)


def pytest_sessionstart(session):
    _require_redis()


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """Always create the test database, seed it and commit the seed.

    pytest-django's own fixture creates it only when a selected test asks for `db`; a run of
    only worker or live-server tests would otherwise seed and use the real database.
    """
    from django.test.utils import setup_databases, teardown_databases

    from portal.demo import seed_demo
    from tenants.provisioning import ensure_public_tenant, ensure_template_schema

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=verbosity, interactive=False, aliases={"default"})
        ensure_public_tenant()
        ensure_template_schema()
        seed_demo()
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture
def acme(db):
    from tenants.models import Tenant

    return Tenant.objects.get(schema_name="acme")


@pytest.fixture
def globex(db):
    from tenants.models import Tenant

    return Tenant.objects.get(schema_name="globex")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run queued Celery tasks in-process, so e.g. an invitation e-mail lands in `mailoutbox`."""
    from portal.celery import app

    previous = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def host_of(slug: str | None) -> str:
    return f"{slug}.{settings.PORTAL_BASE_DOMAIN}" if slug else settings.PORTAL_BASE_DOMAIN


@pytest.fixture
def client_for(db) -> Callable[..., Client]:
    """`client_for("acme", "operator")`: a client on acme's host signed in as acme's operator.

    `email=` signs in someone else; `role=None` and no e-mail gives an anonymous client;
    `slug=None` targets the public site.
    """
    from django.contrib.auth import get_user_model

    def make(slug: str | None, role: str | None = None, *, email: str | None = None) -> Client:
        client = Client(HTTP_HOST=host_of(slug))
        if email is None and role is not None:
            email = f"{role}@{slug}.example"
        if email is not None:
            user = get_user_model().objects.get(email=email)
            client.force_login(user, backend="tenants.accounts.backends.EmailBackend")
        return client

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psycopg_params() -> dict[str, str]:
    """psycopg keyword arguments for the test database (host may be a socket directory)."""
    cfg = connection.settings_dict
    params = {"dbname": cfg["NAME"], "user": cfg.get("USER") or "postgres"}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if cfg.get(key):
            params[name] = str(cfg[key])
    return params


def _test_database_url() -> str:
    cfg = connection.settings_dict
    host = cfg.get("HOST") or "127.0.0.1"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    if host.startswith("/"):
        return f"postgres://{user}{password}@/{host}/{cfg['NAME']}"
    port = cfg.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{cfg['NAME']}"


@pytest.fixture(scope="session")
def process_env(django_db_setup) -> dict[str, str]:
    """Environment for processes the tests start: they use the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = _test_database_url()
    env["REDIS_URL"] = settings.REDIS_URL
    env["CELERY_TASK_DEFAULT_QUEUE"] = settings.CELERY_TASK_DEFAULT_QUEUE
    env["CACHE_KEY_PREFIX"] = settings.CACHES["default"]["KEY_PREFIX"]
    env["CHANNELS_PREFIX"] = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def celery_worker(process_env, tmp_path_factory) -> Iterator[None]:
    """A real Celery worker process, consuming this run's queue, stopped after the session."""
    from portal.celery import app

    log = tmp_path_factory.mktemp("celery") / "worker.log"
    hostname = f"tests-{os.getpid()}@localhost"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "-Q",
        ",".join(settings.PORTAL_TASK_QUEUES.values()),
        "--include",
        "tests.celery_probe",
        "--hostname",
        hostname,
        "--without-mingle",
        "--without-gossip",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=BASE_DIR, env=process_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"Celery worker exited:\n{log.read_text()}")
            return app.control.ping(destination=[hostname], timeout=0.5)

        wait_for(ready, timeout=60, message="the Celery worker to answer a ping")
        yield
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def live_server_url(process_env, tmp_path_factory) -> Iterator[str]:
    """The ASGI app (HTTP + WebSocket) served by uvicorn on 127.0.0.1; base URL without host."""
    port = _free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    # As deployed: DEBUG off, so error pages are the product's own.
    env = dict(process_env, PORTAL_PORT=str(port), DEBUG="false")
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "portal.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--log-level",
        "warning",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def up():
            if proc.poll() is not None:
                raise AssertionError(f"ASGI server exited:\n{log.read_text()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, timeout=30, message="the ASGI server to listen")
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
