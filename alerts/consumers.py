"""The incident desk's live channel: tells a page watching the list that incidents changed.

Every member who may see incidents joins the tenant's desk group; only those who may see security
incidents also join its security group (`alerts.incident_live` sends a security incident's
changes there alone). The page refetches what it shows, through the same visibility rules as any
request, so a message carries incident ids and nothing else.
"""

from __future__ import annotations

from alerts import incident_live
from tenants.realtime.base import TenantConsumer
from tenants.roles import Perm


class IncidentDeskConsumer(TenantConsumer):
    """Pushes "changed" to the incident list; follows the member's role in and out of the
    security group."""

    permission = Perm.VIEW_INCIDENTS

    def groups_for(self) -> list[str]:
        schema = self.tenant.schema_name
        groups = [incident_live.desk_group(schema)]
        if self.access.can(Perm.VIEW_SECURITY_INCIDENTS):
            groups.append(incident_live.security_group(schema))
        return groups

    async def on_connect(self) -> None:
        # Access was looked at again after the groups were joined: it may have changed between.
        await self._follow_security_access()

    async def on_access_changed(self) -> None:
        # Still on the desk, with another role: what the page may show has changed too.
        if await self._follow_security_access():
            await self.send_json({"type": "changed", "incidents": []})

    async def _follow_security_access(self) -> bool:
        """Join or leave the security group as the current access says; whether it changed."""
        group = incident_live.security_group(self.tenant.schema_name)
        wanted = self.access.can(Perm.VIEW_SECURITY_INCIDENTS)
        if wanted and group not in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups.append(group)
            return True
        if not wanted and group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups.remove(group)
            return True
        return False

    async def receive_json(self, content, **kwargs) -> None:
        # The page pings every 20 s: a chance to look at access again if a revocation was lost.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.recheck_access()
            await self.send_json({"type": "pong"})

    async def incidents_changed(self, event: dict) -> None:
        await self.send_json({"type": "changed", "incidents": list(event.get("incidents", []))})
