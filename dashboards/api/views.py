"""Dashboards API: rows of the tenant's own schema; writes go through `dashboards.services`."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from dashboards import services
from dashboards.api.serializers import DashboardSerializer
from dashboards.models import Dashboard
from tenants import audit
from tenants.api.viewsets import TenantViewSet
from tenants.roles import Perm


class DashboardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Dashboards of this tenant."""

    model = Dashboard
    tenant_field = None  # a tenant-schema model: the schema is the scope
    serializer_class = DashboardSerializer
    action_permissions = {
        "list": Perm.VIEW_DASHBOARDS,
        "retrieve": Perm.VIEW_DASHBOARDS,
        "create": Perm.EDIT_DASHBOARDS,
        "partial_update": Perm.EDIT_DASHBOARDS,
    }

    def base_queryset(self) -> QuerySet:
        return services.list_dashboards()

    @extend_schema(responses={201: DashboardSerializer})
    def create(self, request):
        data = self.validated(DashboardSerializer)
        dashboard = services.create_dashboard(actor=audit.Actor.from_request(request), **data)
        return Response(DashboardSerializer(dashboard).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, id=None):
        dashboard = self.get_object()
        data = self.validated(DashboardSerializer, partial=True)
        dashboard = services.update_dashboard(
            dashboard_id=dashboard.public_id, actor=audit.Actor.from_request(request), **data
        )
        return Response(DashboardSerializer(dashboard).data)
