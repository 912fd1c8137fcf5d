"""Scoped PromQL evaluated by a real Prometheus holding two tenants' series: only acme's come back.

The exporter serves the same metric names for acme and globex (globex's values are far larger, so
a leak shows in any sum), a metric only globex has, and Prometheus' own scrape series (`up`, ...)
carry no tenant label at all. Every expression is scoped for acme with `scope_to_tenant`, exactly
as rules and dashboards are, and sent through the HTTP query API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from alerts.promql import scope_to_tenant
from tests import backend_servers
from tests.backend_servers import (
    AlertmanagerServer,
    MetricsExporter,
    PrometheusServer,
    Sample,
    promql_query,
    promql_query_data,
    running_exporter,
    running_prometheus,
)
from tests.conftest import wait_for
from tests.test_promql import SCOPED

# The harness's per-test fixtures, used at the end of this module.
prometheus_server = backend_servers.prometheus_server
alertmanager_server = backend_servers.alertmanager_server
metrics_exporter = backend_servers.metrics_exporter

pytestmark = pytest.mark.timeout(120)

SERIES = [
    ("http_requests_total", {"tenant": "acme", "job": "api", "instance": "a1", "code": "200"}, 10),
    ("http_requests_total", {"tenant": "acme", "job": "api", "instance": "a2", "code": "500"}, 20),
    ("queue_depth", {"tenant": "acme", "job": "worker", "instance": "a1"}, 3),
    (
        "http_requests_total",
        {"tenant": "globex", "job": "api", "instance": "g1", "code": "200"},
        1000,
    ),
    (
        "http_requests_total",
        {"tenant": "globex", "job": "x", "instance": "g2", "code": "500"},
        2000,
    ),
    ("queue_depth", {"tenant": "globex", "job": "worker", "instance": "g1"}, 300),
    ("payments_failed_total", {"tenant": "globex", "job": "billing", "instance": "g1"}, 5),
]
ACME_SERIES = [s for s in SERIES if s[1]["tenant"] == "acme"]
EXPORTED = '{__name__=~"http_requests_total|queue_depth|payments_failed_total"}'


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[PrometheusServer]:
    """One Prometheus for the module, its first scrape of both tenants' series already in."""
    with running_exporter() as exporter:
        exporter.set_series(SERIES)
        directory = tmp_path_factory.mktemp("prometheus")
        with running_prometheus(directory, scrape_configs=[exporter.scrape_config()]) as server:
            server.wait_for_samples(EXPORTED, len(SERIES))
            # A subquery samples at whole-second steps; the first of them after the first scrape
            # may still be ahead of "now", so wait until one holds every exported series.
            server.wait_for_samples(f"max_over_time({EXPORTED}[1m:1s])", len(SERIES))
            yield server


def acme(prometheus: PrometheusServer, expr: str) -> list[Sample]:
    """Evaluate `expr` as acme may: scoped first."""
    return prometheus.query(scope_to_tenant(expr, "acme"))


def by_instance(samples: list[Sample]) -> dict[str, float]:
    assert all(s.labels.get("tenant") == "acme" for s in samples), samples
    return {s.labels["instance"]: s.value for s in samples}


def test_the_unscoped_data_holds_both_tenants(prometheus):
    # The premise of every test below: without scoping, globex's series would come back.
    tenants = {s.labels["tenant"] for s in prometheus.query("http_requests_total")}
    assert tenants == {"acme", "globex"}
    assert prometheus.query("up"), "the scrape's own series exist, with no tenant label"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('http_requests_total{job=~".+"}', {"a1": 10, "a2": 20}),
        ('http_requests_total{job!="x"}', {"a1": 10, "a2": 20}),
        ('http_requests_total{code!~"2.."}', {"a2": 20}),
        ('http_requests_total{instance=~"g.*"}', {}),
        ("http_requests_total @ end()", {"a1": 10, "a2": 20}),
        ("max_over_time(http_requests_total[5m])", {"a1": 10, "a2": 20}),
        ("topk(1, http_requests_total)", {"a2": 20}),
        ('label_replace(http_requests_total, "owner", "$1", "job", "(.*)")', {"a1": 10, "a2": 20}),
        ("http_requests_total unless on() payments_failed_total", {"a1": 10, "a2": 20}),
        ("queue_depth unless on() http_requests_total", {}),
        ("http_requests_total and on() queue_depth", {"a1": 10, "a2": 20}),
        ("http_requests_total * on(instance) group_left queue_depth", {"a1": 30}),
    ],
)
def test_selectors_and_set_operations_see_only_acme(prometheus, expr, expected):
    assert by_instance(acme(prometheus, expr)) == expected


def test_or_on_with_a_default_does_not_reach_the_other_tenant(prometheus):
    # acme has no payments: the default applies instead of globex's 5.
    samples = acme(prometheus, "sum(payments_failed_total) or on() vector(0)")
    assert [(s.labels, s.value) for s in samples] == [({}, 0.0)]


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("sum(http_requests_total)", 30),
        ('sum(http_requests_total{job=~".*"})', 30),
        ("sum(max_over_time(sum(http_requests_total)[1m:1s]))", 30),
        ("count(http_requests_total)", 2),
        ("sum(http_requests_total) + on() sum(queue_depth)", 33),
        ('count({__name__=~".+"})', len(ACME_SERIES)),
    ],
)
def test_aggregations_add_up_acme_alone(prometheus, expr, value):
    samples = acme(prometheus, expr)
    assert [s.value for s in samples] == [value]


def test_aggregating_without_labels_keeps_acme_only(prometheus):
    samples = acme(prometheus, "sum without (instance, code) (http_requests_total)")
    assert [(s.labels, s.value) for s in samples] == [({"job": "api", "tenant": "acme"}, 30.0)]


def test_absent_is_true_for_a_metric_only_the_other_tenant_has(prometheus):
    assert prometheus.query("payments_failed_total"), "globex has the metric"
    samples = acme(prometheus, "absent(payments_failed_total)")
    assert [(s.labels, s.value) for s in samples] == [({"tenant": "acme"}, 1.0)]
    samples = acme(prometheus, "absent_over_time(payments_failed_total[5m])")
    assert [(s.labels, s.value) for s in samples] == [({"tenant": "acme"}, 1.0)]
    assert acme(prometheus, "absent(http_requests_total)") == []


def test_a_regex_over_every_name_returns_acme_series_only(prometheus):
    samples = acme(prometheus, '{__name__=~".+"}')
    got = sorted((s.labels["__name__"], s.labels["instance"], s.value) for s in samples)
    expected = sorted((name, labels["instance"], value) for name, labels, value in ACME_SERIES)
    assert got == expected


def test_series_without_a_tenant_label_are_invisible(prometheus):
    assert acme(prometheus, "up") == []
    assert acme(prometheus, 'scrape_samples_scraped{job=~".+"}') == []


@pytest.mark.parametrize("expr", [case[0] for case in SCOPED])
def test_prometheus_accepts_every_scoped_expression(prometheus, expr):
    promql_query_data(prometheus.url, scope_to_tenant(expr, "acme"))


def test_a_scoped_rule_alerts_for_acme_only_and_reaches_alertmanager(
    prometheus_server: PrometheusServer,
    alertmanager_server: AlertmanagerServer,
    metrics_exporter: MetricsExporter,
):
    metrics_exporter.set_series(SERIES)
    prometheus_server.wait_for_samples(EXPORTED, len(SERIES))
    rules = {
        "groups": [
            {
                "name": "acme",
                "rules": [
                    {
                        "alert": "ServerErrors",
                        "expr": scope_to_tenant('http_requests_total{code=~"5.."} > 0', "acme"),
                        "labels": {"tenant": "acme"},
                    },
                    {
                        "alert": "AlwaysOn",
                        "expr": scope_to_tenant("vector(1)", "acme"),
                        "labels": {"tenant": "acme"},
                    },
                ],
            }
        ]
    }
    (prometheus_server.rules_dir / "acme.yml").write_text(yaml.safe_dump(rules))
    prometheus_server.reload()

    def delivered() -> list[tuple[str, str, str]] | None:
        alerts = alertmanager_server.alerts()
        found = sorted(
            (a["labels"]["alertname"], a["labels"]["tenant"], a["labels"].get("instance", ""))
            for a in alerts
        )
        return found if len(found) >= 2 else None

    found = wait_for(delivered, timeout=30, interval=0.2, message="alerts in Alertmanager")
    assert found == [("AlwaysOn", "acme", ""), ("ServerErrors", "acme", "a2")]


def test_the_exporter_serves_what_the_test_set(metrics_exporter: MetricsExporter):
    import httpx

    metrics_exporter.set_series([("m", {"tenant": "acme", "note": 'say "hi"\n'}, 1.5)])
    body = httpx.get(metrics_exporter.url, trust_env=False).text
    assert body == 'm{tenant="acme",note="say \\"hi\\"\\n"} 1.5\n'
    assert metrics_exporter.scrapes == 1


def test_prometheus_loads_yaml_rule_files_and_stops_with_its_context(tmp_path: Path):
    rules = {"groups": [{"name": "g", "rules": [{"record": "one", "expr": "vector(1)"}]}]}
    with running_prometheus(tmp_path / "p") as server:
        (server.rules_dir / "r.yaml").write_text(yaml.safe_dump(rules))
        server.reload()
        samples = wait_for(
            lambda: promql_query(server.url, "one"),
            timeout=15,
            message="the recording rule to be evaluated",
        )
        assert [(s.labels, s.value) for s in samples] == [({"__name__": "one"}, 1.0)]
    assert server.process.poll() is not None
