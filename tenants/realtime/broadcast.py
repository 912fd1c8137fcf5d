"""Sending events to channel groups from synchronous code (a request after its commit, a task).

A group send that cannot reach Redis must not undo or fail the work it reports: that work is
committed. It is logged; the sockets it would have reached lost their connection too, and they
reconnect and reload what they show.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def send_to_groups(events: Iterable[tuple[str, dict]], *, what: str) -> bool:
    """Send each (group, event) in order; False (and a warning naming `what`) if the channel
    layer could not be reached."""
    events = list(events)
    layer = get_channel_layer()
    if layer is None or not events:
        return True

    async def send_all() -> None:
        for group, event in events:
            await layer.group_send(group, event)

    try:
        async_to_sync(send_all)()
    except (RedisError, OSError) as exc:
        logger.warning("%s not sent, the channel layer is unreachable (%s)", what, exc)
        return False
    return True
