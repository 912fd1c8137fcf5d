"""Real WebSocket clients for the live channels, and committed sessions for them.

The ASGI server under test is another process: it only sees sessions that are committed.
`open_socket` talks to that server over TCP; `InProcessSocket` drives the ASGI app in this
process, where a test can also see whether the app instance has ended.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django_tenants.utils import get_public_schema_name, schema_context
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

SAME_ORIGIN = object()


def create_session(email: str, django_db_blocker):
    """A committed, signed-in session of that person; returns the store (delete() it after)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    with django_db_blocker.unblock(), schema_context(get_public_schema_name()):
        person = get_user_model().objects.get(email=email)
        store[SESSION_KEY] = person._meta.pk.value_to_string(person)
        store[BACKEND_SESSION_KEY] = "tenants.accounts.backends.EmailBackend"
        store[HASH_SESSION_KEY] = person.get_session_auth_hash()
        store.create()
    return store


def delete_sessions(stores, django_db_blocker) -> None:
    with django_db_blocker.unblock(), schema_context(get_public_schema_name()):
        for store in stores:
            store.delete()


def cookie_of(store) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def _sending_host(host_header: str) -> type[ClientConnection]:
    """A client connection whose handshake sends `host_header` as the Host, byte for byte.

    The client library builds Host from the URI, lower-cased; the tests need other spellings.
    """

    class ExactHostConnection(ClientConnection):
        def handshake(self, *args, **kwargs) -> None:
            build_request = self.protocol.connect

            def connect():
                request = build_request()
                del request.headers["Host"]
                request.headers["Host"] = host_header
                return request

            self.protocol.connect = connect
            super().handshake(*args, **kwargs)

    return ExactHostConnection


@contextmanager
def open_socket(
    server: str,
    host: str,
    path: str = "/ws/presence/",
    cookie: str | None = None,
    origin=SAME_ORIGIN,
) -> Iterator[ClientConnection]:
    """A WebSocket to `path` on `server` ("127.0.0.1:port") with the Host `host:port`, spelled
    exactly as given. By default it comes from a page of that host; pass `origin=` another
    origin, or None for none."""
    address, port = server.rsplit(":", 1)
    if origin is SAME_ORIGIN:
        origin = f"http://{host}:{port}"
    sock = socket.create_connection((address, int(port)), timeout=10)
    try:
        with ws_connect(
            f"ws://{host.lower()}:{port}{path}",
            sock=sock,
            origin=origin,
            additional_headers={"Cookie": cookie} if cookie else None,
            open_timeout=10,
            close_timeout=5,
            create_connection=_sending_host(f"{host}:{port}"),
        ) as ws:
            yield ws
    finally:
        sock.close()


def open_presence(server: str, host: str, cookie: str | None = None, origin=SAME_ORIGIN):
    """A WebSocket to /ws/presence/ on `server` with the Host `host` (no port)."""
    return open_socket(server, host, "/ws/presence/", cookie, origin)


def close_code_within(ws: ClientConnection, seconds: float) -> int:
    """The code with which the server closes `ws`, reading (and dropping) messages until then;
    fails when the socket is still open after `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            ws.recv(timeout=left)
        except TimeoutError:
            break
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"closed without a close frame: {closed!r}"
            return closed.rcvd.code
    raise AssertionError(f"the socket was still open {seconds}s later")


def websocket_scope(host: str, path: str = "/ws/presence/", **headers: str | None) -> dict:
    """ASGI scope of a browser's WebSocket to `host` (same-origin unless `origin=` says else;
    `origin=None` sends none). Other keyword arguments are further headers (e.g. cookie=)."""
    headers.setdefault("origin", f"http://{host}")
    raw = [(b"host", host.encode())] + [
        (name.encode(), value.encode()) for name, value in headers.items() if value is not None
    ]
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": raw,
        "subprotocols": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class InProcessSocket:
    """One WebSocket handshake against an ASGI app running in this process's event loop."""

    def __init__(self, application, scope: dict) -> None:
        self.communicator = ApplicationCommunicator(application, scope)

    async def open(self) -> dict:
        """Send the connect; the app's answer (`websocket.accept` or `websocket.close`)."""
        await self.communicator.send_input({"type": "websocket.connect"})
        return await self.communicator.receive_output(timeout=10)

    async def receive(self, timeout: float = 10) -> dict:
        return await self.communicator.receive_output(timeout=timeout)

    async def send_text(self, text: str) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def ended_within(self, seconds: float) -> None:
        """Fail unless the app instance has finished, by itself, within `seconds`."""
        future = self.communicator.future
        try:
            await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            future.cancel()
            raise AssertionError(f"the app instance was still running {seconds}s later") from None
        future.result()  # an app that crashed fails here, with its own error

    async def hang_up(self, seconds: float = 1.0) -> None:
        """The client leaves; the app instance must then end within `seconds`."""
        if not self.communicator.future.done():
            await self.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.ended_within(seconds)
