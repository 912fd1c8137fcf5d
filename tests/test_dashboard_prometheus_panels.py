"""The dashboard page asks Prometheus for its panels at once, each scoped to the tenant, and
shows a panel whose query failed beside the others that worked."""

from __future__ import annotations

import json
import re
import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tenants import audit
from tests.factories import dashboard_with_panels

ACTOR = audit.Actor.system("prometheus panel tests")


class Stub:
    """Answers range queries; the first `together` of them wait for each other, so a page that
    asked one after another would see the first one fail."""

    def __init__(self, together: int) -> None:
        self.barrier = threading.Barrier(together, timeout=10)
        self.queries: list[str] = []
        self.lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        query = request.values.get("query", "")
        with self.lock:
            self.queries.append(query)
            waiting = len(self.queries) <= self.barrier.parties
        if waiting:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                return Response("asked one at a time", status=500)
        if "broken" in query:
            body = {"status": "error", "errorType": "bad_data", "error": "parse error: broken"}
            return Response(json.dumps(body), status=400, content_type="application/json")
        start = float(request.values["start"])
        result = [{"metric": {"tenant": "acme", "job": "shop"}, "values": [[start, "1.5"]]}]
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def prometheus(settings):
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    settings.PROMETHEUS_URL = server.url_for("/").rstrip("/")
    try:
        yield server
    finally:
        server.stop()


def test_prometheus_panels_are_asked_at_once_and_each_is_scoped(acme, prometheus, client_for):
    stub = Stub(together=3)
    prometheus.expect_request(re.compile("/api/v1/query_range")).respond_with_handler(stub.handle)
    specs = [
        {"title": f"Panel {n}", "kind": "timeseries", "source": "prometheus", "promql": expr}
        for n, expr in enumerate(("up", "rate(orders_total[5m])", "broken_metric > 1"))
    ]
    dashboard = dashboard_with_panels(acme, "Shop (Prometheus)", specs, actor=ACTOR)
    response = client_for("acme", "executive").get(f"/dashboards/{dashboard.public_id}/")
    assert response.status_code == 200
    payloads = {p["title"]: p for p in response.context["payloads"]}
    assert [p["title"] for p in response.context["payloads"]] == ["Panel 0", "Panel 1", "Panel 2"]
    assert "figure" in payloads["Panel 0"], payloads["Panel 0"].get("error")
    assert "figure" in payloads["Panel 1"], payloads["Panel 1"].get("error")
    assert "parse error" in payloads["Panel 2"]["error"]
    assert sorted(stub.queries) == sorted(
        [
            'broken_metric{tenant="acme"} > 1',
            'rate(orders_total{tenant="acme"}[5m])',
            'up{tenant="acme"}',
        ]
    )
