"""The live channel of one dashboard: new points of its panels as they come.

A dashboard open in a thousand pages is a thousand sockets in a few server processes. Each
process receives the dashboard's points once, through one member of the dashboard's channel
group (a `DashboardFeed`), and hands the already encoded message to each of its sockets: the
channel layer's per-connection receive and dispatch would cost every socket two tasks, a lock
and a hop to the thread that runs sync code for every update. Each socket writes through a
small outbox of its own, so one slow client never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dashboards import live
from tenants.realtime.base import TenantConsumer
from tenants.roles import Perm

logger = logging.getLogger(__name__)

# Updates a socket may have waiting; past that the oldest goes (a stuck client, not the others).
OUTBOX_SIZE = 100
# The channel layer forgets group members after a day (channels-redis `group_expiry`); a feed
# that lives that long joins again.
REJOIN_AFTER_S = 3600.0
# After a failed receive (Redis restarting), the feed tries again this much later.
RETRY_AFTER_S = 1.0


class DashboardFeed:
    """One dashboard group in this process and event loop: one receive, every local socket."""

    def __init__(self, layer, group: str) -> None:
        self.layer = layer
        self.group = group
        self.sockets: set[DashboardConsumer] = set()
        self.channel = ""
        self.joined_at = 0.0
        self.closed = False
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run())

    async def _join(self) -> None:
        await self.layer.group_add(self.group, self.channel)
        self.joined_at = time.monotonic()

    async def refresh(self) -> None:
        if time.monotonic() - self.joined_at > REJOIN_AFTER_S:
            await self._join()

    async def _run(self) -> None:
        try:
            self.channel = await self.layer.new_channel()
            await self._join()
        except asyncio.CancelledError:
            self.ready.cancel()
            raise
        except Exception as exc:
            self.ready.set_exception(exc)  # raised in the sockets waiting to join
            return
        self.ready.set_result(None)
        while not self.closed:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("live feed of %s: receive failed", self.group)
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            if self.closed or event.get("type") != live.POINTS_EVENT:
                continue
            text = event["text"]
            for socket in tuple(self.sockets):
                socket.deliver(text)

    async def close(self) -> None:
        self.closed = True
        # Not waited for: a channels-redis receive cancelled just as its blocking read returns
        # can miss the cancellation; it then ends at its next message, finding the feed closed.
        self.task.cancel()
        if self.channel:
            try:
                await self.layer.group_discard(self.group, self.channel)
            except Exception:  # the membership lapses with the group's expiry
                logger.warning("live feed of %s: could not leave the group", self.group)


# Feeds by (event loop, group): a server process runs one loop; tests run several.
_feeds: dict[tuple[asyncio.AbstractEventLoop, str], DashboardFeed] = {}


async def join_feed(layer, group: str, socket: DashboardConsumer) -> DashboardFeed:
    """The feed of `group`, started if this process had none, with `socket` among its sockets;
    returns once the feed is a member of the group (so no update after this is missed)."""
    key = (asyncio.get_running_loop(), group)
    feed = _feeds.get(key)
    if feed is None:
        feed = _feeds[key] = DashboardFeed(layer, group)
    feed.sockets.add(socket)
    try:
        await asyncio.shield(feed.ready)
    except BaseException:
        await leave_feed(feed, socket)
        raise
    return feed


async def leave_feed(feed: DashboardFeed, socket: DashboardConsumer) -> None:
    feed.sockets.discard(socket)
    if feed.sockets:
        return
    key = (asyncio.get_running_loop(), feed.group)
    if _feeds.get(key) is feed:
        # Gone from the map before the first await: a socket arriving now starts a new feed.
        del _feeds[key]
        await feed.close()


class DashboardConsumer(TenantConsumer):
    """Pushes the new points of one dashboard's panels to a page watching it.

    While it is open the socket counts as a watcher of the dashboard: Prometheus panels are
    polled only for dashboards someone watches (`dashboards.prometheus_poll`).
    """

    permission = Perm.VIEW_DASHBOARDS

    feed: DashboardFeed | None = None
    _writer: asyncio.Task | None = None

    @property
    def dashboard_id(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["dashboard_id"])

    @property
    def points_group(self) -> str:
        # Named inside the tenant: another tenant's dashboard id reaches nothing.
        return live.dashboard_group(self.tenant.schema_name, self.dashboard_id)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ends (refused, closed, crashed), the feed lets it go.
            await self._stop_points()

    async def websocket_connect(self, message: dict) -> None:
        # Joined before the socket is accepted: a page that shows "live" misses no update.
        self._outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX_SIZE)
        self._accepted = asyncio.Event()
        self._writer = asyncio.create_task(self._write())
        self.feed = await join_feed(self.channel_layer, self.points_group, self)
        await super().websocket_connect(message)

    async def on_connect(self) -> None:
        self._accepted.set()
        await live.watch(self.tenant.schema_name, self.dashboard_id, self.channel_name)

    async def on_disconnect(self) -> None:
        await self._stop_points()
        await live.unwatch(self.tenant.schema_name, self.dashboard_id, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The page pings every 20 s: a chance to look at access again if a revocation was lost,
        # and to keep this socket counted as a watcher.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.recheck_access()
            await live.watch(self.tenant.schema_name, self.dashboard_id, self.channel_name)
            if self.feed is not None:
                await self.feed.refresh()
            await self.send_json({"type": "pong"})

    def deliver(self, text: str) -> None:
        """Queue one points message (from the feed); a full outbox drops its oldest."""
        if self._writer is None or self._writer.done():
            return
        if self._outbox.full():
            self._outbox.get_nowait()
        self._outbox.put_nowait(text)

    async def _write(self) -> None:
        # Points that came between joining the feed and the handshake wait for it.
        await self._accepted.wait()
        while True:
            text = await self._outbox.get()
            try:
                await self.send(text_data=text)
            except Exception:  # the socket is closing: its disconnect ends this consumer
                logger.debug("live points not sent: the socket is closing", exc_info=True)
                return

    async def _stop_points(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        feed, self.feed = self.feed, None
        if feed is not None:
            await leave_feed(feed, self)
