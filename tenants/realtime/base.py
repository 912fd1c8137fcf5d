"""The consumer every live view stands on: one tenant, one permission, revoked within a second.

A `TenantConsumer` serves the tenant of its host (`scope["tenant"]`, set by
`tenants.realtime.middleware`) to a user who holds its `permission` there. It joins the tenant's
group and the member's own group (names from `portal.scoping`), so that
`tenants.realtime.revocation` can reach every connection of a tenant or of one member when access
goes: the consumer then looks again and closes with 4403 if the permission is gone.

Subclasses set `permission`, name their topic groups in `groups_for()` and fill the hooks
`on_connect()`, `on_disconnect()` and `on_access_changed()`. ORM work goes through `in_tenant()`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import tenant_context
from redis.exceptions import RedisError

from portal.scoping import member_group, tenant_wide_group
from tenants.access import access_of
from tenants.accounts import two_factor
from tenants.models import Tenant
from tenants.realtime.refusal import CLOSE_FORBIDDEN, refuse_handshake
from tenants.roles import NO_ACCESS, Access, Perm

logger = logging.getLogger(__name__)

# "Try again later": the server cannot serve the socket now; the page's retry is the cure.
CLOSE_TRY_AGAIN = 1013

T = TypeVar("T")

# The event revocation sends to a tenant's or a member's group.
ACCESS_REVOKED = "access.revoked"


def _access_now(tenant: Tenant, user, session=None) -> Access:
    """What `user` may do in `tenant` right now: nothing in an inactive tenant, nor, where the
    tenant requires a second factor, from a session that was not verified with one."""
    with tenant_context(tenant):
        requires = (
            Tenant.objects.filter(pk=tenant.pk, is_active=True)
            .values_list("require_two_factor", flat=True)
            .first()
        )
        if requires is None:
            return NO_ACCESS
        if requires and not two_factor.session_verified(user, session):
            return NO_ACCESS
        return access_of(user, tenant)


def _run_in_tenant(tenant: Tenant, func: Callable[..., T], args: tuple, kwargs: dict) -> T:
    with tenant_context(tenant):
        return func(*args, **kwargs)


def _replaying(first: dict, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
    """`receive` that hands out `first` again before the messages still to come."""
    pending = [first]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


class TenantConsumer(AsyncJsonWebsocketConsumer):
    """A live connection to the host's tenant, open only while its user holds `permission`."""

    permission: ClassVar[Perm]

    tenant: Tenant
    access: Access = NO_ACCESS
    _connected = False
    _left = False

    async def __call__(
        self, scope: dict, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        # Access is checked before the consumer machinery starts: a refused socket never
        # touches the channel layer, and its app instance ends as soon as it is answered.
        opening = await receive()
        if opening["type"] != "websocket.connect":
            return
        self.tenant = scope["tenant"]
        self.user = scope.get("user")
        self.access = await database_sync_to_async(_access_now)(
            self.tenant, self.user, scope.get("session")
        )
        if not self.access.can(self.permission):
            await refuse_handshake(send)
            return
        try:
            await super().__call__(scope, _replaying(opening, receive), send)
        except RedisError as exc:
            # The channel layer (Redis) went away or is restarting: end this socket with "try
            # again later" (or refuse its handshake); the page reconnects with backoff.
            logger.warning(
                "%s ended: the channel layer is unreachable (%s)", type(self).__name__, exc
            )
            with contextlib.suppress(RuntimeError, OSError):  # the client may be gone already
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})

    # --- What subclasses fill in --------------------------------------------------------------

    def groups_for(self) -> list[str]:
        """Topic groups (from `portal.scoping.tenant_group`) this connection listens to."""
        return []

    async def on_connect(self) -> None:
        """Runs once the socket is accepted and every group joined."""

    async def on_disconnect(self) -> None:
        """Runs once when an accepted connection ends, however it ends."""

    async def on_access_changed(self) -> None:
        """Runs when a re-check finds `self.access` changed but the permission still held."""

    async def in_tenant(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `func` (ORM work) in a worker thread, inside the tenant's schema."""
        return await database_sync_to_async(_run_in_tenant)(self.tenant, func, args, kwargs)

    # --- Connection life ----------------------------------------------------------------------

    async def websocket_connect(self, message: dict) -> None:
        schema = self.tenant.schema_name
        self.groups = [
            tenant_wide_group(schema),
            member_group(schema, self.user.pk),
            *self.groups_for(),
        ]
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        # A revocation sent between the first check and joining the groups reached no one.
        if not await self._still_allowed():
            await self._end()
        await self.accept()
        self._connected = True
        await self.on_connect()

    async def receive(self, text_data: str | None = None, bytes_data=None, **kwargs) -> None:
        # A malformed message is the client's mistake: say so, and keep the connection.
        try:
            content = await self.decode_json(text_data) if text_data is not None else None
        except ValueError:
            content = None
        if content is None:
            await self.send_json({"type": "error", "error": "Send JSON text messages."})
            return
        await self.receive_json(content, **kwargs)

    async def websocket_disconnect(self, message: dict) -> None:
        await self._leave()
        raise StopConsumer()

    async def access_revoked(self, event: dict) -> None:
        """Handler of `ACCESS_REVOKED`: trust the database, not the event."""
        await self.recheck_access()

    async def recheck_access(self) -> None:
        """Close with 4403 (ending the consumer) unless the user still holds `permission`."""
        previous = self.access
        if not await self._still_allowed():
            await self._end()
        if self.access != previous:
            await self.on_access_changed()

    async def _still_allowed(self) -> bool:
        self.access = await database_sync_to_async(_access_now)(
            self.tenant, self.user, self.scope.get("session")
        )
        return self.access.can(self.permission)

    async def _end(self) -> None:
        """Close with 4403 and end the consumer now.

        Nothing more reaches the socket, and the instance does not wait for the client's side of
        the close (nor keep the server waiting at shutdown).
        """
        try:
            await self.close(code=CLOSE_FORBIDDEN)
        finally:
            await self._leave()
        raise StopConsumer()

    async def _leave(self) -> None:
        if self._left:
            return
        self._left = True
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self._connected:
            await self.on_disconnect()
