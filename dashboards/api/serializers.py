"""Dashboards in the API; input is checked by `dashboards.forms.DashboardForm`, as on the pages."""

from rest_framework import serializers

from dashboards.forms import DESCRIPTION_MAX, TITLE_MAX, DashboardForm
from dashboards.models import Dashboard
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
