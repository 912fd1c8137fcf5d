"""WebSocket consumers of the tenants app: the per-tenant presence channel."""

from __future__ import annotations

from portal.scoping import tenant_group
from tenants.realtime import presence
from tenants.realtime.base import TenantConsumer
from tenants.realtime.refusal import CLOSE_FORBIDDEN
from tenants.roles import Perm

__all__ = ["CLOSE_FORBIDDEN", "PresenceConsumer"]


class PresenceConsumer(TenantConsumer):
    """Tells every member looking at a tenant who else is looking at it."""

    permission = Perm.VIEW_TENANT

    def groups_for(self) -> list[str]:
        return [tenant_group(self.tenant.schema_name, "presence")]

    @property
    def _viewer(self) -> dict:
        user = self.user
        return {
            "id": str(user.pk),
            "name": user.get_full_name() or user.email or user.get_username(),
            "role": self.access.role.value if self.access.role else "",
        }

    async def on_connect(self) -> None:
        await presence.join(self.tenant.schema_name, self.channel_name, self._viewer)
        await self._broadcast()

    async def on_access_changed(self) -> None:
        # Still a member, with another role: everyone sees the new one.
        await self.on_connect()

    async def on_disconnect(self) -> None:
        await presence.leave(self.tenant.schema_name, self.channel_name)
        await self._broadcast()

    async def receive_json(self, content, **kwargs) -> None:
        # The page pings every 20 s: that keeps this connection's entry fresh, and looks at access
        # again in case a revocation never arrived (e.g. a change made outside the services).
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.recheck_access()
            await presence.join(self.tenant.schema_name, self.channel_name, self._viewer)
            await self.send_json({"type": "pong"})

    async def _broadcast(self) -> None:
        viewers = await presence.viewers(self.tenant.schema_name)
        await self.channel_layer.group_send(
            self.groups_for()[0], {"type": "presence.update", "viewers": viewers}
        )

    async def presence_update(self, event: dict) -> None:
        await self.send_json({"type": "presence", "viewers": event["viewers"]})
