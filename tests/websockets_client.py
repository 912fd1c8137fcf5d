"""A real WebSocket client for the presence channel, and committed sessions for it.

The ASGI server under test is another process: it only sees sessions that are committed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django_tenants.utils import get_public_schema_name, schema_context
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


@contextmanager
def open_presence(
    server: str, host: str, cookie: str | None = None, origin=SAME_ORIGIN
) -> Iterator[ClientConnection]:
    """A WebSocket to /ws/presence/ on `server` ("127.0.0.1:port") with the Host `host`
    (no port). By default it comes from a page of that host; pass `origin=` another origin,
    or None for none."""
    address, port = server.rsplit(":", 1)
    if origin is SAME_ORIGIN:
        origin = f"http://{host}:{port}"
    sock = socket.create_connection((address, int(port)), timeout=10)
    try:
        with ws_connect(
            f"ws://{host}:{port}/ws/presence/",
            sock=sock,
            origin=origin,
            additional_headers={"Cookie": cookie} if cookie else None,
            open_timeout=10,
            close_timeout=5,
        ) as ws:
            yield ws
    finally:
        sock.close()
