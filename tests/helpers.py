"""Plain functions the test modules share: waiting, clients, tokens, committed writes, sockets,
processes.

Fixtures stay in conftest.py; what is here can be imported anywhere, including by modules that
conftest.py itself imports.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection
from django.test import Client

BASE_DIR = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))
# The password of every seeded and factory-made account.
PASSWORD = "demo"
EMAIL_BACKEND = "tenants.accounts.backends.EmailBackend"

T = TypeVar("T")


# --- waiting -------------------------------------------------------------------------------------


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


# --- clients -------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """`prefix` with a random suffix, so names never clash across tests or runs."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def host_of(slug: str | None) -> str:
    """The host of a tenant, or of the public site for `None`."""
    return f"{slug}.{settings.PORTAL_BASE_DOMAIN}" if slug else settings.PORTAL_BASE_DOMAIN


def client_on(slug: str | None, user: Any | None = None, **extra: Any) -> Client:
    """A client on `slug`'s host (public site for `None`), signed in as `user` if given."""
    client = Client(HTTP_HOST=host_of(slug), **extra)
    if user is not None:
        client.force_login(user, backend=EMAIL_BACKEND)
    return client


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def bearer(secret: str) -> dict[str, str]:
    """Request headers that authenticate with an API token."""
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def send_json(client: Client, method: str, path: str, data: Any = None, **extra: Any):
    """`client.<method>(path)` with `data` as a JSON body."""
    body = json.dumps({} if data is None else data)
    return getattr(client, method)(path, body, content_type="application/json", **extra)


_NONCE_RE = re.compile(r'name="form_nonce" value="([^"]+)"')


def submit_token_form(client: Client, data: dict):
    """POST the token form as a browser does: with the one-time nonce of a freshly loaded page."""
    page = client.get("/tokens/").content.decode()
    nonce = _NONCE_RE.search(page)
    assert nonce, "the token form carries no form_nonce"
    return client.post("/tokens/", {**data, "form_nonce": nonce.group(1)})


# --- committed writes ----------------------------------------------------------------------------


@contextmanager
def committed_writes(django_db_blocker) -> Iterator[None]:
    """Database access outside any test transaction: each write is committed at once.

    For data another process (Celery worker, ASGI server) must see; the caller undoes it.
    """
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connection.set_schema_to_public()


def run_committed(work: Callable[[], T]) -> T:
    """Run ORM `work` in its own thread and connection (autocommit), and return its result.

    Works inside a test transaction too, which a write through this thread's connection would
    join and so hide from other processes.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="committed-writes")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- WebSocket messages ------------------------------------------------------------------------


def receive_json(ws: Any, timeout: float) -> dict | None:
    """The next message of a WebSocket client connection, or None if none comes in `timeout` s."""
    try:
        return json.loads(ws.recv(timeout=timeout))
    except TimeoutError:
        return None


def messages_until(
    ws: Any, wanted: Callable[[dict], bool], what: str, timeout: float = 10.0
) -> list[dict]:
    """Every message up to and including the first `wanted` one; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    received = []
    while (left := deadline - time.monotonic()) > 0:
        message = receive_json(ws, left)
        if message is not None:
            received.append(message)
            if wanted(message):
                return received
    raise AssertionError(f"no {what} within {timeout}s; received {received}")


def wait_for_message(
    ws: Any, wanted: Callable[[dict], bool], what: str, timeout: float = 10.0
) -> dict:
    """Read messages until one is `wanted` and return it; fail after `timeout` seconds."""
    return messages_until(ws, wanted, what, timeout)[-1]


def messages_within(ws: Any, seconds: float) -> list[dict]:
    """Every message the socket receives during the next `seconds` seconds."""
    deadline = time.monotonic() + seconds
    received = []
    while (left := deadline - time.monotonic()) > 0:
        message = receive_json(ws, left)
        if message is not None:
            received.append(message)
    return received


def viewer_ids(messages: Iterable[dict]) -> set[str]:
    """Ids of the people listed by the presence updates among `messages`."""
    return {v["id"] for m in messages if m.get("type") == "presence" for v in m["viewers"]}


def stored_viewer_ids(schema_name: str) -> set[str]:
    """Ids of the people a tenant's presence hash in Redis lists."""
    import redis

    from portal.scoping import tenant_key

    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        entries = client.hgetall(tenant_key(schema_name, "presence")).values()
        return {json.loads(entry)["id"] for entry in entries}
    finally:
        client.close()


# --- the test database, for other processes ------------------------------------------------------


def psycopg_params() -> dict[str, str]:
    """psycopg keyword arguments for the test database (host may be a socket directory)."""
    cfg = connection.settings_dict
    params = {"dbname": cfg["NAME"], "user": cfg.get("USER") or "postgres"}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if cfg.get(key):
            params[name] = str(cfg[key])
    return params


def database_url() -> str:
    """DATABASE_URL of the test database, for the settings of processes the tests start."""
    cfg = connection.settings_dict
    host = cfg.get("HOST") or "127.0.0.1"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    if host.startswith("/"):
        return f"postgres://{user}{password}@/{host}/{cfg['NAME']}"
    port = cfg.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{cfg['NAME']}"


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate `process`, killing it if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_python(
    args: Iterable[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run this Python with `args` in the checkout, capturing its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def asgi_server_command(port: int) -> list[str]:
    """uvicorn serving the ASGI app (HTTP + WebSocket) on 127.0.0.1:`port`."""
    return [
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


def celery_worker_command(
    queues: Iterable[str],
    hostname: str,
    *,
    pool: str = "solo",
    concurrency: int | None = None,
    include: Iterable[str] = (),
) -> list[str]:
    """A Celery worker of the portal's app consuming `queues`, answering pings as `hostname`."""
    command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", pool]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    command += ["--loglevel", "INFO", "-Q", ",".join(queues), "--hostname", hostname]
    for module in include:
        command += ["--include", module]
    # Mingle and gossip only slow the start down: a test run has one worker per queue.
    return [*command, "--without-mingle", "--without-gossip"]


def celery_worker_answers(hostname: str) -> bool:
    """Whether the worker called `hostname` answers a ping within half a second."""
    from portal.celery import app

    return bool(app.control.ping(destination=[hostname], timeout=0.5))


@contextmanager
def started_process(
    command: list[str],
    *,
    env: dict[str, str],
    log: Path,
    ready: Callable[[], object],
    what: str,
    timeout: float = 30,
) -> Iterator[subprocess.Popen]:
    """Start `command` in the checkout with its output in `log`; yield it once `ready()` is
    truthy; stop it on leaving. Fails with the log when the process exits before it is ready."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def up() -> object:
            if process.poll() is not None:
                raise AssertionError(f"{what} exited:\n{log.read_text()}")
            return ready()

        wait_for(up, timeout=timeout, message=f"{what} to be ready")
        yield process
    finally:
        stop_process(process)


@dataclass
class Mailbox:
    """What a local SMTP server (aiosmtpd) accepted: use it as the server's handler."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.messages.append(
                (list(envelope.rcpt_tos), message_from_bytes(envelope.original_content))
            )
        return "250 Message accepted"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for rcpt, m in self.messages if address in rcpt]


@contextmanager
def running_smtp() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP server (aiosmtpd) on 127.0.0.1; yields what it accepted and its port."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()
