"""Dashboards as JSON: export (no ids of the tenant), import on the page and through the API,
a round trip that keeps every setting, and bad documents refused by panel and field with
nothing written."""

from __future__ import annotations

import copy
import io
import json
import re

import pytest
from django_tenants.utils import tenant_context

from dashboards import portable
from dashboards.models import Dashboard, Panel
from tenants import audit
from tests.factories import ApiTokenFactory, dashboard_with_panels
from tests.helpers import bearer, send_json

ACTOR = audit.Actor.system("portability tests")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SETTINGS = ("kind", "source", "metric", "aggregation", "label_filter", "promql", "unit")
LAYOUT = ("thresholds", "legend", "x", "y", "w", "h", "position")


def make_dashboard(tenant) -> Dashboard:
    """Every panel kind, both sources, filters, thresholds, a legend and a non-trivial layout."""
    panels = [
        dict(
            title="Revenue",
            kind="stat",
            source="builtin",
            metric="revenue_eur",
            aggregation="sum",
            label_filter={"channel": "web"},
            unit="EUR",
            thresholds=[100.0, 1000.0],
            x=0,
            y=0,
            w=3,
            h=2,
        ),
        dict(
            title="Latency p95",
            kind="timeseries",
            source="builtin",
            metric="http_request_duration_ms",
            aggregation="p95",
            unit="ms",
            x=3,
            y=0,
            w=9,
            h=4,
        ),
        dict(
            title="Errors by class",
            kind="bar",
            source="prometheus",
            promql='sum by (code) (rate(http_requests_total{code=~"5.."}[5m]))',
            legend="{{code}}",
            unit="req/s",
            x=0,
            y=4,
            w=6,
            h=4,
        ),
        dict(
            title="CPU",
            kind="gauge",
            source="prometheus",
            promql="avg(1 - rate(node_cpu_seconds_total{mode='idle'}[5m])) * 100",
            unit="%",
            thresholds=[70.0, 90.0],
            x=6,
            y=4,
            w=3,
            h=4,
        ),
        dict(
            title="Targets",
            kind="table",
            source="prometheus",
            promql="up",
            x=9,
            y=4,
            w=3,
            h=4,
        ),
    ]
    return dashboard_with_panels(
        tenant, "Checkout “health” ✓", panels, description="Line one\nline two", actor=ACTOR
    )


def settings_of(tenant, dashboard_id) -> tuple:
    with tenant_context(tenant):
        dashboard = Dashboard.objects.get(public_id=dashboard_id)
        panels = [
            tuple(getattr(p, name) for name in ("title", *SETTINGS, *LAYOUT))
            for p in dashboard.panels.all()
        ]
        return dashboard.title, dashboard.description, panels


def counts(tenant) -> tuple[int, int]:
    with tenant_context(tenant):
        return Dashboard.objects.count(), Panel.objects.count()


# --- export ------------------------------------------------------------------------------------


def test_the_export_holds_every_setting_and_no_id_of_the_tenant(client_for, acme):
    dashboard = make_dashboard(acme)
    operator = client_for("acme", "operator")
    response = operator.get(f"/dashboards/{dashboard.public_id}/export.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="checkout-health.json"'
    text = response.content.decode()
    assert not UUID.search(text), "the export names an id of this tenant"
    assert "acme" not in text
    document = json.loads(text)
    assert document["format"] == "monitoring-portal/dashboard" and document["version"] == 1
    assert document["title"] == "Checkout “health” ✓"
    assert document["description"] == "Line one\nline two"
    assert [p["title"] for p in document["panels"]] == [
        "Revenue",
        "Latency p95",
        "Errors by class",
        "CPU",
        "Targets",
    ]
    revenue = document["panels"][0]
    assert revenue == {
        "title": "Revenue",
        "kind": "stat",
        "source": "builtin",
        "metric": "revenue_eur",
        "aggregation": "sum",
        "label_filter": {"channel": "web"},
        "promql": "",
        "unit": "EUR",
        "thresholds": [100.0, 1000.0],
        "legend": "",
        "layout": {"x": 0, "y": 0, "w": 3, "h": 2},
    }
    # Stored as written: the query is scoped to whichever tenant runs it.
    assert document["panels"][2]["promql"].startswith("sum by (code)")
    assert "tenant" not in document["panels"][2]["promql"]
    # Anyone who sees the dashboard may take it away; the API gives the same document.
    executive = client_for("acme", "executive")
    assert executive.get(f"/dashboards/{dashboard.public_id}/export.json").status_code == 200
    _, reader = ApiTokenFactory(tenant=acme, scopes=["read"])
    api = client_for("acme").get(
        f"/api/v1/dashboards/{dashboard.public_id}/export/", **bearer(reader)
    )
    assert api.status_code == 200 and api.json() == document


def test_another_tenant_cannot_export(client_for, acme, globex):
    dashboard = make_dashboard(acme)
    outsider = client_for("globex", "admin")
    assert outsider.get(f"/dashboards/{dashboard.public_id}/export.json").status_code == 404
    _, token = ApiTokenFactory(tenant=globex, scopes=["read"])
    path = f"/api/v1/dashboards/{dashboard.public_id}/export/"
    assert client_for("globex").get(path, **bearer(token)).status_code == 404


# --- round trip ------------------------------------------------------------------------------


def test_export_then_import_on_the_page_makes_the_same_dashboard_in_another_tenant(
    client_for, acme, globex
):
    from tenants.models import AuditEvent

    dashboard = make_dashboard(acme)
    exported = client_for("acme", "operator").get(f"/dashboards/{dashboard.public_id}/export.json")
    upload = io.BytesIO(exported.content)
    upload.name = "checkout.json"
    operator = client_for("globex", "operator")
    assert operator.get("/dashboards/import/").status_code == 200
    response = operator.post("/dashboards/import/", {"file": upload, "text": "", "title": ""})
    assert response.status_code == 302, response.content.decode()[-1500:]
    report = operator.get(response["Location"])
    assert report.status_code == 200
    page = report.content.decode()
    assert "5 panels came over." in page
    with tenant_context(globex):
        copy_id = Dashboard.objects.get(title="Checkout “health” ✓").public_id
    assert f'href="/dashboards/{copy_id}/"' in page
    assert settings_of(globex, copy_id) == settings_of(acme, dashboard.public_id)
    # The trail of the importing tenant says where it came from and has each panel.
    event = AuditEvent.objects.get(
        tenant=globex, action="dashboard.imported", object_id=str(copy_id)
    )
    assert event.after["origin"] == "portal" and event.after["panels"] == 5
    assert (
        AuditEvent.objects.filter(
            tenant=globex, action="dashboard.panel_created", seq__gt=event.seq
        ).count()
        == 5
    )
    # Reloading the report imports nothing again; it is the importer's own.
    report_url = response["Location"]
    assert operator.get(report_url).status_code == 200
    with tenant_context(globex):
        assert Dashboard.objects.filter(title="Checkout “health” ✓").count() == 1
    assert client_for("globex", "admin").get(report_url).status_code == 404


def test_the_api_round_trip_with_a_new_title(client_for, acme):
    dashboard = make_dashboard(acme)
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    api = client_for("acme")
    document = api.get(f"/api/v1/dashboards/{dashboard.public_id}/export/", **bearer(token)).json()
    response = send_json(
        api,
        "post",
        "/api/v1/dashboards/import/",
        {"document": document, "title": "Copy"},
        **bearer(token),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["origin"] == "portal" and body["skipped"] == body["notes"] == []
    assert body["dashboard_notes"] == []
    assert [p["title"] for p in body["imported"]] == [p["title"] for p in document["panels"]]
    title, description, panels = settings_of(acme, body["dashboard"]["id"])
    assert (title, description) == ("Copy", "Line one\nline two")
    assert panels == settings_of(acme, dashboard.public_id)[2]


def test_a_read_token_and_an_executive_cannot_import(client_for, acme):
    document = _document(acme)
    _, reader = ApiTokenFactory(tenant=acme, scopes=["read"])
    before = counts(acme)
    response = send_json(
        client_for("acme"),
        "post",
        "/api/v1/dashboards/import/",
        {"document": document},
        **bearer(reader),
    )
    assert response.status_code == 403
    executive = client_for("acme", "executive")
    assert executive.get("/dashboards/import/").status_code == 403
    assert executive.post("/dashboards/import/", {"text": json.dumps(document)}).status_code == 403
    assert counts(acme) == before


# --- bad documents -----------------------------------------------------------------------------


def _document(acme) -> dict:
    dashboard = make_dashboard(acme)
    with tenant_context(acme):
        return portable.export_dashboard(dashboard)


def _spoil(document: dict, path: tuple, value) -> dict:
    spoiled = copy.deepcopy(document)
    target = spoiled
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return spoiled


BAD_DOCUMENTS = [
    # (where, value, message the answer holds)
    (("panels", 2, "promql"), 'up{tenant="globex"}', "Panel 3 “Errors by class”, promql:"),
    (("panels", 2, "promql"), "rate(x[5m", "Panel 3 “Errors by class”, promql:"),
    (("panels", 0, "metric"), "nobody_declared_this", "Panel 1 “Revenue”, metric:"),
    (("panels", 0, "kind"), "piechart", "Panel 1 “Revenue”, kind: Choose one of"),
    # A Cyrillic "а" in a kind is not the kind.
    (("panels", 0, "kind"), "stаt", "Panel 1 “Revenue”, kind: Choose one of"),
    (("panels", 1, "title"), "A\x00B", "Panel 2 “A B”, title: Remove the control character U+0000"),
    (("panels", 1, "title"), "T" * 201, "Panel 2 “TTTT"),
    (("panels", 1, "title"), 7, "Panel 2, title: Send a string."),
    (("panels", 1, "thresholds"), [9, 1], "Panel 2 “Latency p95”, thresholds: Give thresholds"),
    (("panels", 1, "thresholds"), ["9"], "Panel 2 “Latency p95”, thresholds: Send a list"),
    (("panels", 1, "thresholds"), [True], "Panel 2 “Latency p95”, thresholds: Send a list"),
    (("panels", 1, "layout"), {"x": 8, "y": 0, "w": 6, "h": 4}, "x + w must be at most 12"),
    (("panels", 1, "layout"), {"x": 0, "y": 0, "w": 6}, "Panel 2 “Latency p95”, layout: h"),
    (("panels", 1, "layout"), None, "layout: Send an object with x, y, w and h."),
    (("panels", 0, "label_filter"), {"channel": "\x00"}, "Panel 1 “Revenue”, label_filter:"),
    (("panels", 0, "label_filter"), {"tenant name": "x"}, "is not a label name"),
    (("panels", 0, "label_filter"), ["channel=web"], "label_filter: Send an object"),
    (("panels", 0, "colour"), "red", "Panel 1 “Revenue”, panel: Unknown fields: colour."),
    (("panels", 0, "source"), KeyError, "Panel 1 “Revenue”, source: This field is required."),
    (("panels", 4), "up", "Panel 5, panel: Send an object."),
    (("panels",), {"a": 1}, "panels: send a list of panels."),
    (("title",), "", "title: This field is required."),
    (("title",), "\u202eevil", "Remove the control character U+202E"),
    (("version",), 2, "version: this portal reads version 1."),
    (("version",), True, "version: this portal reads version 1."),
    (("format",), "grafana", "format: this portal reads 'monitoring-portal/dashboard'"),
    (("id",), 12, "Unknown fields: id."),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_DOCUMENTS)
def test_a_bad_document_is_refused_on_the_page_by_panel_and_field(
    client_for, acme, path, value, message
):
    document = _spoil(_document(acme), path, value)
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/dashboards/import/", {"text": json.dumps(document)}
    )
    assert response.status_code == 400
    page = response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert "Nothing was imported" in page
    assert message in page, page[page.find("import-errors") :][:1500]
    assert counts(acme) == before


@pytest.mark.parametrize(("path", "value", "message"), BAD_DOCUMENTS)
def test_a_bad_document_is_refused_by_the_api_by_panel_and_field(
    client_for, acme, path, value, message
):
    document = _spoil(_document(acme), path, value)
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    before = counts(acme)
    response = send_json(
        client_for("acme"),
        "post",
        "/api/v1/dashboards/import/",
        {"document": document},
        **bearer(token),
    )
    assert response.status_code == 400
    assert any(message in line for line in response.json()["document"]), response.json()
    assert counts(acme) == before


def test_every_bad_panel_is_named_at_once(client_for, acme):
    document = _document(acme)
    document["panels"][0]["kind"] = "pie"
    document["panels"][3]["promql"] = "sum("
    response = client_for("acme", "operator").post(
        "/dashboards/import/", {"text": json.dumps(document)}
    )
    page = response.content.decode()
    assert "Panel 1 “Revenue”, kind:" in page and "Panel 4 “CPU”, promql:" in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Choose a dashboard file or paste one."),
        ("{not json", "The document is not valid JSON"),
        ("[1, 2]", "The document must be a JSON object (a dashboard)."),
        ('{"title": "x"}', "neither a dashboard exported from this portal"),
        ('{"format": "monitoring-portal/dashboard", "x": NaN}', "NaN is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
        ('{"a":' * 70 + "1" + "}" * 70, "nests deeper than 64 levels"),
        ('{"title": "\\ud800"}', "unpaired surrogate"),
        ("{" + " " * (2 * 1024 * 1024) + "}", "The text is longer than 2 MB."),
    ],
)
def test_what_is_no_document_is_refused_on_the_page(client_for, acme, text, message):
    before = counts(acme)
    response = client_for("acme", "operator").post("/dashboards/import/", {"text": text})
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'"), message
    assert counts(acme) == before


def test_too_big_and_too_many_are_refused_with_the_limit(client_for, acme):
    document = _document(acme)
    operator = client_for("acme", "operator")
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    api = client_for("acme")
    before = counts(acme)
    many = {**document, "panels": [document["panels"][1]] * 501}
    page = operator.post("/dashboards/import/", {"text": json.dumps(many)})
    assert page.status_code == 400
    assert "panels: at most 500 panels (this has 501)." in page.content.decode()
    answer = send_json(
        api, "post", "/api/v1/dashboards/import/", {"document": many}, **bearer(token)
    )
    assert answer.status_code == 400
    assert answer.json() == {"document": ["panels: at most 500 panels (this has 501)."]}
    big = io.BytesIO(b" " * (2 * 1024 * 1024 + 1))
    big.name = "big.json"
    refused = operator.post("/dashboards/import/", {"file": big})
    assert refused.status_code == 400
    assert "The file is larger than 2 MB." in refused.content.decode()
    padded = {"document": {**document, "description": "x" * (2 * 1024 * 1024)}}
    answer = send_json(api, "post", "/api/v1/dashboards/import/", padded, **bearer(token))
    assert answer.status_code == 400
    assert answer.json() == {"detail": "The document is larger than 2 MB."}
    assert counts(acme) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "document"),
        ({"document": "text"}, "document"),
        ({"document": []}, "document"),
        ({"document": {"format": "monitoring-portal/dashboard"}, "title": 5}, "title"),
        ({"document": {"format": "monitoring-portal/dashboard"}, "title": None}, "title"),
    ],
)
def test_wrong_types_in_the_api_body_are_named(client_for, acme, body, field):
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    before = counts(acme)
    response = send_json(
        client_for("acme"), "post", "/api/v1/dashboards/import/", body, **bearer(token)
    )
    assert response.status_code == 400
    assert field in response.json()
    assert counts(acme) == before


def test_deep_json_in_the_api_body_is_a_400(client_for, acme):
    _, token = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    response = client_for("acme").post(
        "/api/v1/dashboards/import/",
        '{"document": ' + "[" * 50_000 + "]" * 50_000 + "}",
        content_type="application/json",
        **bearer(token),
    )
    assert response.status_code == 400
    assert "nests deeper than 64 levels" in response.json()["detail"]


def test_a_bad_title_override_is_named_and_nothing_written(client_for, acme):
    document = _document(acme)
    before = counts(acme)
    response = client_for("acme", "operator").post(
        "/dashboards/import/", {"text": json.dumps(document), "title": "x" * 201}
    )
    assert response.status_code == 400
    assert "Title (instead of the file&#x27;s): Use at most 200 characters" in (
        response.content.decode()
    )
    assert counts(acme) == before
