from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from dashboards import services
from dashboards.api.serializers import DashboardSerializer
from dashboards.models import Dashboard
from tenants import audit
from tenants.api.lookups import UUID_PATTERN
from tenants.roles import Perm


class DashboardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Dashboards of this tenant (rows of the tenant's own schema)."""

    serializer_class = DashboardSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    read_perm = Perm.VIEW_DASHBOARDS
    write_perm = Perm.EDIT_DASHBOARDS

    def get_queryset(self):
        return services.list_dashboards()

    def create(self, request):
        data = DashboardSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dashboard = services.create_dashboard(
            actor=audit.Actor.from_request(request), **data.validated_data
        )
        return Response(DashboardSerializer(dashboard).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, id=None):
        data = DashboardSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            dashboard = services.update_dashboard(
                dashboard_id=id, actor=audit.Actor.from_request(request), **data.validated_data
            )
        except Dashboard.DoesNotExist:
            from django.http import Http404

            raise Http404 from None
        return Response(DashboardSerializer(dashboard).data)
