"""Shared test set-up: real PostgreSQL and Redis, demo tenants committed once per session.

Tenants acme and globex are created (by cloning the template schema) right after the test
database, and committed, so that other processes (a Celery worker, an ASGI server) and threads
(Channels consumers) see them. Each seeded tenant has a dashboard with primary key 1: the same
id in two schemas, which is what the isolation tests need.

Anything else a test needs it makes with tests/factories.py. Plain functions shared by the test
modules live in tests/helpers.py; the ones modules import from here are re-exported.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.backend_servers import alertmanager_server, metrics_exporter, prometheus_server  # noqa: F401,E501
from tests.helpers import (  # noqa: F401 (re-exported: test modules import these from here)
    BASE_DIR,
    IN_CI,
    PASSWORD,
    asgi_server_command,
    celery_worker_answers,
    celery_worker_command,
    client_on,
    database_url,
    free_port,
    host_of,
    is_listening,
    psycopg_params,
    started_process,
    stop_process,
    submit_token_form,
    wait_for,
)

# Hashing a password costs PBKDF2's million rounds: seconds per person on a busy machine, paid by
# the seed and by every password sign-in. Tests use a fast hasher instead; processes the tests
# start (worker, ASGI server) inherit the switch through the environment and read it in settings.
FAST_HASHER_SWITCH = "PORTAL_FAST_PASSWORD_HASHER"
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
os.environ.setdefault(FAST_HASHER_SWITCH, "true")


def _started_processes_use_fast_hasher() -> bool:
    """Whether the settings, loaded afresh as a started process loads them, pick the fast hasher.

    This process loaded its settings before this module set the switch, so they cannot tell.
    """
    spec = importlib.util.find_spec(os.environ["DJANGO_SETTINGS_MODULE"])
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return list(getattr(fresh, "PASSWORD_HASHERS", [])) == FAST_PASSWORD_HASHERS


def pytest_configure(config: pytest.Config) -> None:
    # Only when started processes agree: they must verify the hashes this process writes.
    if _started_processes_use_fast_hasher():
        from django.contrib.auth import hashers

        settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
        hashers.get_hashers.cache_clear()
        hashers.get_hashers_by_algorithm.cache_clear()


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL).ping()
    except Exception as exc:  # a missing service is an error, never a skip
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)


def pytest_sessionstart(session):
    _require_redis()


def _drop_queued_tasks() -> None:
    """Seeding provisions the demo tenants, and provisioning queues each one's first compliance
    assessment: dropped here, so a test worker never assesses a tenant behind a test's back."""
    from portal.celery import app

    with app.connection_for_write() as conn:
        for queue in settings.PORTAL_TASK_QUEUES.values():
            conn.default_channel.queue_purge(queue)


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
        _drop_queued_tasks()
    yield
    with django_db_blocker.unblock():
        teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture(autouse=True)
def _back_to_the_public_schema():
    """Each test starts where a request does: a test that left the connection in a tenant's
    schema must not make the next one write there."""
    yield
    connection.set_schema_to_public()


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


@pytest.fixture
def client_for(db) -> Callable[..., Client]:
    """`client_for("acme", "operator")`: a client on acme's host signed in as acme's operator.

    `email=` signs in someone else; `role=None` and no e-mail gives an anonymous client;
    `slug=None` targets the public site.
    """
    from django.contrib.auth import get_user_model

    def make(slug: str | None, role: str | None = None, *, email: str | None = None) -> Client:
        if email is None and role is not None:
            email = f"{role}@{slug}.example"
        user = None if email is None else get_user_model().objects.get(email=email)
        return client_on(slug, user)

    return make


@pytest.fixture
def member_client(db) -> Callable[..., Client]:
    """`member_client(acme, "operator")`: a client on the tenant's host, signed in as a new
    member of it with that role (made by the factories, not taken from the seed)."""
    from tests.factories import MembershipFactory

    def make(tenant, role: str) -> Client:
        return client_on(tenant.slug, MembershipFactory(tenant=tenant, role=role).user)

    return make


@pytest.fixture
def session_cookie(django_db_setup, django_db_blocker) -> Iterator[Callable[[str], str]]:
    """`session_cookie(email)`: the cookie of a committed session of that person, for servers
    and sockets that read sessions themselves; the sessions are deleted after the test."""
    from tests.websockets_client import cookie_of, create_session, delete_sessions

    stores = []

    def make(email: str) -> str:
        stores.append(create_session(email, django_db_blocker))
        return cookie_of(stores[-1])

    yield make
    delete_sessions(stores, django_db_blocker)


@pytest.fixture(scope="session")
def process_env(django_db_setup) -> dict[str, str]:
    """Environment for processes the tests start: they use the test database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["REDIS_URL"] = settings.REDIS_URL
    env["CELERY_TASK_DEFAULT_QUEUE"] = settings.CELERY_TASK_DEFAULT_QUEUE
    env["CACHE_KEY_PREFIX"] = settings.CACHES["default"]["KEY_PREFIX"]
    env["CHANNELS_PREFIX"] = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return env


@pytest.fixture(scope="session")
def celery_worker(process_env, tmp_path_factory) -> Iterator[None]:
    """A real Celery worker process on this run's default queue, stopped after the session.

    The sync and notify queues are left to the alerting tests' own worker, which runs with the
    backends and sinks those tests start (tests/alerting_fixtures.py).
    """
    hostname = f"tests-{os.getpid()}@localhost"
    command = celery_worker_command(
        [settings.PORTAL_TASK_QUEUES["default"]], hostname, include=["tests.celery_probe"]
    )
    with started_process(
        command,
        env=process_env,
        log=tmp_path_factory.mktemp("celery") / "worker.log",
        ready=lambda: celery_worker_answers(hostname),
        what="the Celery worker",
        timeout=60,
    ):
        yield


@pytest.fixture(scope="session")
def live_server_url(process_env, tmp_path_factory) -> Iterator[str]:
    """The ASGI app (HTTP + WebSocket) served by uvicorn on 127.0.0.1; base URL without host."""
    port = free_port()
    # As deployed: DEBUG off, so error pages are the product's own.
    with started_process(
        asgi_server_command(port),
        env=dict(process_env, PORTAL_PORT=str(port), DEBUG="false"),
        log=tmp_path_factory.mktemp("uvicorn") / "server.log",
        ready=lambda: is_listening(port),
        what="the ASGI server",
    ):
        yield f"127.0.0.1:{port}"
