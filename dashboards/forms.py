"""Validation of dashboard writes, shared by the pages and the API (`dashboards.api.serializers`).

Services take the cleaned values and check them again (the admin and commands call them too).
"""

from __future__ import annotations

import math
import re

from django import forms
from django.core.exceptions import ValidationError

from dashboards.models import Dashboard, MetricDefinition, Panel
from tenants.forms import PortalForm, TextField, check_text

TITLE_MAX = Dashboard._meta.get_field("title").max_length
# The column is unbounded text; a description is a sentence or two, not a document.
DESCRIPTION_MAX = 2000
PROMQL_MAX = 4000
UNIT_MAX = 32
LEGEND_MAX = Panel._meta.get_field("legend").max_length


class DashboardForm(PortalForm):
    title = TextField(label="Title", max_length=TITLE_MAX)
    description = TextField(
        label="Description", max_length=DESCRIPTION_MAX, multiline=True, required=False
    )


LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
RESERVED_LABELS = frozenset({"tenant", "le", "__name__"})
MAX_LABELS = 20
MAX_CARDINALITY = 100_000
DEFAULT_CARDINALITY = 1000
MAX_THRESHOLDS = 5
GRID_COLUMNS = 12
MAX_ROW = 10_000
MAX_HEIGHT = 24
# A dashboard is read by people: hundreds of panels are already more than a page can draw.
MAX_PANELS = 500
# An exported Grafana dashboard of a few hundred panels is well under 1 MB.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


def _choice(choices, label: str, **kwargs) -> forms.ChoiceField:
    allowed = ", ".join(value for value, _ in choices)
    message = f"Choose one of: {allowed}."
    return forms.ChoiceField(
        choices=choices,
        label=label,
        error_messages={"required": message, "invalid_choice": message},
        **kwargs,
    )


def _items(value) -> list[str]:
    """A list sent as JSON, or the comma-separated text of a page's field."""
    if value in (None, ""):
        return []
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value]
    return [item.strip() for item in str(value).split(",") if item.strip()]


class LabelNamesField(forms.Field):
    """Label names: a list, or comma-separated text ("region, plan")."""

    def to_python(self, value) -> list[str]:
        names = _items(value)
        for name in names:
            if not LABEL_NAME.fullmatch(name):
                raise ValidationError(f"{name[:40]!r} is not a label name (letters, digits, _).")
            if name in RESERVED_LABELS:
                raise ValidationError(f"{name} is reserved: the portal sets it.")
        if len(names) > MAX_LABELS:
            raise ValidationError(f"At most {MAX_LABELS} labels.")
        if len(set(names)) != len(names):
            raise ValidationError("A label is named twice.")
        return names


class LabelFilterField(forms.Field):
    """Label matchers: an object, or text "region=eu, plan=pro"."""

    def to_python(self, value) -> dict[str, str]:
        if value in (None, ""):
            return {}
        if isinstance(value, dict):
            pairs = [(str(k), v) for k, v in value.items()]
        else:
            pairs = []
            for item in _items(value):
                name, sep, text = item.partition("=")
                if not sep:
                    raise ValidationError(f"Write label=value ({item[:40]!r} has no =).")
                pairs.append((name.strip(), text.strip()))
        result = {}
        if len(pairs) > MAX_LABELS:
            raise ValidationError(f"At most {MAX_LABELS} labels.")
        for name, text in pairs:
            if not LABEL_NAME.fullmatch(name):
                raise ValidationError(f"{name[:40]!r} is not a label name.")
            if not isinstance(text, str) or len(text) > 200:
                raise ValidationError(f"{name}: the value must be text of at most 200 characters.")
            try:
                # NUL cannot be stored in JSON by PostgreSQL; other controls only mislead.
                result[name] = check_text(text, max_length=200)
            except ValidationError as exc:
                raise ValidationError(f"{name}: {' '.join(exc.messages)}") from None
        return result


class ThresholdsField(forms.Field):
    """Threshold values in increasing order: a list of numbers, or "90, 99"."""

    def to_python(self, value) -> list[float]:
        numbers = []
        for item in _items(value):
            try:
                number = float(item)
            except ValueError:
                raise ValidationError(f"{item[:40]!r} is not a number.") from None
            if not math.isfinite(number):
                raise ValidationError("Thresholds must be finite numbers.")
            numbers.append(number)
        if len(numbers) > MAX_THRESHOLDS:
            raise ValidationError(f"At most {MAX_THRESHOLDS} thresholds.")
        if numbers != sorted(numbers):
            raise ValidationError("Give thresholds in increasing order.")
        return numbers


class MetricDefinitionForm(PortalForm):
    name = TextField(label="Name", max_length=MetricDefinition._meta.get_field("name").max_length)
    type = _choice(MetricDefinition.Type.choices, "Type")
    unit = TextField(label="Unit", max_length=UNIT_MAX, required=False)
    help = TextField(label="Help", max_length=DESCRIPTION_MAX, multiline=True, required=False)
    labels = LabelNamesField(label="Allowed labels", required=False)
    category = _choice(MetricDefinition.Category.choices, "Category", required=False)
    cardinality_limit = forms.IntegerField(
        label="Cardinality limit",
        min_value=1,
        max_value=MAX_CARDINALITY,
        initial=DEFAULT_CARDINALITY,
        required=False,
    )

    def clean_category(self) -> str:
        return self.cleaned_data.get("category") or MetricDefinition.Category.TECHNICAL

    def clean_cardinality_limit(self) -> int:
        limit = self.cleaned_data.get("cardinality_limit")
        return DEFAULT_CARDINALITY if limit is None else limit

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if not METRIC_NAME.fullmatch(name):
            raise ValidationError("Use letters, digits, _ and :, not starting with a digit.")
        return name


class PanelForm(PortalForm):
    title = TextField(label="Title", max_length=Panel._meta.get_field("title").max_length)
    kind = _choice(Panel.Kind.choices, "Kind")
    source = _choice(Panel.Source.choices, "Source")
    metric = TextField(label="Metric", max_length=200, required=False)
    aggregation = _choice(Panel.Aggregation.choices, "Aggregation", required=False)
    label_filter = LabelFilterField(label="Label filter", required=False)
    promql = TextField(label="PromQL", max_length=PROMQL_MAX, multiline=True, required=False)
    unit = TextField(label="Unit", max_length=UNIT_MAX, required=False)
    thresholds = ThresholdsField(label="Thresholds", required=False)
    legend = TextField(
        label="Legend",
        max_length=LEGEND_MAX,
        required=False,
    )
    x = forms.IntegerField(label="Column", min_value=0, max_value=GRID_COLUMNS - 1, initial=0)
    y = forms.IntegerField(label="Row", min_value=0, max_value=MAX_ROW, initial=0)
    w = forms.IntegerField(label="Width", min_value=1, max_value=GRID_COLUMNS, initial=6)
    h = forms.IntegerField(label="Height", min_value=1, max_value=MAX_HEIGHT, initial=4)
    position = forms.IntegerField(label="Position", min_value=0, max_value=10_000, initial=0)

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == Panel.Source.BUILTIN and not data.get("metric"):
            self.add_error("metric", "Name a metric of the catalog for the built-in store.")
        if source == Panel.Source.PROMETHEUS and not data.get("promql"):
            self.add_error("promql", "Write the PromQL expression of the panel.")
        if not data.get("aggregation"):
            data["aggregation"] = Panel.Aggregation.AVG
        x, w = data.get("x"), data.get("w")
        if x is not None and w is not None and x + w > GRID_COLUMNS:
            self.add_error("w", f"Column + width must be at most {GRID_COLUMNS}.")
        return data


def _whole_number(value, name: str, low: int, high: int) -> int:
    # JSON booleans are ints to Python, and 2.0 or "2" is not what a layout sends.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number.")
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}.")
    return value


def clean_cell(value) -> dict[str, int]:
    """One panel's place on the grid: {x, y, w, h}, whole numbers inside the 12 columns."""
    if not isinstance(value, dict):
        raise ValidationError("Send an object with x, y, w and h.")
    missing = [name for name in ("x", "y", "w", "h") if name not in value]
    if missing:
        raise ValidationError(f"{', '.join(missing)} missing.")
    cell = {
        "x": _whole_number(value["x"], "x", 0, GRID_COLUMNS - 1),
        "y": _whole_number(value["y"], "y", 0, MAX_ROW),
        "w": _whole_number(value["w"], "w", 1, GRID_COLUMNS),
        "h": _whole_number(value["h"], "h", 1, MAX_HEIGHT),
    }
    if cell["x"] + cell["w"] > GRID_COLUMNS:
        raise ValidationError(f"x + w must be at most {GRID_COLUMNS}.")
    return cell


def clean_layout(value) -> list[dict]:
    """A dashboard's layout as sent: [{panel: <id>, x, y, w, h}, ...]; errors name the item."""
    if not isinstance(value, list):
        raise ValidationError({"layout": ["Send a list of {panel, x, y, w, h} objects."]})
    if len(value) > MAX_PANELS:
        raise ValidationError({"layout": [f"At most {MAX_PANELS} panels."]})
    cells, errors = [], []
    for index, item in enumerate(value):
        try:
            cell = clean_cell(item)
            panel = item.get("panel")
            if not isinstance(panel, str) or len(panel) > 64:
                raise ValidationError("panel must be the id of a panel of this dashboard.")
        except ValidationError as exc:
            errors.append(f"Item {index}: {' '.join(exc.messages)}")
            continue
        cells.append({"panel": panel, **cell})
    if errors:
        raise ValidationError({"layout": errors[:20]})
    return cells


class DashboardImportForm(PortalForm):
    """A dashboard document to import: uploaded, or pasted (`dashboards.portable` reads it)."""

    file = forms.FileField(label="Dashboard file (JSON)", required=False)
    text = forms.CharField(
        label="…or paste it here",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    title = TextField(label="Title (instead of the file's)", max_length=TITLE_MAX, required=False)

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        limit = f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"
        if upload is not None:
            if upload.size > MAX_DOCUMENT_BYTES:
                self.add_error("file", f"The file is larger than {limit}.")
                return data
            data["content"] = upload.read()
        elif data.get("text", "").strip():
            if len(data["text"]) > MAX_DOCUMENT_BYTES:
                self.add_error("text", f"The text is longer than {limit}.")
                return data
            data["content"] = data["text"]
        elif not self.errors:
            self.add_error("file", "Choose a dashboard file or paste one.")
        return data
