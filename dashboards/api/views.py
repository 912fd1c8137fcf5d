"""Dashboards API: rows of the tenant's own schema; writes go through `dashboards.services`."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from dashboards import grafana_push, portable, services
from dashboards.api.serializers import (
    DashboardDocumentSerializer,
    DashboardImportInput,
    DashboardImportResultSerializer,
    DashboardSerializer,
    GrafanaPushSerializer,
    LayoutInput,
    LayoutSerializer,
)
from dashboards.forms import MAX_DOCUMENT_BYTES, MAX_PANELS
from dashboards.models import Dashboard
from tenants import audit
from tenants.api.viewsets import TenantViewSet
from tenants.roles import Perm


class DocumentJSONParser(BaseParser):
    """JSON of at most MAX_DOCUMENT_BYTES, read as `portable.load_document` reads an upload:
    the size is refused before parsing, and deep nesting is a 400 rather than a crash."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read(MAX_DOCUMENT_BYTES + 1) if stream is not None else b""
        try:
            return portable.load_document(body)
        except portable.DocumentError as exc:
            raise ParseError(" ".join(exc.errors)) from None


def _layout_of(panels) -> dict:
    return {
        "layout": [{"panel": p.public_id, "x": p.x, "y": p.y, "w": p.w, "h": p.h} for p in panels]
    }


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
        "destroy": Perm.EDIT_DASHBOARDS,
        "export": Perm.VIEW_DASHBOARDS,
        "layout": Perm.EDIT_DASHBOARDS,
        "import_document": Perm.EDIT_DASHBOARDS,
        "grafana": Perm.EDIT_DASHBOARDS,
        "grafana_again": Perm.EDIT_DASHBOARDS,
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

    @extend_schema(responses={204: None}, description="Deletes the dashboard and its panels.")
    def destroy(self, request, id=None):
        dashboard = self.get_object()
        services.delete_dashboard(
            dashboard_id=dashboard.public_id, actor=audit.Actor.from_request(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: DashboardDocumentSerializer},
        description=(
            "The dashboard as a document: title, description, every panel's settings and "
            "place on the grid, no ids. POST it to `/api/v1/dashboards/import/` (here or in "
            "another tenant) to make a copy."
        ),
    )
    @action(detail=True, methods=["get"])
    def export(self, request, id=None):
        return Response(portable.export_dashboard(self.get_object()))

    @extend_schema(
        request=LayoutInput,
        responses={200: LayoutSerializer},
        description=(
            "Places every panel of the dashboard (each named once) on the 12-column grid: "
            "`x + w` at most 12. Panels are drawn in (y, x) order; the answer lists them so."
        ),
    )
    @action(detail=True, methods=["put"])
    def layout(self, request, id=None):
        dashboard = self.get_object()
        data = self.validated(LayoutInput)
        panels = services.arrange_panels(
            dashboard_id=dashboard.public_id,
            layout=[{**cell, "panel": str(cell["panel"])} for cell in data["layout"]],
            actor=audit.Actor.from_request(request),
        )
        return Response(_layout_of(panels))

    @extend_schema(
        request=None,
        responses={200: GrafanaPushSerializer, 201: GrafanaPushSerializer, 204: None},
        description=(
            "The dashboard in the tenant's Grafana folder. GET: where it stands (404 if it is "
            "not kept there). POST: keep it there from now on; it is pushed in the background, "
            "and again after every change (400 `grafana` if Grafana is not connected or it is "
            "pushed already). DELETE: stop, and delete Grafana's copy."
        ),
    )
    @action(detail=True, methods=["get", "post", "delete"])
    def grafana(self, request, id=None):
        dashboard = self.get_object()
        actor = audit.Actor.from_request(request)
        if request.method == "POST":
            row = grafana_push.start_push(dashboard_id=dashboard.public_id, actor=actor)
            return Response(GrafanaPushSerializer(row).data, status=status.HTTP_201_CREATED)
        if request.method == "DELETE":
            grafana_push.stop_push(dashboard_id=dashboard.public_id, actor=actor)
            return Response(status=status.HTTP_204_NO_CONTENT)
        row = grafana_push.state_of(dashboard)
        if row is None:
            raise NotFound("This dashboard is not pushed to Grafana.")
        return Response(GrafanaPushSerializer(row).data)

    @extend_schema(
        request=None,
        responses={200: GrafanaPushSerializer},
        description="Push the dashboard to Grafana again now, without waiting for a retry.",
    )
    @action(detail=True, methods=["post"], url_path="grafana/push")
    def grafana_again(self, request, id=None):
        dashboard = self.get_object()
        row = grafana_push.push_again(
            dashboard_id=dashboard.public_id, actor=audit.Actor.from_request(request)
        )
        return Response(GrafanaPushSerializer(row).data)

    @extend_schema(
        request=DashboardImportInput,
        responses={201: DashboardImportResultSerializer},
        description=(
            "Creates a dashboard from a document: this portal's export, or a Grafana dashboard "
            "(its Prometheus panels come over with their first query scoped to this tenant; "
            "what cannot is listed in `skipped` with the reason; what was changed on the way "
            "is in `notes` for one panel, in `dashboard_notes` for all, e.g. template "
            f"variables). At most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB and "
            f"{MAX_PANELS} panels. All or nothing: a 400 names each panel and field "
            "refused, and nothing is written."
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[DocumentJSONParser],
    )
    def import_document(self, request):
        data = self.validated(DashboardImportInput)
        title = data.get("title")
        try:
            plan = portable.read_document(data["document"], schema=request.tenant.schema_name)
            dashboard = services.import_dashboard(
                plan=plan, title=title or None, actor=audit.Actor.from_request(request)
            )
        except portable.DocumentError as exc:
            raise ValidationError({"document": exc.errors}) from None
        except DjangoValidationError as exc:
            title_errors, document_errors = portable.split_refusal(exc, title_sent=bool(title))
            errors = {"title": title_errors, "document": document_errors}
            raise ValidationError({key: value for key, value in errors.items() if value}) from None
        body = {
            "dashboard": DashboardSerializer(dashboard).data,
            **portable.import_outcome(plan, dashboard),
        }
        return Response(body, status=status.HTTP_201_CREATED)
