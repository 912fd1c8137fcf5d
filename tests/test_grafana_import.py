"""Grafana import: a real-sized exported dashboard (tests/data/grafana_node_exporter.json: rows,
collapsed rows, templating, a dozen panel types, Prometheus and Loki queries) comes over with
every panel that can, each query scoped to the tenant; the rest is listed with the reason."""

from __future__ import annotations

import copy
import io
import json
import random
import re
from itertools import combinations
from pathlib import Path

import pytest
from django_tenants.utils import tenant_context

from alerts.promql import scope_to_tenant
from dashboards import grafana_import, portable
from dashboards.grafana_templating import Unusable, read_templating, resolve_expression
from dashboards.models import Dashboard, Panel
from tests.factories import ApiTokenFactory
from tests.helpers import bearer, send_json

DATA = Path(__file__).parent / "data" / "grafana_node_exporter.json"
SELECTOR = re.compile(r"\{([^{}]*)\}")
IMPORTED, SKIPPED = 81, 13
SKIPPED_REASONS = {
    "About this dashboard": "a text panel has no query to show",
    "Disk latency heatmap": "the portal has no heatmap",
    "Filesystem share": "the portal has no pie chart",
    "System logs": "logs are not metrics",
    "Systemd unit states over time": "the portal has no state timeline",
    "Other dashboards": "a list of Grafana dashboards has no counterpart here",
    "Fleet CPU": "a library panel: its definition is not in this file",
    "Error log rate": "its queries are not Prometheus queries (loki)",
    "Samples since start of range": "query A: it uses $__to, which has no counterpart here",
    "Broken query": "query A: PromQL: unclosed left parenthesis",
    "Another tenant's CPU": "query A: PromQL: the label tenant is set by the portal",
    "Hidden queries only": "every query of it is hidden",
    "CPU of $node": "a copy Grafana made of a repeated panel",
}


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DATA.read_text())


@pytest.fixture(scope="module")
def converted(document):
    return grafana_import.convert(copy.deepcopy(document), schema="acme")


def panels_in(document: dict) -> list[dict]:
    """Every panel of the document, rows opened (the rows themselves left out)."""
    found = []
    for panel in document["panels"]:
        if panel.get("type") == "row":
            found += panel["panels"]
        else:
            found.append(panel)
    return found


def spec(converted, title: str) -> dict:
    return next(p for p in converted.panels if p["title"] == title)


# --- the conversion ----------------------------------------------------------------------------


def test_every_panel_comes_over_or_is_listed_with_its_reason(document, converted):
    # 94 panels in 13 rows (10 collapsed), of every kind Grafana draws: none is lost.
    assert len(converted.panels) + len(converted.skipped) == len(panels_in(document)) == 94
    assert len(converted.panels) == IMPORTED
    assert len(converted.skipped) == SKIPPED
    skipped = dict(converted.skipped)
    assert set(skipped) == set(SKIPPED_REASONS)
    for title, reason in SKIPPED_REASONS.items():
        assert skipped[title].startswith(reason), (title, skipped[title])
    assert converted.title == "Node Exporter Host Overview"
    assert converted.description.startswith("Host metrics from the Prometheus node exporter")


def test_every_query_is_scoped_to_the_tenant_and_has_no_variable_left(converted):
    for panel in converted.panels:
        expr = panel["promql"]
        assert panel["source"] == "prometheus" and expr
        assert "$" not in expr and "[[" not in expr, (panel["title"], expr)
        assert "tenant" not in expr  # kept as written: scoped each time it runs
        scoped = scope_to_tenant(expr, "acme")
        selectors = SELECTOR.findall(scoped)
        assert selectors and all('tenant="acme"' in s for s in selectors), scoped


def test_template_variables_are_replaced_as_the_report_says(converted):
    cpu = spec(converted, "CPU Busy")["promql"]
    assert 'instance=~".*",job=~".*"' in cpu and "[5m]" in cpu  # query variables, rate interval
    assert (
        'device=~"[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"' in spec(converted, "Disk IOps")["promql"]
    )  # a custom variable: its saved value
    # A multi-value variable under "=" becomes a regular expression of its values.
    assert 'mode=~"(user|system)"' in spec(converted, "CPU by chosen modes")["promql"]
    top = spec(converted, "Top CPU modes")["promql"]
    assert top.startswith("topk(5, ") and "[5m]" in top  # custom outside a matcher; $interval
    assert "[1d]" in spec(converted, "OOM kills")["promql"]  # $__range
    assert "[5m]" in spec(converted, "Context switches (legacy graph)")["promql"]  # [[interval]]
    notes = converted.dashboard_notes
    assert '$node (query variable) became every value (instance=~".*") in label matchers' in notes
    assert "$interval (interval variable) became fixed at 5m" in notes
    assert "$__rate_interval was fixed at 5m" in notes
    assert any(n.startswith("$mode (custom variable) became the values saved") for n in notes)
    # Only what came over is reported: the $__range_s of a panel left out is not.
    assert not any("$__range_s" in n for n in notes)


def test_the_layout_is_kept(converted):
    cells = {p["title"]: p["layout"] for p in converted.panels}
    assert cells["CPU Busy"] == {"x": 0, "y": 0, "w": 2, "h": 2}
    assert cells["CPU Cores"] == {"x": 8, "y": 0, "w": 1, "h": 1}
    assert cells["RootFS Total"] == {"x": 8, "y": 1, "w": 1, "h": 1}
    # Side by side in Grafana (two halves of 24 columns), side by side here.
    assert cells["CPU Basic"] == {"x": 0, "y": 2, "w": 6, "h": 4}
    assert cells["Memory Basic"] == {"x": 6, "y": 2, "w": 6, "h": 4}
    # Collapsed rows open below what comes before them, in order.
    assert cells["CPU"]["y"] >= cells["Disk Space Used Basic"]["y"] + 3
    assert cells["Memory Active / Inactive"]["y"] > cells["CPU spent seconds in guests (VMs)"]["y"]
    order = [p["title"] for p in converted.panels]
    assert order.index("Node Exporter Scrape") < order.index("Load and a typo")
    assert cells["Mount points"]["w"] == 12
    # Nothing overlaps and everything is inside the 12 columns.
    boxes = list(cells.values())
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 12 and 1 <= box["h"] <= 24
    for a, b in combinations(boxes, 2):
        apart_x = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
        apart_y = a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
        assert apart_x or apart_y, (a, b)
    assert order == [
        p["title"]
        for p in sorted(converted.panels, key=lambda p: (p["layout"]["y"], p["layout"]["x"]))
    ]


def test_kinds_units_thresholds_legends_and_extra_queries(converted):
    busy = spec(converted, "CPU Busy")
    assert (busy["kind"], busy["unit"], busy["thresholds"]) == ("gauge", "%", [85.0, 95.0])
    assert spec(converted, "Uptime")["unit"] == "s"
    assert spec(converted, "RAM Total")["unit"] == "B"
    network = spec(converted, "Network Traffic Basic")
    assert (network["unit"], network["legend"]) == ("bit/s", "recv {{device}}")
    assert spec(converted, "Mount points")["kind"] == "table"
    oom = spec(converted, "OOM kills")
    assert (oom["kind"], oom["unit"]) == ("bar", "kills")  # drawn as bars; a custom suffix
    assert spec(converted, "Top CPU modes")["kind"] == "bar"
    assert spec(converted, "Load 1m (legacy singlestat)")["thresholds"] == [1.0, 2.0]
    assert spec(converted, "Context switches (legacy graph)")["thresholds"] == [50000.0]
    assert spec(converted, "Uptime fallback")["promql"].startswith("time() - node_boot_time")
    notes = {}
    for title, note in converted.notes:
        notes.setdefault(title, []).append(note)
    assert (
        "query A came over; B, C, D, E, F did not (a portal panel has one query)"
        in (notes["CPU Basic"])
    )
    assert notes["Load and a typo"] == [
        "query A came over; B did not (a portal panel has one query)"
    ]
    assert notes["Uptime fallback"][0].startswith("query A: it uses $__from")
    assert "percentage thresholds were left out (the portal's are values)" in notes["Top CPU modes"]
    assert notes["Pressure"] == ["the unit “lengthm” has no counterpart here; it was left out"]
    assert any("transformations" in n for n in notes["Mount points"])
    assert any("repeated it for each value of $node" in n for n in notes["CPU of all"])


# --- variables on their own ----------------------------------------------------------------------


def templating(*variables: dict):
    return read_templating(list(variables), None)


QUERY_VAR = {"name": "node", "type": "query", "current": {"text": "a:1", "value": "a:1"}}
MULTI_VAR = {
    "name": "env",
    "type": "custom",
    "multi": True,
    "current": {"value": ["prod", "pre.prod"]},
    "query": "prod,pre.prod,dev",
}
ALL_VAR = {
    "name": "dc",
    "type": "custom",
    "includeAll": True,
    "current": {"value": "$__all"},
    "query": "eu,us",
}
SINGLE_VAR = {"name": "job", "type": "custom", "current": {"value": 'a"b'}, "query": 'a"b'}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('up{instance="$node"}', 'up{instance=~".*"}'),
        ('up{instance="${node}"}', 'up{instance=~".*"}'),
        ('up{instance="[[node]]"}', 'up{instance=~".*"}'),
        ('up{instance="${node:regex}"}', 'up{instance=~".*"}'),
        ('up{instance="$node:9100"}', 'up{instance=~".*:9100"}'),
        ('up{instance!="$node"}', 'up{instance!~".*"}'),
        ('up{env="$env"}', 'up{env=~"(prod|pre\\\\.prod)"}'),
        ('up{env=~"$env"}', 'up{env=~"(prod|pre\\\\.prod)"}'),
        ('up{env="x.$env"}', 'up{env=~"x\\\\.(prod|pre\\\\.prod)"}'),
        ("up{env=`x.$env`}", "up{env=~`x\\.(prod|pre\\.prod)`}"),
        ('up{dc="$dc"}', 'up{dc=~"(eu|us)"}'),
        ('up{job="$job"}', 'up{job="a\\"b"}'),
        ('label_replace(up, "x", "$1", "instance", "(.*)")', None),
        ("rate(up[$__rate_interval])", "rate(up[5m])"),
        ("rate(up[${__interval}])", "rate(up[1m])"),
        ("max_over_time(up[$__range])", "max_over_time(up[1d])"),
        ("up # $node in a comment\n", "up # $node in a comment\n"),
        ('up{instance="$unknown"}', None),
    ],
)
def test_references_are_replaced(expr, expected):
    resolved = resolve_expression(expr, templating(QUERY_VAR, MULTI_VAR, ALL_VAR, SINGLE_VAR))
    assert resolved == (expr if expected is None else expected)


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("up @ $__to", "it uses $__to"),
        ("topk($env, up)", "$env stands for several values"),
        ("topk($job, up)", "cannot stand outside a string"),
        ('up{a="unclosed}', "a string is not closed"),
    ],
)
def test_references_that_cannot_be_replaced_say_why(expr, reason):
    node = {**QUERY_VAR, "current": {"value": "a:1"}}
    with pytest.raises(Unusable, match=re.escape(reason)):
        resolve_expression(expr, templating(node, MULTI_VAR, SINGLE_VAR))


# --- bad documents -------------------------------------------------------------------------------


def _grafana(panels: list, **more) -> dict:
    return {"title": "Small", "panels": panels, **more}


def _timeseries(title="Up", expr="up", **more) -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
        "targets": [{"expr": expr, "refId": "A"}],
        **more,
    }


@pytest.mark.parametrize(
    ("panel", "reason"),
    [
        ("not a panel", "it is not a panel object"),
        (17, "it is not a panel object"),
        ({"title": "No type", "targets": [{"expr": "up"}]}, "it has no panel type"),
        # A Cyrillic "ѕ" in the type is not the type.
        (_timeseries(type="timeѕeries"), "the panel type “timeѕeries” has no counterpart here"),
        (_timeseries(targets="up"), "it has no query"),
        (_timeseries(targets=[{"refId": "A"}]), "it has no PromQL query"),
        (_timeseries(expr="up{" + "a" * 5000 + '="1"}'), "query A: the query is longer"),
        # A long run of name characters before each string: refused before it is read, since
        # looking for a matcher in it would cost time quadratic in its length.
        (_timeseries(expr=("a" * 200_000 + '="x" ') * 5), "query A: the query is longer"),
        (_timeseries(expr="up\x00"), "query A: PromQL: the expression contains a NUL"),
        (
            _timeseries(datasource={"type": "influxdb", "uid": "x"}),
            "its queries are not Prometheus queries (influxdb)",
        ),
        (
            _timeseries(targets=[{"rawSql": "select 1", "refId": "A"}]),
            "its queries are not Prometheus queries (not PromQL)",
        ),
        (_timeseries(targets=[{"expr": 5, "refId": "A"}]), "it has no PromQL query"),
    ],
)
def test_panels_that_cannot_come_over_are_listed(panel, reason):
    converted = grafana_import.convert(_grafana([panel, _timeseries("Kept")]), schema="acme")
    assert [p["title"] for p in converted.panels] == ["Kept"]
    [(_, why)] = converted.skipped
    assert why.startswith(reason), why


def test_odd_values_are_made_safe_or_left_at_their_defaults():
    odd = _timeseries(
        "\u202eevil\x00 title " + "x" * 300,
        gridPos={"x": "3", "y": None, "w": True, "h": 1e300},
        fieldConfig={"defaults": {"unit": ["bytes"], "thresholds": {"steps": [{"value": "8"}]}}},
    )
    odd["targets"][0]["legendFormat"] = "\x07{{job}}"
    converted = grafana_import.convert(_grafana([odd], title=None), schema="acme")
    [panel] = converted.panels
    assert panel["title"].startswith("evil  title xxx") and len(panel["title"]) == 200
    assert panel["layout"] == {"x": 0, "y": 0, "w": 6, "h": 24}
    assert (panel["unit"], panel["thresholds"], panel["legend"]) == ("", [], "{{job}}")
    assert converted.title == "Imported Grafana dashboard"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"panels": {"a": 1}}, "panels: send a list of panels."),
        ({"rows": "x"}, "rows: send a list of rows."),
        ({"panels": [], "templating": {"list": {}}}, "templating: send"),
        ({"panels": [_timeseries()] * 501}, "panels: at most 500 panels (this has 501)."),
        (
            {"panels": [{"type": "row", "panels": [_timeseries()] * 400}, _timeseries()] * 2},
            "panels: at most 500 panels (this has 802).",
        ),
    ],
)
def test_a_document_grafana_would_not_read_is_refused(document, message):
    with pytest.raises(grafana_import.GrafanaError) as refused:
        grafana_import.convert(document, schema="acme")
    assert any(error.startswith(message) for error in refused.value.errors)


def test_grafana_before_5_rows_and_spans_come_over():
    legacy = {
        "title": "Old",
        "rows": [
            {
                "title": "Top",
                "height": "250px",
                "panels": [
                    {"type": "graph", "title": "A", "span": 6, "targets": [{"expr": "up"}]},
                    {"type": "singlestat", "title": "B", "span": 6, "targets": [{"expr": "up"}]},
                    {"type": "text", "title": "C", "span": 12},
                ],
            },
            {
                "height": 500,
                "panels": [{"type": "graph", "title": "D", "targets": [{"expr": "up"}]}],
            },
        ],
    }
    converted = grafana_import.convert(legacy, schema="acme")
    cells = {p["title"]: p["layout"] for p in converted.panels}
    assert cells == {
        "A": {"x": 0, "y": 0, "w": 6, "h": 4},
        "B": {"x": 6, "y": 0, "w": 6, "h": 4},
        "D": {"x": 0, "y": 8, "w": 12, "h": 8},
    }
    assert converted.skipped == [("C", "a text panel has no query to show")]


def test_mangled_documents_never_crash_the_reader(document):
    """Random values of random types anywhere in the real document: converted or refused with
    reasons, never an exception of another kind."""
    chaos = random.Random(20_260_101)
    junk = [None, True, -1, 10**30, 1.5, "", "x" * 50, "$node", [], {}, [1, "a"], {"a": None}]
    paths = []

    def walk(value, path):
        paths.append(path)
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*path, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, (*path, index))

    walk(document, ())
    for _ in range(100):
        mangled = copy.deepcopy(document)
        for path in chaos.sample(paths[1:], 8):
            target = mangled
            try:
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = chaos.choice(junk)
            except (KeyError, IndexError, TypeError):
                continue
        try:
            converted = grafana_import.convert(mangled, schema="acme")
        except grafana_import.GrafanaError:
            continue
        for panel in converted.panels:
            assert len(panel["title"]) <= 200 and len(panel["promql"]) <= 4000


# --- importing: page, API, database ------------------------------------------------------------


def test_the_page_imports_the_dashboard_and_reports_what_did_not_come_over(client_for, acme):
    from tenants.models import AuditEvent

    operator = client_for("acme", "operator")
    upload = io.BytesIO(DATA.read_bytes())
    upload.name = "node-exporter.json"
    response = operator.post("/dashboards/import/", {"file": upload})
    assert response.status_code == 302, response.content.decode()[-2000:]
    report = operator.get(response["Location"]).content.decode()
    assert f"{IMPORTED} panels came over, {SKIPPED} did not from Grafana." in report
    assert f"Left out ({SKIPPED})" in report
    for title, reason in SKIPPED_REASONS.items():
        item = f"<li><strong>{title}</strong>: {reason}".replace("'", "&#x27;")
        assert item in report, title
    assert "$node (query variable) became every value" in report
    with tenant_context(acme):
        dashboard = Dashboard.objects.get(title="Node Exporter Host Overview")
        panels = list(dashboard.panels.all())
        assert len(panels) == IMPORTED
        assert [p.position for p in panels] == list(range(IMPORTED))
        assert {p.source for p in panels} == {"prometheus"}
        busy = next(p for p in panels if p.title == "CPU Busy")
        assert (busy.kind, busy.unit, busy.thresholds, busy.x, busy.w) == (
            "gauge",
            "%",
            [85.0, 95.0],
            0,
            2,
        )
        for panel in panels:
            assert 'tenant="acme"' in scope_to_tenant(panel.promql, "acme")
    event = AuditEvent.objects.get(
        tenant=acme, action="dashboard.imported", object_id=str(dashboard.public_id)
    )
    assert event.after["origin"] == "grafana" and event.after["panels"] == IMPORTED
    assert {s["panel"] for s in event.after["skipped"]} == set(SKIPPED_REASONS)
    page = operator.get(f"/dashboards/{dashboard.public_id}/")
    assert page.status_code == 200
    assert len(re.findall(r'class="card panel ', page.content.decode())) == IMPORTED


def test_the_api_imports_grafanas_api_export_with_the_report(client_for, acme, document):
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    wrapped = {"dashboard": document, "meta": {"type": "db", "slug": "node"}}
    response = send_json(
        client_for("acme"),
        "post",
        "/api/v1/dashboards/import/",
        {"document": wrapped, "title": "Hosts"},
        **bearer(token),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["origin"] == "grafana" and body["dashboard"]["title"] == "Hosts"
    assert len(body["imported"]) == IMPORTED
    assert {s["panel"]: s["reason"][:20] for s in body["skipped"]} == {
        t: r[:20] for t, r in SKIPPED_REASONS.items()
    }
    assert "$__rate_interval was fixed at 5m" in body["dashboard_notes"]
    with tenant_context(acme):
        assert (
            Panel.objects.filter(dashboard__public_id=body["dashboard"]["id"]).count() == IMPORTED
        )


def test_the_imported_dashboard_exports_and_imports_again_unchanged(client_for, acme, document):
    from dashboards import services
    from tenants import audit

    plan = portable.read_document(copy.deepcopy(document), schema="acme")
    actor = audit.Actor.system("grafana tests")
    with tenant_context(acme):
        first = services.import_dashboard(plan=plan, actor=actor)
        exported = portable.export_dashboard(first)
        again = services.import_dashboard(
            plan=portable.read_document(exported, schema="acme"), actor=actor
        )
        assert portable.export_dashboard(again) == exported
    assert len(exported["panels"]) == IMPORTED


def test_a_grafana_document_another_tenant_cannot_use_to_reach_acme(client_for, acme, globex):
    """Queries naming the tenant label are left out, whoever imports them."""
    hostile = _grafana(
        [
            _timeseries("Theirs", 'up{tenant="acme"}'),
            _timeseries("Sneaky", 'up{__name__="up",tenant=~"ac.*"}'),
            _timeseries("Own", "sum(up)"),
        ]
    )
    operator = client_for("globex", "operator")
    response = operator.post("/dashboards/import/", {"text": json.dumps(hostile)})
    assert response.status_code == 302
    report = operator.get(response["Location"]).content.decode()
    assert "1 panel came over, 2 did not" in report
    with tenant_context(globex):
        [panel] = Panel.objects.filter(dashboard__title="Small")
        assert panel.title == "Own"


def test_a_long_name_before_a_string_is_read_in_linear_time():
    # Under the length limit the matcher is still found right before its string.
    expr = "up{" + "a" * 3000 + '="$node"}'
    # A query variable in a matcher matches every value: the matcher was found.
    assert resolve_expression(expr, templating(QUERY_VAR)) == "up{" + "a" * 3000 + '=~".*"}'


def test_what_the_report_quotes_from_the_document_is_tidied_and_short():
    hostile = "\u202e" + "x" * 2000 + "\x00"
    document = _grafana(
        [
            _timeseries("Broken", expr='up{a="' + hostile + '"} +'),
            _timeseries(f"Kept {hostile}", expr='up{instance="$node"}'),
        ],
        templating={"list": [{**QUERY_VAR, "type": "query" + hostile}]},
    )
    converted = grafana_import.convert(document, schema="acme")
    said = [why for _, why in converted.skipped] + [note for _, note in converted.notes]
    said += converted.dashboard_notes + [title for title, _ in converted.skipped]
    assert said
    for text in said:
        assert len(text) <= grafana_import.NOTE_MAX
        assert "\x00" not in text and "\u202e" not in text
