"""Dashboard pages: default dashboards, panels drawn from server-built figures, range in the URL,
CSV per panel, panel editing through the services, isolation."""

from __future__ import annotations

import json
import re
import time

import pytest
from django_tenants.utils import tenant_context

from dashboards.models import Dashboard, Panel
from tests.factories import ApiTokenFactory
from tests.helpers import bearer, send_json

PAYLOADS = re.compile(r'<script id="dashboard-panels" type="application/json">(.*?)</script>', re.S)


def payloads_of(response) -> list[dict]:
    match = PAYLOADS.search(response.content.decode())
    assert match, "the page carries no panel data"
    return json.loads(match.group(1))


def dashboard_of(tenant, title: str) -> Dashboard:
    with tenant_context(tenant):
        return Dashboard.objects.get(title=title)


def test_new_tenants_get_the_three_default_dashboards_with_panels(acme):
    with tenant_context(acme):
        titles = set(Dashboard.objects.values_list("title", flat=True))
        assert {"Executive overview", "Operations", "Security"} <= titles
        assert Dashboard.objects.get(pk=1).title == "Executive overview"
        for title in ("Executive overview", "Operations", "Security"):
            assert Panel.objects.filter(dashboard__title=title).count() >= 6


def test_the_executive_sees_every_panel_drawn_with_the_range_kept(client_for, acme):
    executive = client_for("acme", "executive")
    dashboard = dashboard_of(acme, "Executive overview")
    response = executive.get(f"/dashboards/{dashboard.public_id}/?range=7d")
    assert response.status_code == 200
    payloads = payloads_of(response)
    with tenant_context(acme):
        assert len(payloads) == dashboard.panels.count()
    assert all("figure" in p and "error" not in p for p in payloads), payloads
    kinds = {p["kind"] for p in payloads}
    assert {"stat", "timeseries", "gauge", "bar"} <= kinds
    page = response.content.decode()
    assert '<option value="7d" selected>' in page
    assert "range=7d" in page  # CSV links keep the range
    assert "vendor/plotly/plotly.min.js" in page and "js/dashboard.js" in page
    assert "<script>" not in page  # nothing inline (CSP)
    assert "Add a panel" not in page  # executives do not edit


def test_samples_pushed_show_in_the_figure_and_the_csv(client_for, acme):
    _, secret = ApiTokenFactory(tenant=acme, scopes=["ingest"])
    ingest = send_json(
        client_for("acme"),
        "post",
        "/api/v1/metrics",
        {
            "samples": [
                {"name": "revenue_eur", "labels": {"channel": "web"}, "value": 1234.5},
                {
                    "name": "revenue_eur",
                    "labels": {"channel": "shop"},
                    "value": 100,
                    "timestamp": time.time() - 60,
                },
            ]
        },
        **bearer(secret),
    )
    assert ingest.status_code == 202, ingest.content
    executive = client_for("acme", "executive")
    dashboard = dashboard_of(acme, "Executive overview")
    payloads = payloads_of(executive.get(f"/dashboards/{dashboard.public_id}/?range=1h"))
    revenue = next(p for p in payloads if p["title"] == "Revenue per minute")
    assert 1234.5 in revenue["figure"]["data"][0]["y"]
    stat = next(p for p in payloads if p["title"] == "Revenue")
    assert stat["figure"]["data"][0]["value"] >= 1334.5
    csv = executive.get(revenue["csv"] + "?range=1h")
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0] == "time,series,value"
    assert any(line.endswith(",1234.5") for line in lines[1:])


def test_another_tenants_member_gets_nothing_of_the_dashboard(client_for, acme):
    dashboard = dashboard_of(acme, "Executive overview")
    with tenant_context(acme):
        panel = dashboard.panels.first()
    outsider = client_for("globex", "admin")
    assert outsider.get(f"/dashboards/{dashboard.public_id}/").status_code == 404
    assert (
        outsider.get(f"/dashboards/{dashboard.public_id}/panels/{panel.public_id}.csv").status_code
        == 404
    )
    # acme's page on acme's host, by globex's admin: not a member there.
    stranger = client_for("acme", email="admin@globex.example")
    assert stranger.get(f"/dashboards/{dashboard.public_id}/").status_code == 403


def test_operators_add_edit_and_delete_panels(client_for, acme):
    operator = client_for("acme", "operator")
    dashboard = dashboard_of(acme, "Operations")
    form = {
        "title": "Checkout latency",
        "kind": "timeseries",
        "source": "builtin",
        "metric": "http_request_duration_ms",
        "aggregation": "p95",
        "label_filter": "endpoint=/checkout",
        "thresholds": "300, 800",
        "unit": "ms",
        "x": 0,
        "y": 12,
        "w": 12,
        "h": 4,
        "position": 20,
    }
    created = operator.post(f"/dashboards/{dashboard.public_id}/panels/new/", form)
    assert created.status_code == 302, created.content.decode()[-2000:]
    with tenant_context(acme):
        panel = Panel.objects.get(dashboard=dashboard, title="Checkout latency")
        assert panel.label_filter == {"endpoint": "/checkout"}
        assert panel.thresholds == [300.0, 800.0]
    edit_url = f"/dashboards/{dashboard.public_id}/panels/{panel.public_id}/"
    edited = operator.post(edit_url, {**form, "kind": "bar", "w": 6})
    assert edited.status_code == 302
    with tenant_context(acme):
        panel.refresh_from_db()
        assert (panel.kind, panel.w) == ("bar", 6)
    deleted = operator.post(edit_url + "delete/")
    assert deleted.status_code == 302
    with tenant_context(acme):
        assert not Panel.objects.filter(pk=panel.pk).exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"metric": "nobody_declared_this"}, "Metric", "not in the metric catalog"),
        ({"thresholds": "9, 1"}, "Thresholds", "increasing order"),
        ({"w": 13}, "Width", "less than or equal to 12"),
        ({"label_filter": "endpoint"}, "Label filter", "label=value"),
        (
            {"source": "prometheus", "metric": "", "promql": 'up{tenant="globex"}'},
            "PromQL",
            "",
        ),
        ({"source": "prometheus", "metric": "", "promql": "rate(x[5m"}, "PromQL", ""),
    ],
)
def test_bad_panel_input_is_named_and_nothing_is_written(client_for, acme, change, field, message):
    operator = client_for("acme", "operator")
    dashboard = dashboard_of(acme, "Operations")
    with tenant_context(acme):
        before = Panel.objects.count()
    form = {
        "title": "Bad",
        "kind": "timeseries",
        "source": "builtin",
        "metric": "cpu_usage_ratio",
        "aggregation": "avg",
        "x": 0,
        "y": 0,
        "w": 6,
        "h": 4,
        "position": 0,
        **change,
    }
    response = operator.post(f"/dashboards/{dashboard.public_id}/panels/new/", form)
    assert response.status_code == 400
    page = response.content.decode()
    assert f"{field}: " in page and message in page
    with tenant_context(acme):
        assert Panel.objects.count() == before


def test_executives_cannot_change_panels(client_for, acme):
    executive = client_for("acme", "executive")
    dashboard = dashboard_of(acme, "Executive overview")
    with tenant_context(acme):
        panel = dashboard.panels.first()
    base = f"/dashboards/{dashboard.public_id}/panels/"
    assert executive.post(base + "new/", {"title": "x"}).status_code == 403
    assert executive.post(f"{base}{panel.public_id}/delete/").status_code == 403
    with tenant_context(acme):
        assert Panel.objects.filter(pk=panel.pk).exists()


def test_a_prometheus_panel_without_prometheus_says_so(client_for, acme, settings):
    settings.PROMETHEUS_URL = ""
    operator = client_for("acme", "operator")
    dashboard = dashboard_of(acme, "Operations")
    created = operator.post(
        f"/dashboards/{dashboard.public_id}/panels/new/",
        {
            "title": "Up",
            "kind": "timeseries",
            "source": "prometheus",
            "promql": "sum(up)",
            "x": 0,
            "y": 20,
            "w": 6,
            "h": 4,
            "position": 30,
        },
    )
    assert created.status_code == 302
    payloads = payloads_of(operator.get(f"/dashboards/{dashboard.public_id}/"))
    up = next(p for p in payloads if p["title"] == "Up")
    assert up["error"] == "Prometheus is not connected."


def test_operators_declare_and_delete_catalog_metrics_on_the_page(client_for, acme):
    from dashboards.models import MetricDefinition

    operator = client_for("acme", "operator")
    page = operator.get("/dashboards/metrics/")
    assert page.status_code == 200
    assert "revenue_eur" in page.content.decode()
    form = {
        "name": "refunds_eur",
        "type": "gauge",
        "category": "business",
        "unit": "EUR",
        "labels": "channel, region",
        "cardinality_limit": "200",
        "help": "Refunds per minute.",
    }
    assert operator.post("/dashboards/metrics/", form).status_code == 302
    with tenant_context(acme):
        metric = MetricDefinition.objects.get(name="refunds_eur")
        assert metric.labels == ["channel", "region"]
    again = operator.post("/dashboards/metrics/", form)
    assert again.status_code == 400
    assert "Name: refunds_eur is already in the catalog." in again.content.decode()
    bad = operator.post("/dashboards/metrics/", {**form, "name": "x", "labels": "tenant"})
    assert bad.status_code == 400
    assert "Allowed labels: tenant is reserved" in bad.content.decode()
    executive = client_for("acme", "executive")
    assert executive.post(f"/dashboards/metrics/{metric.public_id}/delete/").status_code == 403
    deleted = operator.post(f"/dashboards/metrics/{metric.public_id}/delete/")
    assert deleted.status_code == 302
    with tenant_context(acme):
        assert not MetricDefinition.objects.filter(name="refunds_eur").exists()


def test_the_tenant_admin_site_manages_the_catalog_through_the_services(client_for, acme):
    from dashboards.models import MetricDefinition
    from tenants.models import AuditEvent

    admin = client_for("acme", "admin")
    assert admin.get("/admin/dashboards/metricdefinition/").status_code == 200
    assert admin.get("/admin/dashboards/panel/").status_code == 200
    form = {
        "name": "chargebacks_eur",
        "type": "gauge",
        "unit": "EUR",
        "help": "",
        "labels": '["region"]',
        "category": "business",
        "cardinality_limit": "10",
    }
    created = admin.post("/admin/dashboards/metricdefinition/add/", form)
    assert created.status_code == 302
    with tenant_context(acme):
        assert MetricDefinition.objects.get(name="chargebacks_eur").labels == ["region"]
    assert AuditEvent.objects.filter(tenant=acme, action="metric.created").exists()
    refused = admin.post(
        "/admin/dashboards/metricdefinition/add/", {**form, "name": "x", "labels": '["tenant"]'}
    )
    assert refused.status_code == 302
    with tenant_context(acme):
        assert not MetricDefinition.objects.filter(name="x").exists()


# --- deleting and arranging ------------------------------------------------------------------


def _new_dashboard(tenant, title: str, panels: int = 3) -> Dashboard:
    from tests.factories import dashboard_with_panels

    specs = [
        {
            "title": f"Panel {index}",
            "kind": "timeseries",
            "source": "builtin",
            "metric": "cpu_usage_ratio",
            "aggregation": "avg",
            "x": (index % 2) * 6,
            "y": (index // 2) * 4,
        }
        for index in range(panels)
    ]
    return dashboard_with_panels(tenant, title, specs)


def test_operators_delete_a_dashboard_with_its_panels_audited(client_for, acme):
    from tenants.models import AuditEvent

    dashboard = _new_dashboard(acme, "To be deleted")
    operator = client_for("acme", "operator")
    page = operator.get(f"/dashboards/{dashboard.public_id}/").content.decode()
    assert f'action="/dashboards/{dashboard.public_id}/delete/"' in page
    assert 'data-confirm="Delete the dashboard To be deleted and its 3 panels?' in page
    executive = client_for("acme", "executive")
    assert executive.post(f"/dashboards/{dashboard.public_id}/delete/").status_code == 403
    assert (
        "Delete dashboard"
        not in executive.get(f"/dashboards/{dashboard.public_id}/").content.decode()
    )
    assert operator.get(f"/dashboards/{dashboard.public_id}/delete/").status_code == 405
    deleted = operator.post(f"/dashboards/{dashboard.public_id}/delete/", follow=True)
    assert deleted.redirect_chain[-1][0] == "/dashboards/"
    assert "Dashboard To be deleted deleted." in deleted.content.decode()
    with tenant_context(acme):
        assert not Dashboard.objects.filter(pk=dashboard.pk).exists()
        assert not Panel.objects.filter(dashboard_id=dashboard.pk).exists()
    # Committed tests elsewhere delete dashboards too: this one's event, by its id.
    event = AuditEvent.objects.get(
        tenant=acme, action="dashboard.deleted", object_id=str(dashboard.public_id)
    )
    assert [p["title"] for p in event.before["panels"]] == ["Panel 0", "Panel 1", "Panel 2"]
    assert operator.post(f"/dashboards/{dashboard.public_id}/delete/").status_code == 404


def test_another_tenant_cannot_delete_or_arrange_a_dashboard(client_for, acme):
    dashboard = _new_dashboard(acme, "Kept", panels=1)
    outsider = client_for("globex", "admin")
    assert outsider.post(f"/dashboards/{dashboard.public_id}/delete/").status_code == 404
    assert (
        outsider.post(f"/dashboards/{dashboard.public_id}/layout/", {"layout": "[]"}).status_code
        == 404
    )
    with tenant_context(acme):
        assert Dashboard.objects.filter(pk=dashboard.pk).exists()


def test_the_api_deletes_a_dashboard_with_a_write_token(client_for, acme, globex):
    from tests.factories import ApiTokenFactory

    dashboard = _new_dashboard(acme, "API delete", panels=1)
    _, reader = ApiTokenFactory(tenant=acme, scopes=["read"])
    _, writer = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    _, foreign = ApiTokenFactory(tenant=globex, scopes=["read", "write"])
    api = client_for("acme")
    path = f"/api/v1/dashboards/{dashboard.public_id}/"
    assert api.delete(path, **bearer(reader)).status_code == 403
    assert client_for("globex").delete(path, **bearer(foreign)).status_code == 404
    assert api.delete(path, **bearer(writer)).status_code == 204
    assert api.delete(path, **bearer(writer)).status_code == 404
    with tenant_context(acme):
        assert not Dashboard.objects.filter(pk=dashboard.pk).exists()


def _cells(tenant, dashboard) -> list[tuple]:
    with tenant_context(tenant):
        return [
            (p.title, p.x, p.y, p.w, p.h, p.position)
            for p in Panel.objects.filter(dashboard=dashboard).order_by("position")
        ]


def _ids(tenant, dashboard) -> dict[str, str]:
    with tenant_context(tenant):
        return {p.title: str(p.public_id) for p in Panel.objects.filter(dashboard=dashboard)}


def test_operators_arrange_panels_and_the_page_draws_the_new_order(client_for, acme):
    from tenants.models import AuditEvent

    dashboard = _new_dashboard(acme, "Arranged")
    ids = _ids(acme, dashboard)
    operator = client_for("acme", "operator")
    page = operator.get(f"/dashboards/{dashboard.public_id}/").content.decode()
    assert "js/dashboard-arrange.js" in page and 'id="arrange-form"' in page
    assert 'data-arrange="earlier"' in page and 'data-arrange="drag"' in page
    layout = [
        {"panel": ids["Panel 2"], "x": 0, "y": 0, "w": 12, "h": 3},
        {"panel": ids["Panel 0"], "x": 0, "y": 3, "w": 4, "h": 5},
        {"panel": ids["Panel 1"], "x": 4, "y": 3, "w": 8, "h": 5},
    ]
    saved = operator.post(
        f"/dashboards/{dashboard.public_id}/layout/", {"layout": json.dumps(layout)}
    )
    assert saved.status_code == 302
    assert _cells(acme, dashboard) == [
        ("Panel 2", 0, 0, 12, 3, 0),
        ("Panel 0", 0, 3, 4, 5, 1),
        ("Panel 1", 4, 3, 8, 5, 2),
    ]
    page = operator.get(f"/dashboards/{dashboard.public_id}/").content.decode()
    assert page.index(f'id="panel-{ids["Panel 2"]}"') < page.index(f'id="panel-{ids["Panel 0"]}"')
    assert f'class="card panel x-4 w-8 h-5" id="panel-{ids["Panel 1"]}"' in page
    arranged = AuditEvent.objects.filter(
        tenant=acme, action="dashboard.arranged", object_id=str(dashboard.public_id)
    )
    event = arranged.latest("seq")
    assert event.after["panels"][ids["Panel 2"]]["position"] == 0
    assert event.before["panels"][ids["Panel 2"]]["position"] == 2
    # The same layout again changes nothing and records nothing.
    operator.post(f"/dashboards/{dashboard.public_id}/layout/", {"layout": json.dumps(layout)})
    assert arranged.count() == 1


def test_executives_cannot_arrange(client_for, acme):
    dashboard = _new_dashboard(acme, "Not theirs", panels=1)
    executive = client_for("acme", "executive")
    page = executive.get(f"/dashboards/{dashboard.public_id}/").content.decode()
    assert "dashboard-arrange.js" not in page and "arrange-form" not in page
    ids = _ids(acme, dashboard)
    layout = json.dumps([{"panel": ids["Panel 0"], "x": 0, "y": 0, "w": 12, "h": 4}])
    assert (
        executive.post(f"/dashboards/{dashboard.public_id}/layout/", {"layout": layout}).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("not json", "Not valid JSON."),
        ("{}", "Send a list of {panel, x, y, w, h} objects."),
        ('[{"panel": "P0", "x": 8, "y": 0, "w": 6, "h": 4}]', "x + w must be at most 12."),
        ('[{"panel": "P0", "x": -1, "y": 0, "w": 6, "h": 4}]', "x must be between 0 and 11."),
        ('[{"panel": "P0", "x": 0, "y": 0, "w": 6, "h": 25}]', "h must be between 1 and 24."),
        ('[{"panel": "P0", "x": "0", "y": 0, "w": 6, "h": 4}]', "x must be a whole number."),
        ('[{"panel": "P0", "x": true, "y": 0, "w": 6, "h": 4}]', "x must be a whole number."),
        ('[{"panel": "P0", "x": 1.5, "y": 0, "w": 6, "h": 4}]', "x must be a whole number."),
        ('[{"panel": "P0", "y": 0, "w": 6, "h": 4}]', "x missing."),
        ('[{"panel": 7, "x": 0, "y": 0, "w": 6, "h": 4}]', "panel must be the id"),
        ('[{"panel": "P0\\u0000", "x": 0, "y": 0, "w": 6, "h": 4}]', "no panel with this id"),
        ('[{"panel": "OTHER", "x": 0, "y": 0, "w": 6, "h": 4}]', "no panel with this id"),
        ('[{"panel": "FOREIGN", "x": 0, "y": 0, "w": 6, "h": 4}]', "no panel with this id"),
        (
            '[{"panel": "P0", "x": 0, "y": 0, "w": 6, "h": 4},'
            ' {"panel": "P0", "x": 6, "y": 0, "w": 6, "h": 4}]',
            "Panel 0 is named twice.",
        ),
        ("[]", "Name every panel once; 2 left out: Panel 0, Panel 1."),
        ("[" + "[" * 5000 + "]" * 5001, "Not valid JSON."),
        ("[" + " " * 200_001 + "]", "Longer than 200000 characters."),
    ],
)
def test_a_bad_layout_is_refused_by_name_and_nothing_moves(
    client_for, acme, globex, layout, message
):
    dashboard = _new_dashboard(acme, "Guarded", panels=2)
    other = _new_dashboard(acme, "Other", panels=1)
    foreign = _new_dashboard(globex, "Foreign", panels=1)
    ids = _ids(acme, dashboard)
    layout = (
        layout.replace("P0", ids["Panel 0"])
        .replace("OTHER", _ids(acme, other)["Panel 0"])
        .replace("FOREIGN", _ids(globex, foreign)["Panel 0"])
    )
    before = _cells(acme, dashboard)
    operator = client_for("acme", "operator")
    response = operator.post(f"/dashboards/{dashboard.public_id}/layout/", {"layout": layout})
    assert response.status_code == 400
    page = response.content.decode()
    assert "The layout was not saved" in page
    assert message in page.replace("&#x27;", "'"), page[page.index("layout-errors") :][:600]
    assert _cells(acme, dashboard) == before


def test_the_api_arranges_panels(client_for, acme):
    from tests.factories import ApiTokenFactory

    dashboard = _new_dashboard(acme, "API layout", panels=2)
    ids = _ids(acme, dashboard)
    _, writer = ApiTokenFactory(tenant=acme, scopes=["read", "write"])
    api = client_for("acme")
    path = f"/api/v1/dashboards/{dashboard.public_id}/layout/"
    body = {
        "layout": [
            {"panel": ids["Panel 0"], "x": 6, "y": 0, "w": 6, "h": 2},
            {"panel": ids["Panel 1"], "x": 0, "y": 0, "w": 6, "h": 2},
        ]
    }
    response = send_json(api, "put", path, body, **bearer(writer))
    assert response.status_code == 200, response.content
    assert [cell["panel"] for cell in response.json()["layout"]] == [ids["Panel 1"], ids["Panel 0"]]
    assert _cells(acme, dashboard) == [("Panel 1", 0, 0, 6, 2, 0), ("Panel 0", 6, 0, 6, 2, 1)]
    bad = send_json(
        api, "put", path, {"layout": [{**body["layout"][0], "w": "6"}]}, **bearer(writer)
    )
    assert bad.status_code == 400
    assert bad.json() == {"layout": ["Item 0: w must be a whole number."]}
    assert send_json(api, "put", path, [], **bearer(writer)).status_code == 400


def test_the_tenant_admin_site_deletes_a_dashboard_through_the_service(client_for, acme):
    from tenants.models import AuditEvent

    dashboard = _new_dashboard(acme, "Admin removes", panels=2)
    admin = client_for("acme", "admin")
    path = f"/admin/dashboards/dashboard/{dashboard.pk}/delete/"
    assert admin.get(path).status_code == 200
    # No bulk action: it would skip the service.
    changelist = admin.get("/admin/dashboards/dashboard/").content.decode()
    assert "delete_selected" not in changelist
    assert admin.post(path, {"post": "yes"}).status_code == 302
    with tenant_context(acme):
        assert not Dashboard.objects.filter(pk=dashboard.pk).exists()
    event = AuditEvent.objects.get(
        tenant=acme, action="dashboard.deleted", object_id=str(dashboard.public_id)
    )
    assert event.object_repr == "Admin removes" and len(event.before["panels"]) == 2
    executive = client_for("acme", "executive")
    other = _new_dashboard(acme, "Still here", panels=0)
    assert executive.post(
        f"/admin/dashboards/dashboard/{other.pk}/delete/", {"post": "yes"}
    ).status_code in (302, 403)
    with tenant_context(acme):
        assert Dashboard.objects.filter(pk=other.pk).exists()
