"""Refusing a WebSocket handshake without keeping anything alive.

channels' `WebsocketDenier` is a whole consumer: it opens a channel on the channel layer and
waits there for the client's disconnect, so every refused socket held an app instance (and a
server's shutdown) for seconds. A refusal here answers the handshake and returns.
"""

from __future__ import annotations

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

# Sent as the close code; before the handshake completes the server answers HTTP 403.
CLOSE_FORBIDDEN = 4403


async def refuse_handshake(send: ASGISendCallable) -> None:
    """Answer a received `websocket.connect` with a refusal."""
    await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})


async def refuse(scope: dict, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """ASGI app that refuses the WebSocket and ends at once (no consumer, no channel layer)."""
    message = await receive()
    # A client that left before the handshake gets nothing: there is no one to answer.
    if message["type"] == "websocket.connect":
        await refuse_handshake(send)
