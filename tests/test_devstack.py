"""Running the portal on one machine: embedded services, the checkout's key, a readable terminal.

The embedded Valkey and PostgreSQL start and stop cleanly under a private temporary directory, so
a demo or another test run using `.run/` is never disturbed. A checkout generates its own secret
key; every level but development refuses to start without a real one. A refused page logs one
line, and the worker heartbeat logs at debug level.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import environ
import psycopg
import pytest
import redis
from django.conf import settings

from portal import devstack
from portal.secret_key import checkout_secret_key
from portal.secret_key import weakness as secret_key_weakness
from tests.factories import MembershipFactory
from tests.helpers import client_on, run_python


@pytest.fixture
def run_dir(monkeypatch) -> Iterator[Path]:
    """A short private RUN_DIR (Unix socket paths must stay under 107 characters)."""
    path = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    path.chmod(0o755)  # as root, PostgreSQL runs as another system user that must traverse it
    monkeypatch.setattr(devstack, "RUN_DIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _connect_params(url: str) -> dict[str, str]:
    cfg = environ.Env.db_url_config(url)
    params = {"dbname": cfg["NAME"], "user": cfg["USER"] or "postgres"}
    for key, param in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if cfg.get(key):
            params[param] = str(cfg[key])
    return params


def _database_exists(url: str, name: str) -> bool:
    params = dict(_connect_params(url), dbname="postgres")
    with psycopg.connect(**params, connect_timeout=5) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


def test_embedded_redis_answers_and_is_gone_after_exit(run_dir):
    with devstack.embedded_redis() as url:
        assert url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        assert client.ping() is True
        client.set("devstack-probe", "1")
        assert client.get("devstack-probe") == b"1"
        client.close()
        assert (run_dir / "valkey").is_dir()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()


def test_embedded_postgres_serves_on_a_socket_and_stops_after_exit(run_dir):
    with devstack.embedded_postgres() as base:
        url = f"{base}/postgres"
        cfg = environ.Env.db_url_config(url)
        socket_dir = cfg["HOST"]
        assert socket_dir.startswith(str(run_dir))
        assert Path(socket_dir, ".s.PGSQL.5432").is_socket()
        assert cfg["NAME"] == "postgres"
        with psycopg.connect(**_connect_params(url), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        # ensure_database creates a missing database, and a second call changes nothing.
        name = "devstack_probe"
        probe_url = f"{base}/{name}"
        assert not _database_exists(probe_url, name)
        devstack.ensure_database(probe_url)
        assert _database_exists(probe_url, name)
        devstack.ensure_database(probe_url)
        with psycopg.connect(**_connect_params(probe_url), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    assert not Path(socket_dir, ".s.PGSQL.5432").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**_connect_params(url), connect_timeout=5)


def test_ensure_database_creates_a_missing_database_on_the_configured_server():
    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = str(db.get("HOST") or "127.0.0.1")
    name = f"devstack_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if host.startswith("/"):
        url = f"postgres://{user}{password}@/{host}/{name}"
    else:
        url = f"postgres://{user}{password}@{host}:{db.get('PORT') or 5432}/{name}"
    assert not _database_exists(url, name)
    try:
        devstack.ensure_database(url)
        assert _database_exists(url, name)
        devstack.ensure_database(url)  # idempotent
        assert _database_exists(url, name)
    finally:
        params = dict(_connect_params(url), dbname="postgres")
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    assert not _database_exists(url, name)


# ---- a fresh checkout: the secret key -----------------------------------------------------------


def test_a_checkout_key_is_generated_once_private_and_then_reused(tmp_path):
    path = tmp_path / ".run" / "secret_key"  # .run/ does not exist yet, as on a fresh clone
    first = checkout_secret_key(path)
    assert secret_key_weakness(first) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert checkout_secret_key(path) == first
    assert path.read_text().strip() == first


def test_processes_starting_together_share_one_checkout_key(tmp_path):
    path = tmp_path / ".run" / "secret_key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: checkout_secret_key(path), range(16)))
    assert len(keys) == 1
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary files left


def test_a_truncated_checkout_key_is_refused_not_used(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 50"):
        checkout_secret_key(path)


_PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def _start_env(process_env: dict[str, str], **overrides: str | None) -> dict[str, str]:
    env = dict(process_env, DJANGO_SETTINGS_MODULE="portal.settings")
    for name in ("SECRET_KEY", "MONITORING_LEVEL", "DEBUG", "ALLOWED_HOSTS", "EMAIL_URL"):
        env.pop(name, None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_development_without_a_key_uses_the_checkouts_own(process_env):
    env = _start_env(process_env)
    first, second = run_python(["-c", _PRINT_KEY], env), run_python(["-c", _PRINT_KEY], env)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert key == second.stdout.strip()
    assert key == (devstack.BASE_DIR / ".run" / "secret_key").read_text().strip()
    assert secret_key_weakness(key) is None
    assert ".run/" in (devstack.BASE_DIR / ".gitignore").read_text().split()
    assert key not in (devstack.BASE_DIR / "portal" / "settings.py").read_text()


STRONG_KEY = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 2
PUBLISHED_KEY = "insecure-development-key-never-use-in-production"


@pytest.mark.parametrize("level", ["staging", "production"])
@pytest.mark.parametrize(
    "key, reason",
    [
        (None, "SECRET_KEY is not set"),
        ("", "SECRET_KEY is not set"),
        ("too-short-for-a-real-key", "shorter than 50"),
        (PUBLISHED_KEY, "published with source code"),
        ("django-insecure-" + "x1y2z3" * 10, "published with source code"),
    ],
)
def test_every_level_but_development_refuses_to_start_without_a_real_key(
    process_env, level, key, reason
):
    env = _start_env(
        process_env, MONITORING_LEVEL=level, SECRET_KEY=key, ALLOWED_HOSTS="portal.example.com"
    )
    result = run_python(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "portal.E001" in result.stderr and reason in result.stderr


@pytest.mark.parametrize(
    "entry_point",
    [
        ["-c", "import portal.asgi"],
        ["-m", "celery", "-A", "portal", "worker", "--pool", "solo", "-Q", "refused-start"],
    ],
    ids=["asgi", "worker"],
)
def test_the_web_server_and_the_worker_refuse_staging_without_a_key(process_env, entry_point):
    result = run_python(entry_point, _start_env(process_env, MONITORING_LEVEL="staging"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "portal.E001" in result.stderr


def test_staging_with_a_real_key_starts(process_env):
    env = _start_env(process_env, MONITORING_LEVEL="staging", SECRET_KEY=STRONG_KEY)
    result = run_python(["manage.py", "check"], env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_production_without_a_database_or_redis_url_refuses_to_start(process_env, missing):
    env = _start_env(
        process_env,
        MONITORING_LEVEL="production",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="portal.example.com",
        EMAIL_URL="smtp://mail.example.com:25",
        **{missing: None},
    )
    result = run_python(["manage.py", "check"], env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr
    # The same configuration with both URLs starts: only the missing one stops it.
    complete = dict(env, **{missing: process_env[missing]})
    assert run_python(["manage.py", "check"], complete).returncode == 0


# ---- a readable terminal ----------------------------------------------------------------------


def test_a_refused_page_logs_one_line_without_a_traceback(acme, caplog):
    stranger = MembershipFactory(tenant=acme, role="admin").user
    with caplog.at_level(logging.INFO):
        response = client_on("globex", stranger).get("/members/")
    assert response.status_code == 403
    lines = [r for r in caplog.records if r.name.startswith("django")]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].exc_info is None
    assert "\n" not in logging.Formatter().format(lines[0])
    assert logging.getLogger("django").handlers == []  # no second copy on Django's console


def test_a_server_error_keeps_its_traceback():
    logger = logging.getLogger("django.request")
    try:
        raise ZeroDivisionError("bug")
    except ZeroDivisionError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "Internal Server Error: /", (), sys.exc_info()
        )
    record.status_code = 500
    assert logger.filter(record)
    assert record.exc_info is not None


def _task_record(logger_name: str, name: str, message: str) -> logging.LogRecord:
    logger = logging.getLogger(logger_name)
    args = ({"id": "abc", "name": name, "runtime": 0.01, "return_value": "x"},)
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    "logger_name, message",
    [
        ("celery.app.trace", "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"),
        ("celery.worker.strategy", "Task %(name)s[%(id)s] received"),
    ],
)
def test_the_heartbeat_logs_at_debug_level_other_tasks_at_info(logger_name, message):
    logger = logging.getLogger(logger_name)
    assert not logger.isEnabledFor(logging.DEBUG)  # the demo logs at INFO

    heartbeat = _task_record(logger_name, "tenants.tasks.record_worker_heartbeat", message)
    assert not logger.filter(heartbeat)
    assert heartbeat.levelno == logging.DEBUG

    other = _task_record(logger_name, "tenants.tasks.send_invitation_email", message)
    assert logger.filter(other)
    assert other.levelno == logging.INFO


def test_beat_sending_the_heartbeat_is_a_debug_line_too():
    logger = logging.getLogger("celery.beat")
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "Scheduler: Sending due task %s (%s)",
        ("worker-heartbeat", "tenants.tasks.record_worker_heartbeat"),
        None,
    )
    assert not logger.filter(record)
