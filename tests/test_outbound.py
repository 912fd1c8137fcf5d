"""Receiver URLs may only reach public addresses over https, at save, at send and on redirects.

Local HTTP servers stand in for providers. Loopback is itself refused unless the platform's
operator allows it, so the redirect tests allow exactly one `127.0.0.1:<port>` (the redirecting
server) and check that what it redirects to is refused before any connection: the target server
must never see a request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from alerts.forms import ReceiverForm
from alerts.models import Receiver
from alerts.notify import MAX_REDIRECTS, post_json, send_to_receiver
from alerts.outbound import OutboundURLError, check_outbound_url


@pytest.fixture
def sink() -> Iterator[HTTPServer]:
    """A local provider that answers every POST with 200 and records it."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/hook", method="POST").respond_with_data("ok")
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def redirector() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def _allow(settings, *servers: HTTPServer) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{s.port}" for s in servers]


def _redirect_to(server: HTTPServer, location: str, status: int = 302) -> None:
    server.expect_request("/hook", method="POST").respond_with_data(
        "", status=status, headers={"Location": location}
    )


REFUSED_URLS = [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.5/hook", "private"),
    ("https://10.255.255.254:8443/hook", "private"),
    ("https://172.16.3.4/hook", "private"),
    ("https://192.168.1.1/hook", "private"),
    ("https://100.64.0.1/hook", "shared address space"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://[fd00::1]/hook", "unique local"),
    ("https://224.0.0.1/hook", "multicast"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_URLS)
def test_a_url_resolving_to_a_non_public_address_is_refused(settings, url, kind):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(OutboundURLError, match="only calls public addresses"):
        check_outbound_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.216.34/hook", "must use https"),
        ("ftp://93.184.216.34/hook", "must use https"),
        ("https://user:pw@93.184.216.34/hook", "credentials in the URL"),
        ("https://93.184.216.34:99999/hook", "port"),
        ("https:///hook", "no host"),
        ("https://93.184.216.34/\x00hook", "control characters"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("", "URL of at most"),
    ],
)
def test_a_malformed_or_plain_http_url_is_refused_with_the_reason(settings, url, reason):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(OutboundURLError, match=reason):
        check_outbound_url(url)


def test_a_public_https_address_is_accepted(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    assert check_outbound_url("https://93.184.216.34/hook") == "https://93.184.216.34/hook"


def test_an_allowed_host_is_exempt_but_only_on_its_port_when_one_is_given(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1:8025"]
    assert check_outbound_url("http://127.0.0.1:8025/hook")
    with pytest.raises(OutboundURLError, match="must use https"):
        check_outbound_url("http://127.0.0.1:8026/hook")
    with pytest.raises(OutboundURLError, match="only calls public addresses"):
        check_outbound_url("https://127.0.0.1:8026/hook")


@pytest.mark.parametrize(
    "url",
    ["https://169.254.169.254/latest/meta-data/", "https://127.0.0.1/hook", "http://10.0.0.7/"],
)
def test_the_receiver_form_refuses_such_a_url_on_the_secret_field(settings, url):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    form = ReceiverForm({"name": "Ops", "kind": "slack", "secret": url})
    assert not form.is_valid()
    assert list(form.errors) == ["secret"]
    assert "Slack webhook URL" in form.errors["secret"][0]


def test_the_receiver_form_refuses_a_private_pagerduty_events_url(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    form = ReceiverForm(
        {"name": "PD", "kind": "pagerduty", "secret": "key-1", "url": "https://10.1.1.1/v2"}
    )
    assert not form.is_valid()
    assert list(form.errors) == ["url"]


def test_an_allowed_local_sink_is_called(settings, sink):
    _allow(settings, sink)
    answer = post_json(sink.url_for("/hook"), {"text": "hello"})
    assert answer.ok, answer.detail
    assert answer.detail.startswith("HTTP 200")
    (request, _response), *_ = sink.log
    assert request.get_json() == {"text": "hello"}


def test_a_url_stored_past_the_form_is_refused_again_at_send_time(settings, sink):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    receiver = Receiver(name="Ops", kind=Receiver.Kind.SLACK, secret=sink.url_for("/hook"))
    answer = send_to_receiver(receiver, title="Disk full", text="on db-1")
    assert not answer.ok
    assert answer.detail.startswith("not sent:")
    assert sink.log == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_redirect_to_a_host_that_is_not_allowed_is_refused_before_connecting(
    settings, redirector, sink, scheme
):
    # Only the redirecting server is allowed; the sink is loopback on another port.
    _allow(settings, redirector)
    _redirect_to(redirector, f"{scheme}://127.0.0.1:{sink.port}/hook")
    answer = post_json(redirector.url_for("/hook"), {"text": "hello"})
    assert not answer.ok
    expected = "must use https" if scheme == "http" else "127.0.0.1 resolves to a loopback"
    assert answer.detail.startswith("not sent:")
    assert expected in answer.detail
    assert len(redirector.log) == 1
    assert sink.log == []


@pytest.mark.parametrize(
    "location",
    [
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://10.0.0.8/internal",
        "https://localhost/admin",
        "http://93.184.216.34/plain-http",
    ],
)
def test_a_redirect_to_metadata_private_loopback_or_http_is_refused(settings, redirector, location):
    _allow(settings, redirector)
    _redirect_to(redirector, location, status=307)
    answer = post_json(redirector.url_for("/hook"), {"text": "hello"})
    assert not answer.ok
    assert answer.detail.startswith("not sent:")


def test_a_relative_redirect_on_an_allowed_host_is_followed(settings, redirector):
    _allow(settings, redirector)
    _redirect_to(redirector, "/final", status=307)
    redirector.expect_request("/final", method="POST").respond_with_data("done")
    answer = post_json(redirector.url_for("/hook"), {"text": "hello"})
    assert answer.ok, answer.detail
    assert [r.path for r, _ in redirector.log] == ["/hook", "/final"]


def test_endless_redirects_stop_after_the_limit(settings, redirector):
    _allow(settings, redirector)
    _redirect_to(redirector, "/hook", status=307)
    answer = post_json(redirector.url_for("/hook"), {"text": "hello"})
    assert not answer.ok
    assert f"more than {MAX_REDIRECTS} redirects" in answer.detail
    assert len(redirector.log) == MAX_REDIRECTS + 1
