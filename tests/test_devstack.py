"""The embedded services of `portal.devstack`: Valkey and PostgreSQL start and stop cleanly.

The servers run under a private temporary directory, so a demo or another test run using `.run/`
is never disturbed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import environ
import psycopg
import pytest
import redis
from django.conf import settings

from portal import devstack


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
