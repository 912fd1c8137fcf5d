"""Dashboards in the API; input is checked by `dashboards.forms.DashboardForm`, as on the pages."""

from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.settings import api_settings

from dashboards.forms import (
    DESCRIPTION_MAX,
    GRID_COLUMNS,
    MAX_HEIGHT,
    MAX_ROW,
    TITLE_MAX,
    DashboardForm,
    DashboardImportForm,
    clean_layout,
)
from dashboards.models import Dashboard, GrafanaPush, Panel
from dashboards.portable import FORMAT, VERSION
from tenants.api.serializers import FormSerializer


class DashboardInput(FormSerializer):
    form_class = DashboardForm


class DashboardSerializer(serializers.ModelSerializer):
    # Named so the schema states the form's text rules; validation still runs through the form.
    form_class = DashboardForm
    id = serializers.UUIDField(source="public_id", read_only=True)
    title = serializers.CharField(max_length=TITLE_MAX)
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True
    )

    class Meta:
        model = Dashboard
        fields = ["id", "title", "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def to_internal_value(self, data):
        return DashboardInput(partial=self.partial).to_internal_value(data)


# --- documents (export and import) and layouts -------------------------------------------------


class PanelLayoutSerializer(serializers.Serializer):
    x = serializers.IntegerField(min_value=0, max_value=GRID_COLUMNS - 1, help_text="First column.")
    y = serializers.IntegerField(min_value=0, max_value=MAX_ROW, help_text="Row, in height units.")
    w = serializers.IntegerField(min_value=1, max_value=GRID_COLUMNS, help_text="Columns wide.")
    h = serializers.IntegerField(min_value=1, max_value=MAX_HEIGHT, help_text="Height units.")


class PanelSpecSerializer(serializers.Serializer):
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=Panel.Kind.choices)
    source = serializers.ChoiceField(choices=Panel.Source.choices)
    metric = serializers.CharField(allow_blank=True, help_text="Built-in store: the metric.")
    aggregation = serializers.ChoiceField(choices=Panel.Aggregation.choices)
    label_filter = serializers.DictField(child=serializers.CharField(allow_blank=True))
    promql = serializers.CharField(
        allow_blank=True, help_text="Prometheus: the expression, as written (scoped when run)."
    )
    unit = serializers.CharField(allow_blank=True)
    thresholds = serializers.ListField(child=serializers.FloatField())
    legend = serializers.CharField(allow_blank=True, help_text='Series names, e.g. "{{instance}}".')
    layout = PanelLayoutSerializer()


class DashboardDocumentSerializer(serializers.Serializer):
    """A dashboard as a document: no id of this tenant, importable into any tenant."""

    format = serializers.ChoiceField(choices=[(FORMAT, FORMAT)])
    version = serializers.IntegerField(min_value=VERSION, max_value=VERSION)
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    panels = PanelSpecSerializer(many=True)


class LayoutCellSerializer(PanelLayoutSerializer):
    panel = serializers.UUIDField(help_text="A panel of this dashboard.")


class LayoutInput(serializers.Serializer):
    """Every panel of the dashboard once, with its place; checked by `forms.clean_layout`."""

    layout = LayoutCellSerializer(many=True, help_text="Panels are drawn in (y, x) order.")

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Send a JSON object."]}
            )
        if "layout" not in data:
            raise serializers.ValidationError({"layout": ["This field is required."]})
        try:
            return {"layout": clean_layout(data["layout"])}
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None


class LayoutSerializer(serializers.Serializer):
    layout = LayoutCellSerializer(many=True)


class DashboardImportInput(serializers.Serializer):
    # The text rules of `title` are the import form's (the schema states them from it).
    form_class = DashboardImportForm
    document = serializers.DictField(
        help_text=(
            "A dashboard exported from this portal (GET .../export/) or a Grafana dashboard "
            "(its JSON model, or the export with `dashboard` and `meta`)."
        )
    )
    title = serializers.CharField(
        max_length=TITLE_MAX, required=False, help_text="Replaces the document's title."
    )

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and "title" in data and not isinstance(data["title"], str):
            raise serializers.ValidationError({"title": ["Send a string."]})
        return super().to_internal_value(data)


class ImportedPanelSerializer(serializers.Serializer):
    title = serializers.CharField()
    kind = serializers.CharField()


class SkippedPanelSerializer(serializers.Serializer):
    panel = serializers.CharField(help_text="The panel's title in the document.")
    reason = serializers.CharField()


class ImportNoteSerializer(serializers.Serializer):
    panel = serializers.CharField()
    note = serializers.CharField(help_text="What was changed on the way, e.g. a variable.")


class DashboardImportResultSerializer(serializers.Serializer):
    dashboard = DashboardSerializer()
    origin = serializers.ChoiceField(choices=[("portal", "portal"), ("grafana", "grafana")])
    imported = ImportedPanelSerializer(many=True)
    skipped = SkippedPanelSerializer(many=True, help_text="Left out, each with the reason.")
    notes = ImportNoteSerializer(many=True)
    dashboard_notes = serializers.ListField(
        child=serializers.CharField(),
        help_text="What changed for every panel: rows opened, template variables replaced.",
    )


# --- Grafana ---------------------------------------------------------------------------------


class GrafanaSkippedSerializer(serializers.Serializer):
    panel = serializers.CharField()
    reason = serializers.CharField()


class GrafanaPushSerializer(serializers.ModelSerializer):
    """Where the dashboard stands in the tenant's Grafana folder."""

    skipped = GrafanaSkippedSerializer(many=True, help_text="Panels Grafana cannot show, and why.")

    class Meta:
        model = GrafanaPush
        fields = [
            "status",
            "grafana_uid",
            "grafana_version",
            "grafana_url",
            "error",
            "attempts",
            "last_attempt_at",
            "last_success_at",
            "skipped",
        ]
        read_only_fields = fields
