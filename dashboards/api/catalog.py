"""The metric catalog in the API (`/api/v1/metric-catalog/`); writes go through services."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Count, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from dashboards import services
from dashboards.forms import MetricDefinitionForm
from dashboards.models import MetricDefinition
from tenants import audit
from tenants.api.serializers import FormSerializer
from tenants.api.viewsets import TenantViewSet
from tenants.roles import Perm


class MetricDefinitionInput(FormSerializer):
    """The catalog form's checks; JSON may send the limit as a number and labels as a list."""

    form_class = MetricDefinitionForm

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and not hasattr(data, "getlist"):
            data = dict(data)
            limit = data.get("cardinality_limit")
            if isinstance(limit, int) and not isinstance(limit, bool):
                data["cardinality_limit"] = str(limit)
            labels = data.get("labels")
            if isinstance(labels, list):
                if not all(isinstance(label, str) for label in labels):
                    raise serializers.ValidationError({"labels": ["Send a list of label names."]})
                # Commas are not allowed in label names, so the joined text splits back exactly.
                data["labels"] = ",".join(labels)
        return super().to_internal_value(data)


class MetricDefinitionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    series = serializers.SerializerMethodField()

    class Meta:
        model = MetricDefinition
        fields = [
            "id",
            "name",
            "type",
            "unit",
            "help",
            "labels",
            "category",
            "cardinality_limit",
            "series",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_series(self, metric: MetricDefinition) -> int:
        """How many label sets the metric has (against its cardinality limit)."""
        count = getattr(metric, "series_count", None)  # annotated on lists: one query, not N
        return metric.series.count() if count is None else count

    def to_internal_value(self, data):
        return MetricDefinitionInput(partial=self.partial).to_internal_value(data)


class MetricDefinitionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The metrics this tenant may push to `POST /api/v1/metrics`."""

    model = MetricDefinition
    tenant_field = None  # a tenant-schema model: the schema is the scope
    serializer_class = MetricDefinitionSerializer
    action_permissions = {
        "list": Perm.VIEW_DASHBOARDS,
        "retrieve": Perm.VIEW_DASHBOARDS,
        "create": Perm.EDIT_DASHBOARDS,
        "partial_update": Perm.EDIT_DASHBOARDS,
        "destroy": Perm.EDIT_DASHBOARDS,
    }

    def base_queryset(self) -> QuerySet:
        return services.list_metrics().annotate(series_count=Count("series"))

    @extend_schema(responses={201: MetricDefinitionSerializer})
    def create(self, request):
        data = self.validated(MetricDefinitionSerializer)
        metric = services.create_metric(actor=audit.Actor.from_request(request), **data)
        return Response(MetricDefinitionSerializer(metric).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, id=None):
        metric = self.get_object()
        data = self.validated(MetricDefinitionSerializer, partial=True)
        metric = services.update_metric(
            metric_id=metric.public_id, actor=audit.Actor.from_request(request), **data
        )
        return Response(MetricDefinitionSerializer(metric).data)

    def destroy(self, request, id=None):
        metric = self.get_object()
        services.delete_metric(metric_id=metric.public_id, actor=audit.Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


router = SimpleRouter()
router.register("metric-catalog", MetricDefinitionViewSet, basename="metric-definition")
