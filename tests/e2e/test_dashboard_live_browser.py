"""Live dashboards in Chromium: every panel of the Executive dashboard drawn, a sample pushed
through the API on the open page within 2 s without a reload, and never on another tenant's page;
a Prometheus panel's series extended by the poll of watched dashboards.

The sample goes through `POST /api/v1/metrics` on the live ASGI server with an ingest token, as an
application would send it; its value is one no seeded data has, so finding it on a page can only
mean the push got there. Globex's page is the control: a globex sample pushed after acme's one is
a sentinel (frames on one socket arrive in order, so a leaked acme frame would come before it).

This module serves the portal from a uvicorn of its own, wired to a real Prometheus (scraping the
tests' exporter), so that Prometheus panels render; everything else is as `live_server_url`.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, WebSocket, expect

from dashboards import live
from tests import test_prometheus_poll as poll_case
from tests.backend_servers import PrometheusServer, running_exporter, running_prometheus
from tests.e2e import test_browser
from tests.e2e.conftest import Browsing, Site, committed
from tests.helpers import asgi_server_command, free_port, is_listening, started_process, wait_for
from tests.test_dashboard_live import forget_revenue

pytestmark = pytest.mark.django_db
# The sessions and sign-in logs the server commits for this module's browsers go afterwards.
forget_sign_ins = test_browser.forget_sign_ins

DASHBOARD = "Executive overview"
# From the API's answer to the number on the open page (the bound).
PUSH_WITHIN_MS = 2000


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[PrometheusServer]:
    """Prometheus with acme's and globex's probe series, from before the current step on."""
    with running_exporter() as exporter:
        exporter.set_series(poll_case.PROBE_SERIES)
        with running_prometheus(
            tmp_path_factory.mktemp("live-browser"), scrape_configs=[exporter.scrape_config()]
        ) as server:
            poll_case.wait_for_a_step_with_data(server)
            yield server


@pytest.fixture(scope="module")
def site(process_env, prometheus: PrometheusServer, tmp_path_factory) -> Iterator[Site]:
    """The portal as `live_server_url` serves it, with PROMETHEUS_URL set."""
    port = free_port()
    with started_process(
        asgi_server_command(port),
        env=dict(process_env, PORTAL_PORT=str(port), DEBUG="false", PROMETHEUS_URL=prometheus.url),
        log=tmp_path_factory.mktemp("uvicorn-live") / "server.log",
        ready=lambda: is_listening(port),
        what="the ASGI server",
    ):
        yield Site(port=port)


@pytest.fixture
def ingest_secrets(django_db_blocker) -> Iterator[dict[str, str]]:
    """An ingest token of acme and of globex (committed, for the server); deleted afterwards.

    The product revokes tokens and keeps the rows; removing these is clean-up of the test's own
    data. The audit trail keeps its events about them: it is append-only.
    """
    name = f"live-check-{uuid.uuid4().hex[:8]}"

    def create() -> dict[str, str]:
        from tenants import audit, services
        from tenants.models import Tenant

        actor = audit.Actor.system("live dashboard check")
        return {
            slug: services.create_token(
                tenant=Tenant.objects.get(schema_name=slug),
                name=name,
                scopes=["ingest"],
                actor=actor,
            ).secret
            for slug in ("acme", "globex")
        }

    def delete() -> None:
        from tenants.models import ApiToken

        ApiToken.objects.filter(name=name).delete()

    with django_db_blocker.unblock():
        secrets = committed(create)
    try:
        yield secrets
    finally:
        with django_db_blocker.unblock():
            committed(delete)


def executive_dashboard_path(slug: str) -> str:
    from django_tenants.utils import schema_context

    from dashboards.models import Dashboard

    with schema_context(slug):
        return f"/dashboards/{Dashboard.objects.get(title=DASHBOARD).public_id}/"


def push_revenue(browsing: Browsing, slug: str, secret: str, value: float) -> None:
    """One revenue sample for `slug` through the ingest API of the live server."""
    site = browsing.site
    sample = {"name": "revenue_eur", "labels": {"channel": "web"}, "value": value}
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.post(
            f"http://127.0.0.1:{site.port}/api/v1/metrics",
            headers={"Host": site.host(slug), "Authorization": f"Bearer {secret}"},
            json={"samples": [sample]},
        )
    assert response.status_code == 202, response.text
    assert response.json()["stored"] == 1


def open_dashboard(browsing: Browsing, slug: str, path: str) -> tuple[Page, list[dict]]:
    """An executive of `slug` with the dashboard open and live; the frames its sockets hear."""
    heard: list[dict] = []

    def listen(socket: WebSocket) -> None:
        if "/ws/dashboards/" in socket.url:
            socket.on("framereceived", lambda payload: heard.append(json.loads(payload)))

    page = browsing.new_page()
    page.on("websocket", listen)
    browsing.sign_in(page, slug, f"executive@{slug}.example")
    expect(page).to_have_url(browsing.site.url(slug, "/"))
    page.goto(browsing.site.url(slug, path))
    expect(page.get_by_role("heading", name=DASHBOARD, level=1)).to_be_visible()
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    return page, heard


def panel_id(page: Page, title: str) -> str:
    panel = page.locator(f'section.panel[data-title="{title}"]')
    expect(panel).to_have_count(1)
    return panel.get_attribute("data-panel") or ""


def every_panel_drawn(page: Page, expected: int) -> None:
    """Each panel has its Plotly figure (a panel with no data yet has axes and no trace) and no
    error message."""
    panels = page.locator("section.panel")
    count = panels.count()
    assert count == expected, f"{count} panels on the page, not {expected}"
    expect(page.locator(".panel-error:visible")).to_have_count(0)
    drawn = page.evaluate(
        """() => [...document.querySelectorAll("[data-plot]")].map((plot) => ({
            title: plot.closest("section").dataset.title,
            traces: Array.isArray(plot.data) ? plot.data.length : -1,
            svg: plot.querySelectorAll(".main-svg").length,
        }))"""
    )
    assert len(drawn) == count
    undrawn = [p["title"] for p in drawn if p["traces"] < 0 or p["svg"] < 1]
    assert not undrawn, f"panels without a figure: {undrawn}"


def plot_data(page: Page) -> str:
    """Every panel's Plotly data, as JSON (to tell whether anything changed)."""
    return page.evaluate(
        """() => JSON.stringify([...document.querySelectorAll("[data-plot]")].map(
            (plot) => [plot.dataset.plot, plot.data]))"""
    )


SHOWS_VALUE = """([series, stat, value, before]) => {
    const line = document.querySelector(`[data-plot="${series}"]`).data[0].y;
    const number = document.querySelector(`[data-plot="${stat}"]`).data[0].value;
    return line.includes(value) && Math.abs(number - (before + value)) < 1e-6 * (1 + value);
}"""


def stat_value(page: Page, stat: str) -> float:
    return page.evaluate(
        '(id) => document.querySelector(`[data-plot="${id}"]`).data[0].value || 0', stat
    )


@pytest.fixture
def pushed(django_db_blocker) -> Iterator[dict[str, list[float]]]:
    """Values a test pushes per tenant; their samples are removed afterwards."""
    values: dict[str, list[float]] = {"acme": [], "globex": []}
    yield values
    with django_db_blocker.unblock():
        for slug, sent in values.items():
            if sent:
                committed(lambda slug=slug, sent=sent: forget_revenue(slug, sent))


def test_a_pushed_sample_reaches_the_open_dashboard_and_no_other_tenant(
    browsing: Browsing,
    ingest_secrets: dict[str, str],
    pushed: dict[str, list[float]],
    django_db_blocker,
):
    with django_db_blocker.unblock():
        paths = committed(lambda: {s: executive_dashboard_path(s) for s in ("acme", "globex")})
    acme, acme_heard = open_dashboard(browsing, "acme", paths["acme"])
    globex, globex_heard = open_dashboard(browsing, "globex", paths["globex"])
    for page in (acme, globex):
        every_panel_drawn(page, 9)

    acme_series, acme_stat = panel_id(acme, "Revenue per minute"), panel_id(acme, "Revenue")
    globex_series, globex_stat = panel_id(globex, "Revenue per minute"), panel_id(globex, "Revenue")
    # Values no seeded sample has: seen on a page, they can only have come from these pushes.
    acme_value = round(random.uniform(900_000, 999_999), 3)  # noqa: S311 (not a secret)
    globex_value = acme_value + 0.5
    acme_before = stat_value(acme, acme_stat)
    globex_before = stat_value(globex, globex_stat)
    globex_data_before = plot_data(globex)

    # A mark a reload would wipe.
    acme.evaluate("window.__stillTheSamePage = true")
    pushed["acme"].append(acme_value)
    push_revenue(browsing, "acme", ingest_secrets["acme"], acme_value)
    answered = time.monotonic()
    # Waited for longer than the bound, so that a miss says by how much.
    acme.wait_for_function(
        SHOWS_VALUE, arg=[acme_series, acme_stat, acme_value, acme_before], timeout=10_000
    )
    took_ms = (time.monotonic() - answered) * 1000
    assert took_ms < PUSH_WITHIN_MS, f"the sample reached the page after {took_ms:.0f} ms"
    # Pushed, not reloaded.
    assert acme.evaluate("window.__stillTheSamePage === true")
    assert any(frame.get("type") == "points" for frame in acme_heard)

    # Globex's page: the acme push changed nothing; then globex's own sample arrives after it.
    assert plot_data(globex) == globex_data_before
    pushed["globex"].append(globex_value)
    push_revenue(browsing, "globex", ingest_secrets["globex"], globex_value)
    globex.wait_for_function(
        SHOWS_VALUE,
        arg=[globex_series, globex_stat, globex_value, globex_before],
        timeout=PUSH_WITHIN_MS,
    )
    pushed_to_globex = [
        point[1]
        for frame in globex_heard
        if frame.get("type") == "points"
        for update in frame["panels"]
        for point in update["points"]
    ]
    assert globex_value in pushed_to_globex
    assert acme_value not in pushed_to_globex
    globex_ys = [
        y for _, data in json.loads(plot_data(globex)) for trace in data for y in trace.get("y", [])
    ]
    assert globex_value in globex_ys
    assert acme_value not in globex_ys
    assert stat_value(globex, globex_stat) == pytest.approx(globex_before + globex_value)


@pytest.fixture
def prometheus_dashboard(django_db_blocker) -> Iterator[poll_case.Watched]:
    with django_db_blocker.unblock():
        made = committed(lambda: poll_case.make_dashboard("acme"))
    yield made
    with django_db_blocker.unblock():
        committed(lambda: poll_case.forget_dashboard("acme", made.dashboard))


TRACES = """(id) => document.querySelector(`[data-plot="${id}"]`).data.map(
    (trace) => ({name: trace.name, x: trace.x, y: trace.y, value: trace.value}))"""


def test_a_watched_prometheus_panel_is_polled_and_extended_on_the_page(
    browsing: Browsing,
    prometheus: PrometheusServer,
    prometheus_dashboard: poll_case.Watched,
    settings,
    django_db_blocker,
):
    settings.PROMETHEUS_URL = prometheus.url
    path = f"/dashboards/{prometheus_dashboard.dashboard}/"
    page = browsing.new_page()
    browsing.sign_in(page, "acme", "executive@acme.example")
    page.goto(browsing.site.url("acme", path))
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    every_panel_drawn(page, len(prometheus_dashboard.panels))
    series_id = prometheus_dashboard.panels["Probe"]
    stat_id = prometheus_dashboard.panels["Probe max"]
    before = {trace["name"]: len(trace["x"]) for trace in page.evaluate(TRACES, series_id)}
    assert set(before) == set(poll_case.ACME_VALUES), "the page draws one trace per series"
    wait_for(
        lambda: prometheus_dashboard.dashboard in live.watchers(["acme"]).get("acme", {}),
        timeout=10,
        message="the page's socket to count as a watcher",
    )

    # What beat would do every few seconds; here once, for a step the page has not drawn. In a
    # thread of its own: Playwright's loop runs in this one.
    now = time.time() + poll_case.STEP
    with django_db_blocker.unblock():
        assert committed(lambda: poll_case.poll_in("acme", now)) == 2
    step_ms = math.floor(now / poll_case.STEP) * poll_case.STEP * 1000
    page.wait_for_function(
        """([id, step]) => document.querySelector(`[data-plot="${id}"]`).data
            .every((trace) => trace.x[trace.x.length - 1] === step)""",
        arg=[series_id, step_ms],
        timeout=PUSH_WITHIN_MS,
    )
    after = {trace["name"]: trace for trace in page.evaluate(TRACES, series_id)}
    for name, value in poll_case.ACME_VALUES.items():
        assert len(after[name]["x"]) == before[name] + 1
        assert after[name]["y"][-1] == value
    stat = page.evaluate(TRACES, stat_id)
    assert stat[0]["value"] == max(poll_case.ACME_VALUES.values())
    assert stat[1]["x"][-1] == step_ms
    assert poll_case.GLOBEX_VALUE not in [y for trace in after.values() for y in trace["y"]]
