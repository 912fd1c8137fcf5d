"""Backend clients: one HTTP shape with timeouts, errors that say if retrying helps, `status()`.

Real HTTP servers on 127.0.0.1 stand in for Prometheus, Alertmanager and Grafana; the system
checks refuse malformed backend settings.
"""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_tenants.utils import get_public_schema_name, schema_context
from pytest_httpserver import HTTPServer
from werkzeug import Response

from portal.backends.alertmanager import AlertmanagerBackend
from portal.backends.base import BackendError, BackendStatus, url_problem
from portal.backends.grafana import GrafanaBackend
from portal.backends.health import BACKENDS, backend_statuses
from portal.backends.prometheus import PrometheusBackend
from portal.checks import backend_settings_check
from tests.conftest import BASE_DIR, free_port

UNSET = {"PROMETHEUS_URL": "", "ALERTMANAGER_URL": "", "GRAFANA_URL": "", "GRAFANA_TOKEN": ""}


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    with HTTPServer(host="127.0.0.1", port=0) as httpserver:
        yield httpserver


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers (a hung backend); yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture(autouse=True)
def fresh_cache(request) -> Iterator[None]:
    """A cache of this test's own: a status cached by another test cannot leak in."""
    location = f"backends-{request.node.nodeid}"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": location,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
        }
    }
    with override_settings(CACHES=caches):
        yield


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ---- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9090", "https://prometheus.example.com", "http://am:9093/proxy/"]
)
def test_a_well_formed_http_url_is_accepted(url):
    assert url_problem(url) is None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://prometheus.example.com", "scheme must be http or https"),
        ("prometheus:9090", "scheme must be http or https"),
        ("http://", "host name is required"),
        ("http://prometheus:99999", "not a valid URL"),
        ("http://prometheus:port", "not a valid URL"),
        ("http://prom etheus:9090", "spaces"),
        ("http://prometheus:9090/?x=1", "query string"),
    ],
)
def test_a_malformed_url_is_refused_with_the_reason(url, reason):
    assert reason in url_problem(url)


# ---- calls and errors -------------------------------------------------------------------------


def test_a_successful_call_returns_the_response(server):
    server.expect_request("/api/v1/query", query_string="query=up").respond_with_json(
        {"status": "success", "data": {"resultType": "vector", "result": []}}
    )
    with PrometheusBackend(server.url_for("/")) as prometheus:
        assert prometheus.query("up") == {"resultType": "vector", "result": []}


@pytest.mark.parametrize("code", [500, 502, 503, 429])
def test_a_server_error_or_throttling_is_transient(server, code):
    server.expect_request("/-/reload", method="POST").respond_with_data("busy", status=code)
    with PrometheusBackend(server.url_for("/")) as prometheus, pytest.raises(BackendError) as err:
        prometheus.reload()
    assert err.value.permanent is False
    assert err.value.status_code == code
    assert err.value.backend == "Prometheus"
    assert f"HTTP {code}" in str(err.value) and "busy" in str(err.value)


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_a_client_error_is_permanent(server, code):
    server.expect_request("/-/reload", method="POST").respond_with_data("no", status=code)
    alertmanager = AlertmanagerBackend(server.url_for("/"))
    with alertmanager, pytest.raises(BackendError) as err:
        alertmanager.reload()
    assert err.value.permanent is True
    assert err.value.status_code == code


def test_a_refused_connection_is_transient():
    with PrometheusBackend(_closed_port_url()) as prometheus, pytest.raises(BackendError) as err:
        prometheus.get("/-/ready")
    assert err.value.permanent is False
    assert err.value.status_code is None
    assert "cannot connect" in err.value.message


def test_a_backend_that_does_not_answer_times_out_as_transient(silent_server):
    prometheus = PrometheusBackend(silent_server, timeout=0.3)
    with prometheus, pytest.raises(BackendError) as err:
        prometheus.get("/-/ready")
    assert err.value.permanent is False
    assert "timed out" in err.value.message


def test_calls_have_timeouts_by_default():
    backend = PrometheusBackend("http://127.0.0.1:9090")
    assert backend.client.timeout.connect == 2.0
    assert backend.client.timeout.read == 10.0
    backend.close()


def test_an_unset_backend_refuses_calls_permanently():
    with override_settings(PROMETHEUS_URL=""), pytest.raises(BackendError) as err:
        PrometheusBackend().get("/-/ready")
    assert err.value.permanent is True
    assert "PROMETHEUS_URL" in str(err.value)


def test_a_backend_error_survives_pickling_as_celery_stores_it():
    error = BackendError("HTTP 503", backend="Grafana", permanent=False, status_code=503)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.backend, copy.permanent, copy.status_code) == (
        "HTTP 503",
        "Grafana",
        False,
        503,
    )


def test_grafana_sends_its_token(server):
    server.expect_request(
        "/api/search", headers={"Authorization": "Bearer sa-token"}
    ).respond_with_json([])
    with GrafanaBackend(server.url_for("/"), token="sa-token") as grafana:
        assert grafana.get("/api/search").json() == []


@pytest.mark.parametrize("tenant", ['acme",tenant=~".*', "acme tenant", "", "ACME", "a" * 64])
def test_silences_are_only_ever_asked_for_one_tenant_by_schema_name(server, tenant):
    with AlertmanagerBackend(server.url_for("/")) as alertmanager, pytest.raises(ValueError):
        alertmanager.active_silence_ids(tenant)
    assert server.log == []  # refused before anything was sent


def test_a_silence_id_is_one_path_segment(server):
    # The server decodes the path it matches on; what was sent is in the raw request URI.
    server.expect_request("/api/v2/silence/a/../status", method="DELETE").respond_with_data("")
    with AlertmanagerBackend(server.url_for("/")) as alertmanager:
        alertmanager.expire_silence("a/../status")
    ((request, _),) = server.log
    assert request.environ["REQUEST_URI"] == "/api/v2/silence/a%2F..%2Fstatus"


# ---- status -----------------------------------------------------------------------------------


def test_an_unset_backend_is_not_connected():
    with override_settings(**UNSET):
        status = PrometheusBackend().status()
    assert (status.name, status.configured, status.ok) == ("Prometheus", False, False)
    assert status.label == "not connected"


@pytest.mark.parametrize(
    "backend_class, path",
    [
        (PrometheusBackend, "/-/ready"),
        (AlertmanagerBackend, "/-/ready"),
        (GrafanaBackend, "/api/health"),
    ],
)
def test_a_backend_that_answers_its_health_check_is_connected(server, backend_class, path):
    server.expect_request(path).respond_with_data("ok")
    status = backend_class(server.url_for("/")).status()
    assert status.configured and status.ok
    assert status.label == "connected"
    assert len(server.log) == 1


def test_an_unreachable_backend_says_why():
    status = AlertmanagerBackend(_closed_port_url()).status()
    assert status.configured and not status.ok
    assert status.label.startswith("unreachable: cannot connect")


def test_a_failing_health_check_is_unreachable_with_the_status_code(server):
    server.expect_request("/-/ready").respond_with_data("starting", status=503)
    status = PrometheusBackend(server.url_for("/")).status()
    assert not status.ok
    assert "HTTP 503" in status.detail


def test_a_hung_backend_costs_the_status_at_most_its_short_timeout(silent_server):
    status = PrometheusBackend(silent_server).status()
    assert not status.ok
    assert "timed out" in status.detail


def test_the_status_is_cached_briefly_so_pages_do_not_ask_every_time(server):
    server.expect_request("/-/ready").respond_with_data("ok")
    url = server.url_for("/")
    first = PrometheusBackend(url).status()
    server.clear()
    server.expect_request("/-/ready").respond_with_response(Response("down", status=503))
    again = PrometheusBackend(url).status()
    assert again == first and again.ok
    assert server.log == []  # answered from the cache

    with schema_context(get_public_schema_name()):
        cache.clear()
    assert not PrometheusBackend(url).status().ok


def test_a_cached_status_round_trips():
    status = BackendStatus("Grafana", True, False, "HTTP 502", checked_at=_now())
    assert BackendStatus.from_cache_value(status.as_cache_value()) == status


def _now():
    from django.utils import timezone

    return timezone.now()


def test_every_backend_is_listed_in_order_with_its_status(server):
    server.expect_request("/-/ready").respond_with_data("ok")
    settings = dict(UNSET, PROMETHEUS_URL=server.url_for("/"), ALERTMANAGER_URL=_closed_port_url())
    with override_settings(**settings):
        statuses = backend_statuses()
    assert [s.name for s in statuses] == [cls.name for cls in BACKENDS]
    assert [s.label.split(":")[0] for s in statuses] == [
        "connected",
        "unreachable",
        "not connected",
    ]


def test_the_home_page_shows_each_backends_status(client_for, server):
    server.expect_request("/-/ready").respond_with_data("ok")
    settings = dict(UNSET, PROMETHEUS_URL=server.url_for("/"), ALERTMANAGER_URL=_closed_port_url())
    with override_settings(**settings):
        html = client_for("acme", "executive").get("/").content.decode()
    assert 'data-backend="prometheus">Prometheus: <span class="badge badge-ok">connected' in html
    assert (
        'data-backend="alertmanager">Alertmanager: <span class="badge badge-bad">unreachable'
        in (html)
    )
    assert "cannot connect" in html
    assert 'data-backend="grafana">Grafana: <span class="badge badge-muted">not connected' in html


# ---- system checks ----------------------------------------------------------------------------


def _ids(messages) -> list[str]:
    return sorted(message.id for message in messages)


def test_sound_backend_settings_pass_the_checks(tmp_path):
    settings = {
        "PROMETHEUS_URL": "http://127.0.0.1:9090",
        "ALERTMANAGER_URL": "http://127.0.0.1:9093",
        "GRAFANA_URL": "https://grafana.example.com",
        "GRAFANA_TOKEN": "glsa_token",
        "PROMETHEUS_RULES_DIR": str(tmp_path / "rules"),
    }
    with override_settings(**settings):
        assert backend_settings_check(None) == []


@pytest.mark.parametrize(
    "name, check_id",
    [
        ("PROMETHEUS_URL", "portal.E010"),
        ("ALERTMANAGER_URL", "portal.E011"),
        ("GRAFANA_URL", "portal.E012"),
    ],
)
def test_a_malformed_backend_url_is_an_error_naming_the_setting(name, check_id):
    with override_settings(**dict(UNSET, GRAFANA_TOKEN="t", **{name: "ftp://backend:21"})):
        messages = backend_settings_check(None)
    assert _ids(messages) == [check_id]
    assert messages[0].is_serious()
    assert name in messages[0].msg and "scheme must be http or https" in messages[0].msg


def test_grafana_without_a_token_is_a_warning():
    with override_settings(**dict(UNSET, GRAFANA_URL="http://127.0.0.1:3000")):
        messages = backend_settings_check(None)
    assert _ids(messages) == ["portal.W010"]
    assert not messages[0].is_serious()


def test_a_rules_directory_that_cannot_be_created_is_a_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with override_settings(**dict(UNSET, PROMETHEUS_RULES_DIR=str(blocker / "rules"))):
        messages = backend_settings_check(None)
    assert _ids(messages) == ["portal.W011"]
    assert "not a directory" in messages[0].msg


def test_manage_py_check_refuses_a_malformed_backend_url(process_env):
    env = dict(process_env, ALERTMANAGER_URL="alertmanager:9093")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "portal.E011" in result.stderr and "ALERTMANAGER_URL" in result.stderr
