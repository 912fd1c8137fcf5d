"""A portal dashboard as a Grafana dashboard model, built with the Grafana Foundation SDK.

Every query is scoped to the tenant (`scope_to_tenant`) here, at the last step before the model
leaves the portal, whatever the stored panel says. Built-in store panels become PromQL on the
series Prometheus scrapes from the portal (`dashboards.scrape`): those hold each series' latest
value per scrape, so an average, a maximum or a minimum over time carries over, while a sum, a
count or a percentile of every pushed sample cannot and is listed as not pushed, with the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from alerts.promql import PromQLError, scope_to_tenant
from dashboards.grafana_import import UNITS
from dashboards.grafana_layout import GRAFANA_COLUMNS, GRAFANA_ROWS_PER_UNIT
from dashboards.models import Dashboard, Panel

# Grafana uids are at most 40 characters: the prefix and a UUID's 32 hex digits fit.
UID_PREFIX = "portal-"
TAG = "monitoring-portal"
COLUMN_FACTOR = GRAFANA_COLUMNS // 12
# Threshold colours in Grafana's palette: below the first is fine, above the last is bad.
_STEP_COLOURS = {1: ["red"], 2: ["orange", "red"]}
# Aggregations of the built-in store that the scraped latest values can reproduce: across the
# series, over time per series.
_OVER_TIME = {
    Panel.Aggregation.AVG: ("avg", "avg_over_time"),
    Panel.Aggregation.MAX: ("max", "max_over_time"),
    Panel.Aggregation.MIN: ("min", "min_over_time"),
    Panel.Aggregation.LATEST: ("sum", "last_over_time"),
}
# The portal's unit text -> Grafana's unit id: the first id that imports as that text.
_UNIT_IDS: dict[str, str] = {}
for _grafana_id, _text in UNITS.items():
    _UNIT_IDS.setdefault(_text, _grafana_id)


def folder_uid(tenant) -> str:
    return UID_PREFIX + tenant.public_id.hex


def dashboard_uid(dashboard_public_id) -> str:
    return UID_PREFIX + dashboard_public_id.hex


@dataclass
class GrafanaModel:
    """The model to send, the panels left out (title and reason), and the model's hash."""

    model: dict
    skipped: list[dict] = field(default_factory=list)

    @property
    def digest(self) -> str:
        text = json.dumps(self.model, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class NotCarried(Exception):
    """A panel that cannot be shown in Grafana; the message says why."""


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def panel_expression(panel: Panel, schema: str) -> str:
    """The PromQL Grafana runs for the panel, scoped to the tenant; NotCarried if none can."""
    if panel.source == Panel.Source.PROMETHEUS:
        try:
            return scope_to_tenant(panel.promql, schema)
        except PromQLError as exc:
            raise NotCarried(f"its PromQL is refused: {exc}") from None
    functions = _OVER_TIME.get(panel.aggregation)
    if functions is None:
        raise NotCarried(
            f"the {panel.get_aggregation_display().lower()} of every pushed sample cannot be "
            "computed from the latest values Prometheus scrapes"
        )
    matchers = ",".join(
        f"{name}={_promql_string(str(value))}"
        for name, value in sorted((panel.label_filter or {}).items())
    )
    try:
        selector = scope_to_tenant(f"{panel.metric}{{{matchers}}}", schema)
    except PromQLError as exc:
        raise NotCarried(f"its metric and labels do not make a PromQL selector: {exc}") from None
    # The selector is the parser's own output; Grafana fills in the window for the panel's range.
    across, over_time = functions
    return f"{across}({over_time}({selector}[$__rate_interval]))"


def _thresholds(values: list) -> dashboard_builders.ThresholdsConfig:
    values = [float(v) for v in values or []][:2]
    colours = _STEP_COLOURS.get(len(values), [])
    steps = [Threshold(value=None, color="green")]
    steps += [Threshold(value=v, color=c) for v, c in zip(values, colours, strict=True)]
    return dashboard_builders.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def _unit(text: str) -> str:
    if not text:
        return "none"
    return _UNIT_IDS.get(text, f"suffix: {text}")


def _panel_builder(panel: Panel):
    if panel.kind == Panel.Kind.STAT:
        return stat.Panel().reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"])
        )
    if panel.kind == Panel.Kind.GAUGE:
        return gauge.Panel().reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"])
        )
    if panel.kind == Panel.Kind.TABLE:
        return table.Panel()
    builder = timeseries.Panel()
    if panel.kind == Panel.Kind.BAR:
        builder = builder.draw_style(GraphDrawStyle.BARS)
    return builder


def _target(panel: Panel, expr: str):
    target = prometheus.Dataquery().expr(expr).ref_id("A")
    if panel.legend:
        target = target.legend_format(panel.legend)
    if panel.kind == Panel.Kind.TABLE:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def grafana_dashboard(
    dashboard: Dashboard, panels: list[Panel], *, schema: str, datasource_uid: str
) -> GrafanaModel:
    """The Grafana model of `dashboard` for the tenant `schema` (its Prometheus data source)."""
    datasource = DataSourceRef(type_val="prometheus", uid=datasource_uid)
    builder = (
        dashboard_builders.Dashboard(dashboard.title)
        .uid(dashboard_uid(dashboard.public_id))
        .description(dashboard.description)
        .tags([TAG])
        .time("now-6h", "now")
        .refresh("1m")
        .editable()
    )
    skipped = []
    for panel_id, panel in enumerate(panels, start=1):
        try:
            expr = panel_expression(panel, schema)
        except NotCarried as exc:
            skipped.append({"panel": panel.title, "reason": str(exc)})
            continue
        grid = GridPos(
            x=panel.x * COLUMN_FACTOR,
            y=panel.y * GRAFANA_ROWS_PER_UNIT,
            w=panel.w * COLUMN_FACTOR,
            h=panel.h * GRAFANA_ROWS_PER_UNIT,
        )
        builder = builder.with_panel(
            _panel_builder(panel)
            .id(panel_id)
            .title(panel.title)
            .datasource(datasource)
            .grid_pos(grid)
            .unit(_unit(panel.unit))
            .thresholds(_thresholds(panel.thresholds))
            .with_target(_target(panel, expr))
        )
    model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for one in model.get("panels", []):
        # The SDK writes `"options": null` for panels without options; Grafana wants none.
        if one.get("options") is None:
            one.pop("options", None)
    return GrafanaModel(model=model, skipped=skipped)
