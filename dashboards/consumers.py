"""The live channel of one dashboard: new points of its panels as they are ingested."""

from __future__ import annotations

from dashboards.live import dashboard_group
from tenants.realtime.base import TenantConsumer
from tenants.roles import Perm


class DashboardConsumer(TenantConsumer):
    """Pushes the points ingested for one dashboard's panels to a page watching it."""

    permission = Perm.VIEW_DASHBOARDS

    def groups_for(self) -> list[str]:
        # The group is named inside the tenant: another tenant's dashboard id reaches nothing.
        dashboard_id = self.scope["url_route"]["kwargs"]["dashboard_id"]
        return [dashboard_group(self.tenant.schema_name, dashboard_id)]

    async def receive_json(self, content, **kwargs) -> None:
        # The page pings every 20 s: a chance to look at access again if a revocation was lost.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.recheck_access()
            await self.send_json({"type": "pong"})

    async def dashboard_points(self, event: dict) -> None:
        await self.send_json({"type": "points", "panels": event["panels"]})
