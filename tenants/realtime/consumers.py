"""WebSocket consumers of the tenants app: the per-tenant presence channel."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import tenant_context

from portal.scoping import tenant_group
from tenants.access import access_of
from tenants.realtime import presence
from tenants.roles import Perm

CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _role_in_tenant(user, tenant):
    # ORM work of a consumer always runs inside the tenant's schema.
    with tenant_context(tenant):
        tenant.refresh_from_db(fields=["is_active"])
        if not tenant.is_active:
            return None
        access = access_of(user, tenant)
        return access.role if access.can(Perm.VIEW_TENANT) else None


class PresenceConsumer(AsyncJsonWebsocketConsumer):
    """Tells every member looking at a tenant who else is looking at it."""

    async def connect(self):
        self.tenant = self.scope["tenant"]
        user = self.scope.get("user")
        role = await _role_in_tenant(user, self.tenant)
        if role is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = tenant_group(self.tenant.schema_name, "presence")
        self.viewer = {
            "id": str(user.pk),
            "name": user.get_full_name() or user.email or user.get_username(),
            "role": role.value,
        }
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await presence.join(self.tenant.schema_name, self.channel_name, self.viewer)
        await self._broadcast()

    async def disconnect(self, code):
        group = getattr(self, "group", None)
        if group is None:
            return
        await presence.leave(self.tenant.schema_name, self.channel_name)
        await self.channel_layer.group_discard(group, self.channel_name)
        await self._broadcast()

    async def receive_json(self, content, **kwargs):
        # The page pings every 20 s; a ping keeps this connection's entry fresh, and is when a
        # member removed (or a tenant deactivated) since connecting loses the channel.
        if content.get("type") == "ping":
            if await _role_in_tenant(self.scope.get("user"), self.tenant) is None:
                await self.close(code=CLOSE_FORBIDDEN)
                return
            await presence.join(self.tenant.schema_name, self.channel_name, self.viewer)
            await self.send_json({"type": "pong"})

    async def _broadcast(self):
        viewers = await presence.viewers(self.tenant.schema_name)
        await self.channel_layer.group_send(
            self.group, {"type": "presence.update", "viewers": viewers}
        )

    async def presence_update(self, event):
        await self.send_json({"type": "presence", "viewers": event["viewers"]})
