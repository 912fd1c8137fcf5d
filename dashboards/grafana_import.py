"""Grafana dashboards (the JSON model Grafana exports) read into the portal's panel specs.

Pure: no database, no network. `convert` returns the panels that can be carried over (in the
document format of `dashboards.portable`), every panel left out with the reason, and what was
changed on the way. Nothing is dropped silently: every panel of the document is either in
`panels` or in `skipped`; rows are headings, not panels, and their panels come over in order.

What comes over: panels of type timeseries, graph, stat, singlestat, gauge, bargauge, barchart
and table whose datasource is Prometheus (or not named, with a PromQL `expr`), with the first
query that can be used, its legend format, the unit and the absolute thresholds, placed where
Grafana had them (`dashboards.grafana_layout`). Template variables become fixed values
(`dashboards.grafana_templating`). Each expression is then checked by the scoping every panel
query goes through (`alerts.promql.scope_to_tenant`): what cannot be scoped to the tenant (not
PromQL, or naming the `tenant` label) is left out with the parser's reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from alerts.promql import PromQLError, scope_to_tenant
from dashboards.forms import (
    DESCRIPTION_MAX,
    LEGEND_MAX,
    MAX_PANELS,
    MAX_THRESHOLDS,
    PROMQL_MAX,
    TITLE_MAX,
    UNIT_MAX,
)
from dashboards.grafana_layout import placed_panels
from dashboards.grafana_templating import (
    Templating,
    Unusable,
    datasource_variable,
    read_templating,
    resolve_expression,
    resolve_text,
)
from tenants.forms import tidy_text

# Queries of one panel tried before giving up on it: each is parsed, and parsing takes time.
MAX_FAILED_QUERIES = 3
# A note or a reason of the import report (they may quote the document).
NOTE_MAX = 300

KINDS = {
    "timeseries": "timeseries",
    "graph": "timeseries",
    "stat": "stat",
    "singlestat": "stat",
    "gauge": "gauge",
    "bargauge": "bar",
    "barchart": "bar",
    "table": "table",
    "table-old": "table",
}
UNSUPPORTED = {
    "text": "a text panel has no query to show",
    "news": "a news feed has no query to show",
    "dashlist": "a list of Grafana dashboards has no counterpart here",
    "alertlist": "Grafana's alert list has no counterpart here (see the portal's incidents)",
    "annolist": "Grafana's annotation list has no counterpart here",
    "welcome": "Grafana's welcome panel has no counterpart here",
    "gettingstarted": "Grafana's getting-started panel has no counterpart here",
    "logs": "logs are not metrics: the portal draws numbers only",
    "traces": "traces are not metrics: the portal draws numbers only",
    "nodeGraph": "the portal has no node graph",
    "flamegraph": "the portal has no flame graph",
    "heatmap": "the portal has no heatmap",
    "piechart": "the portal has no pie chart",
    "grafana-piechart-panel": "the portal has no pie chart",
    "histogram": "the portal has no histogram",
    "state-timeline": "the portal has no state timeline",
    "status-history": "the portal has no status history",
    "geomap": "the portal has no map",
    "canvas": "the portal has no canvas panel",
    "xychart": "the portal has no X-Y chart",
    "candlestick": "the portal has no candlestick chart",
    "trend": "the portal has no trend chart",
    "datagrid": "the portal has no data grid",
}

# Grafana unit ids -> the portal's unit text (a label shown by the number and on the axis).
UNITS = {
    "percent": "%",
    "percentunit": "ratio",
    "s": "s",
    "ms": "ms",
    "µs": "µs",
    "us": "µs",
    "ns": "ns",
    "m": "min",
    "h": "h",
    "d": "d",
    "dtdurations": "s",
    "dtdurationms": "ms",
    "clocks": "s",
    "clockms": "ms",
    "bytes": "B",
    "decbytes": "B",
    "bits": "bit",
    "decbits": "bit",
    "kbytes": "KiB",
    "mbytes": "MiB",
    "gbytes": "GiB",
    "tbytes": "TiB",
    "deckbytes": "kB",
    "decmbytes": "MB",
    "decgbytes": "GB",
    "dectbytes": "TB",
    "Bps": "B/s",
    "binBps": "B/s",
    "KBs": "kB/s",
    "KiBs": "KiB/s",
    "MBs": "MB/s",
    "MiBs": "MiB/s",
    "GBs": "GB/s",
    "GiBs": "GiB/s",
    "bps": "bit/s",
    "binbps": "bit/s",
    "Kbits": "kbit/s",
    "Mbits": "Mbit/s",
    "Gbits": "Gbit/s",
    "pps": "packets/s",
    "reqps": "req/s",
    "rps": "req/s",
    "ops": "ops/s",
    "wps": "writes/s",
    "iops": "io/s",
    "rpm": "req/min",
    "opm": "ops/min",
    "wpm": "writes/min",
    "hertz": "Hz",
    "celsius": "°C",
    "fahrenheit": "°F",
    "watt": "W",
    "kwatt": "kW",
    "watth": "Wh",
    "kwatth": "kWh",
    "volt": "V",
    "amp": "A",
    "currencyUSD": "USD",
    "currencyEUR": "EUR",
    "currencyGBP": "GBP",
    "currencyJPY": "JPY",
    "currencyCHF": "CHF",
}
# Grafana's "no unit" ids: numbers shown as they are.
NO_UNIT = frozenset({"", "none", "short", "locale", "sci", "string", "dateTimeAsIso"})


class GrafanaError(Exception):
    """The document as a whole cannot be read; `errors` says why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class Conversion:
    title: str
    description: str
    panels: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (panel title, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (panel title, what changed)
    dashboard_notes: list[str] = field(default_factory=list)  # rows, variables


@dataclass
class _Context:
    schema: str
    templating: Templating
    inputs: dict[str, str]  # datasource inputs of a shared export: name -> plugin type


# --- entry points ------------------------------------------------------------------------------


def _dashboard_of(value: dict) -> dict:
    """The dashboard itself: Grafana's API wraps it as {"dashboard": ..., "meta": ...}."""
    inner = value.get("dashboard")
    if isinstance(inner, dict) and "panels" not in value and "rows" not in value:
        return inner
    return value


def looks_like_grafana(value: dict) -> bool:
    document = _dashboard_of(value)
    return isinstance(document, dict) and ("panels" in document or "rows" in document)


def convert(value: dict, *, schema: str) -> Conversion:
    """The portal's panels for a Grafana dashboard, and what did not come over (and why)."""
    document = _dashboard_of(value)
    errors = []
    if "panels" in document and not isinstance(document["panels"], list):
        errors.append("panels: send a list of panels.")
    if "rows" in document and not isinstance(document["rows"], list):
        errors.append("rows: send a list of rows.")
    templating = document.get("templating", {})
    variables = templating.get("list", []) if isinstance(templating, dict) else None
    if not isinstance(variables, list):
        errors.append('templating: send {"list": [variables]}.')
    if errors:
        raise GrafanaError(errors)
    placed, rows = placed_panels(document)
    if len(placed) > MAX_PANELS:
        raise GrafanaError([f"panels: at most {MAX_PANELS} panels (this has {len(placed)})."])
    context = _Context(
        schema=schema,
        templating=read_templating(variables, document.get("__inputs")),
        inputs=_inputs(document.get("__inputs")),
    )
    conversion = Conversion(
        title=_title(document.get("title"), "Imported Grafana dashboard"),
        description=tidy_text(document.get("description"), DESCRIPTION_MAX, multiline=True),
    )
    for panel, cell in placed:
        name = _title(panel.get("title"), "") if isinstance(panel, dict) else ""
        try:
            spec, notes = _panel_spec(panel, cell, context)
        except Unusable as exc:
            # The reason may quote the document or the parser: shown, returned and audited.
            conversion.skipped.append((name or _untitled(panel), tidy_text(str(exc), NOTE_MAX)))
            continue
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
            # A shape this reader does not know: said, and never the end of the whole import.
            conversion.skipped.append((name or _untitled(panel), "the panel could not be read"))
            continue
        conversion.panels.append(spec)
        conversion.notes.extend((spec["title"], tidy_text(note, NOTE_MAX)) for note in notes)
    conversion.panels.sort(key=lambda spec: (spec["layout"]["y"], spec["layout"]["x"]))
    conversion.dashboard_notes = [
        tidy_text(note, NOTE_MAX) for note in _rows_note(rows) + context.templating.notes()
    ]
    return conversion


def _rows_note(rows: list[object]) -> list[str]:
    if not rows:
        return []
    titles = [_title(row.get("title"), "Row") if isinstance(row, dict) else "Row" for row in rows]
    shown = ", ".join(f"“{title}”" for title in titles[:8]) + (" …" if len(titles) > 8 else "")
    return [f"{len(rows)} rows ({shown}) are not kept as such: their panels follow in order"]


# --- text --------------------------------------------------------------------------------------


def _title(value: object, default: str) -> str:
    return tidy_text(value, TITLE_MAX) or default


def _untitled(panel: object) -> str:
    kind = tidy_text(panel.get("type"), 40) if isinstance(panel, dict) else ""
    return f"Untitled {kind} panel" if kind else "Untitled panel"


def _inputs(raw: object) -> dict[str, str]:
    """Datasource inputs of a shared export (`${DS_PROMETHEUS}`): name -> plugin type."""
    found = {}
    for item in raw if isinstance(raw, list) else []:
        if (
            isinstance(item, dict)
            and item.get("type") == "datasource"
            and isinstance(item.get("name"), str)
        ):
            plugin = item.get("pluginId")
            found[item["name"]] = plugin.lower() if isinstance(plugin, str) else ""
    return found


def _datasource_kind(datasource: object, context: _Context) -> str | None:
    """The plugin type ("prometheus", "loki"...), "mixed", or None if the document does not say."""
    uid = None
    if isinstance(datasource, dict):
        kind, uid = datasource.get("type"), datasource.get("uid")
        if uid == "-- Mixed --":
            return "mixed"
        if uid in ("-- Grafana --", "grafana") or kind == "grafana":
            return "grafana"
        if kind == "__expr__" or uid == "__expr__":
            return "expression"
        if isinstance(kind, str) and kind and kind != "datasource":
            return kind.lower()
        datasource = uid
    if not isinstance(datasource, str) or not datasource:
        return None
    if datasource == "-- Mixed --":
        return "mixed"
    if datasource == "-- Grafana --":
        return "grafana"
    if datasource == "__expr__":
        return "expression"
    reference = re.fullmatch(r"\$\{?(\w+)\}?", datasource)
    if reference:
        name = reference.group(1)
        if name in context.inputs:
            return context.inputs[name] or None
        return datasource_variable(name, context.templating)
    return None  # a datasource named in the source Grafana: judged by its queries


def _prometheus_targets(panel: dict, context: _Context) -> list[tuple[str, dict]]:
    """The panel's Prometheus queries (refId, target) in order; Unusable if it has none."""
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        raise Unusable("it has no query")
    panel_kind = _datasource_kind(panel.get("datasource"), context)
    usable, others = [], set()
    hidden = 0
    for index, target in enumerate(targets):
        if not isinstance(target, dict):
            continue
        ref = target.get("refId") if isinstance(target.get("refId"), str) else chr(65 + index % 26)
        kind = _datasource_kind(target.get("datasource"), context) or panel_kind
        if kind == "mixed":
            kind = None
        if kind not in (None, "prometheus"):
            others.add(kind)
            continue
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            if kind is None and any(k in target for k in ("query", "rawSql", "target", "rawQuery")):
                others.add("not PromQL")
            continue
        if target.get("hide") is True:
            hidden += 1
            continue
        usable.append((tidy_text(ref, 20) or chr(65 + index % 26), target))
    if not usable:
        if others:
            raise Unusable(
                "its queries are not Prometheus queries (" + ", ".join(sorted(others)) + ")"
            )
        if hidden:
            raise Unusable("every query of it is hidden")
        raise Unusable("it has no PromQL query")
    return usable


# --- one panel ---------------------------------------------------------------------------------


def _kind_of(panel: dict) -> tuple[str, list[str]]:
    kind = panel.get("type")
    if panel.get("libraryPanel") and not panel.get("targets"):
        raise Unusable("a library panel: its definition is not in this file")
    if not isinstance(kind, str) or not kind:
        raise Unusable("it has no panel type")
    if kind not in KINDS:
        reason = (
            UNSUPPORTED.get(kind)
            or f"the panel type “{tidy_text(kind, 60)}” has no counterpart here"
        )
        raise Unusable(reason)
    notes = []
    portal = KINDS[kind]
    if kind == "graph" and panel.get("bars") and not panel.get("lines", True):
        portal = "bar"
    if kind == "timeseries":
        custom = _defaults(panel).get("custom")
        if isinstance(custom, dict) and custom.get("drawStyle") == "bars":
            portal = "bar"
    if kind == "bargauge":
        notes.append("a bar gauge is drawn as bars over time")
    if kind == "singlestat":
        notes.append("a single stat is drawn as a stat")
    return portal, notes


def _defaults(panel: dict) -> dict:
    field_config = panel.get("fieldConfig")
    defaults = field_config.get("defaults") if isinstance(field_config, dict) else None
    return defaults if isinstance(defaults, dict) else {}


def _unit(panel: dict) -> tuple[str, list[str]]:
    unit = _defaults(panel).get("unit")
    if unit is None:
        yaxes = panel.get("yaxes")
        if isinstance(yaxes, list) and yaxes and isinstance(yaxes[0], dict):
            unit = yaxes[0].get("format")
        elif isinstance(panel.get("format"), str):
            unit = panel["format"]
    if not isinstance(unit, str) or unit in NO_UNIT:
        return "", []
    if unit in UNITS:
        return UNITS[unit], []
    for prefix in ("suffix:", "prefix:"):
        if unit.startswith(prefix):
            text = tidy_text(unit[len(prefix) :], UNIT_MAX)
            if text:
                return text, []
    return "", [f"the unit “{tidy_text(unit, 40)}” has no counterpart here; it was left out"]


def _thresholds(panel: dict) -> tuple[list[float], list[str]]:
    raw = _defaults(panel).get("thresholds")
    values: list[float] = []
    notes = []
    if isinstance(raw, dict):
        if raw.get("mode") == "percentage":
            return [], ["percentage thresholds were left out (the portal's are values)"]
        steps = raw.get("steps")
        for step in steps if isinstance(steps, list) else []:
            if isinstance(step, dict):
                values.append(step.get("value"))
    elif isinstance(panel.get("thresholds"), str):  # singlestat / old gauge: "80,90"
        values = [_float(part) for part in panel["thresholds"].split(",")]
    elif isinstance(panel.get("thresholds"), list):  # graph: [{"value": 80, "op": "gt"}]
        values = [item.get("value") for item in panel["thresholds"] if isinstance(item, dict)]
    numbers = sorted(
        {
            float(v)
            for v in values
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
    )
    if len(numbers) > MAX_THRESHOLDS:
        notes.append(f"only the first {MAX_THRESHOLDS} thresholds were kept")
        numbers = numbers[:MAX_THRESHOLDS]
    return numbers, notes


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _reduction_note(panel: dict, kind: str) -> list[str]:
    if kind not in ("stat", "gauge", "bar"):
        return []
    options = panel.get("options")
    reduce = options.get("reduceOptions") if isinstance(options, dict) else None
    calcs = reduce.get("calcs") if isinstance(reduce, dict) else None
    if isinstance(calcs, list) and calcs and calcs[0] not in ("lastNotNull", "last"):
        shown = tidy_text(str(calcs[0]), 30)
        return [f"Grafana showed the “{shown}” of the series; here, the last value"]
    return []


def _panel_spec(panel: object, cell: dict, context: _Context) -> tuple[dict, list[str]]:
    if not isinstance(panel, dict):
        raise Unusable("it is not a panel object")
    if panel.get("repeatPanelId") is not None or panel.get("repeatIteration") is not None:
        raise Unusable("a copy Grafana made of a repeated panel (the panel itself came over)")
    kind, notes = _kind_of(panel)
    targets = _prometheus_targets(panel, context)
    chosen, expr, problems = None, "", []
    for ref, target in targets:
        if len(problems) >= MAX_FAILED_QUERIES:
            break
        try:
            expr = _checked_expression(target["expr"], context)
        except Unusable as exc:
            problems.append(f"query {ref}: {exc}")
            continue
        chosen = (ref, target)
        break
    if chosen is None:
        raise Unusable("; ".join(problems))
    ref, target = chosen
    context.templating.keep()  # the report names only replacements in queries that came over
    notes += [f"{problem} (query {ref} was used instead)" for problem in problems]
    failed = {problem.partition(":")[0] for problem in problems}
    rest = [r for r, _ in targets if r != ref and f"query {r}" not in failed]
    if rest:
        notes.append(
            f"query {ref} came over; {', '.join(rest)} did not (a portal panel has one query)"
        )
    raw_title = panel.get("title") if isinstance(panel.get("title"), str) else ""
    title = _title(resolve_text(raw_title, context.templating), "") or _untitled(panel)
    if isinstance(panel.get("title"), str) and len(panel["title"].strip()) > TITLE_MAX:
        notes.append(f"the title was shortened to {TITLE_MAX} characters")
    unit, unit_notes = _unit(panel)
    thresholds, threshold_notes = _thresholds(panel)
    notes += unit_notes + threshold_notes + _reduction_note(panel, kind)
    if panel.get("repeat"):
        notes.append(
            f"Grafana repeated it for each value of ${tidy_text(str(panel['repeat']), 40)}; "
            "here it is one panel over every value"
        )
    if panel.get("transformations"):
        notes.append("Grafana's transformations of its data were left out")
    legend = target.get("legendFormat")
    legend = "" if not isinstance(legend, str) or legend == "__auto" else legend
    legend = tidy_text(resolve_text(legend, context.templating), LEGEND_MAX)
    spec = {
        "title": title,
        "kind": kind,
        "source": "prometheus",
        "metric": "",
        "aggregation": "avg",
        "label_filter": {},
        "promql": expr,
        "unit": unit,
        "thresholds": thresholds,
        "legend": legend,
        "layout": cell,
    }
    return spec, notes


def _checked_expression(raw: str, context: _Context) -> str:
    """The query with its variables replaced, refused unless it can be scoped to the tenant."""
    if len(raw) > PROMQL_MAX:
        raise Unusable(f"the query is longer than {PROMQL_MAX} characters")
    context.templating.begin()
    expr = resolve_expression(raw, context.templating).strip()
    if len(expr) > PROMQL_MAX:
        raise Unusable(f"the query is longer than {PROMQL_MAX} characters")
    try:
        # The panel keeps the expression as written; queries scope it each time they run.
        scope_to_tenant(expr, context.schema)
    except PromQLError as exc:
        raise Unusable(f"PromQL: {exc}") from None
    return expr
