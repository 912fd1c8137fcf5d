"""The whole incident loop, with nothing in between faked: a rule saved in the portal fires in
Prometheus, Alertmanager (configured by the portal) delivers it to the portal's intake, and the
incident appears on an incident list already open in Chromium, without a reload; Teams and SMS
are relayed through the Celery worker to local sinks and noted on the incident's timeline; the
condition clearing resolves the incident, on the same page, again without a reload.

The condition is a series of the test's exporter that the rule's expression reads: set to 1 it
fires, set to 0 it clears. Names carry a random suffix: incidents and their timelines are
append-only, so what a run leaves in acme cannot be removed and must not collide with a rerun.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import Locator, Page, WebSocket, expect

from alerts import sync
from alerts.models import Incident, IncidentEvent, SyncState
from tests import alerting_fixtures
from tests.alerting_fixtures import (
    AlertingStack,
    HttpSink,
    apply_settings,
    running_alerting_stack,
    running_http_sink,
    running_sync_worker,
)
from tests.e2e import test_browser
from tests.e2e.conftest import Browsing, committed, submit_login_form
from tests.helpers import PASSWORD, wait_for
from tests.test_alert_delivery import add_firing_rules, add_receiver, mentions, set_policy

pytestmark = pytest.mark.timeout(300)
committed_alerting = alerting_fixtures.committed_alerting
# The sessions and sign-in logs the server commits for this module's browsers go afterwards.
forget_sign_ins = test_browser.forget_sign_ins

SMS_PATH = "/sms/messages"
# Firing reaches the portal in seconds; the resolution waits for the intake route's group
# interval (10 s) on top of Prometheus' evaluation and resend delay.
DEADLINE_S = 60
DEADLINE_MS = DEADLINE_S * 1000


@pytest.fixture(scope="module")
def sinks() -> Iterator[HttpSink]:
    """The HTTP server standing in for Teams and the SMS provider."""
    with running_http_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sinks: HttpSink, live_server_url: str) -> Iterator[AlertingStack]:
    port = live_server_url.rsplit(":", 1)[1]
    with running_alerting_stack(
        tmp_path_factory.mktemp("incident-loop"),
        OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"],
        # Alertmanager calls the portal's intake and relay on the live ASGI server.
        ALERTMANAGER_WEBHOOK_BASE_URL=f"http://localhost:{port}",
        SMS_API_URL=sinks.url(SMS_PATH),
        SMS_API_TOKEN="sms-provider-token",
        SMS_FROM="+15550000",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def worker(stack: AlertingStack, process_env, tmp_path_factory) -> Iterator[None]:
    """The worker on the notify queue: it sends what the portal relays, with the sinks' URLs."""
    log = tmp_path_factory.mktemp("incident-loop-worker") / "worker.log"
    with running_sync_worker({**process_env, **stack.environment()}, log):
        yield


@pytest.fixture
def wired(settings, stack: AlertingStack, worker) -> Iterator[AlertingStack]:
    apply_settings(settings, stack)
    try:
        yield stack
    finally:
        stack.exporter.set_text("")


# ---- the portal side, written through the services and committed --------------------------------


@dataclass(frozen=True)
class Loop:
    """The names one run uses."""

    alertname: str
    metric: str
    teams_path: str
    phone: str

    @classmethod
    def fresh(cls) -> Loop:
        suffix = uuid.uuid4().hex[:8]
        return cls(
            alertname=f"LoopCheckoutDown_{suffix}",
            metric=f"loop_metric_{suffix}",
            teams_path=f"/acme/teams/{suffix}",
            phone=f"+1555{int(suffix, 16) % 10**7:07d}",
        )


def arm(acme, sinks: HttpSink, loop: Loop) -> None:
    """Teams and SMS for P0, then a P0 rule on the exporter's series, live in both backends."""
    with tenant_context(acme):
        teams = add_receiver("msteams", sinks.url(loop.teams_path))
        sms = add_receiver("sms", loop.phone)
        set_policy("P0", [teams, sms])
    results = sync.sync_alertmanager()
    assert results["acme"].status == SyncState.Status.SYNCED, results["acme"]
    add_firing_rules(
        acme,
        {loop.alertname: "P0"},
        expr=f"{loop.metric} > 0",
        summary="{name}: checkout is down",
        group_name=f"loop-{loop.metric}",
    )


def incidents_named(tenant, alertname: str) -> list[dict]:
    with tenant_context(tenant):
        return list(
            Incident.objects.filter(alertname=alertname).values(
                "public_id", "status", "alert_state", "resolved_by", "severity"
            )
        )


def relay_notices(acme, incident_id: str) -> set[tuple[str, str, str]]:
    """(kind, outcome, alert status) of the "notified" entries on the incident's timeline."""
    with tenant_context(acme):
        details = IncidentEvent.objects.filter(
            incident__public_id=incident_id, kind=IncidentEvent.Kind.NOTIFIED
        ).values_list("detail", flat=True)
        return {(d["kind"], d["outcome"], d["alert_status"]) for d in details}


def where_it_stands(stack: AlertingStack, acme, loop: Loop) -> str:
    """Each stage of the loop as it is now, for a failure message: where the loop stopped."""
    rules = [
        (r["name"], r.get("state"), r.get("health"), r.get("lastError", ""))
        for group in stack.loaded_rules(f"{acme.schema_name}/").values()
        for r in group
        if r["name"] == loop.alertname
    ]
    alerts = [
        (a["status"]["state"], a["startsAt"], a.get("endsAt"))
        for a in stack.alertmanager.alerts()
        if a["labels"].get("alertname") == loop.alertname
    ]

    def portal() -> tuple[list, list]:
        with tenant_context(acme):
            states = list(SyncState.objects.values_list("target", "status", "error"))
        return incidents_named(acme, loop.alertname), states

    incidents, states = committed(portal)
    return "\n".join(
        [
            f"exporter series: {stack.prometheus.query(loop.metric)}",
            f"rule in Prometheus (name, state, health, error): {rules}",
            f"alerts in Alertmanager (state, starts, ends): {alerts}",
            f"incidents in the portal: {incidents}",
            f"sync states: {states}",
        ]
    )


@contextmanager
def explained(stack: AlertingStack, acme, loop: Loop) -> Iterator[None]:
    """A failed wait says where the loop stands, not only what the page lacked."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{where_it_stands(stack, acme, loop)}") from None


# ---- the browser side ----------------------------------------------------------------------------


def frames_of(page: Page) -> list[str]:
    """Every frame the page's WebSockets receive from now on."""
    heard: list[str] = []

    def listen(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: heard.append(str(payload)))

    page.on("websocket", listen)
    return heard


def open_incident_list(
    browsing: Browsing, slug: str, email: str, query: str = "?status=all"
) -> tuple[Page, list[str]]:
    """Signed in on `slug`'s host, on the incident list (every incident by default), live."""
    page = browsing.new_page()
    heard = frames_of(page)
    # Straight from the sign-in to the list: no other page's socket is cut off half open.
    path = f"/incidents/{query}"
    page.goto(browsing.site.url(slug, "/accounts/login/?" + urlencode({"next": path})))
    submit_login_form(page, email, PASSWORD)
    expect(page).to_have_url(browsing.site.url(slug, path))
    expect(page.locator("#incident-list")).to_be_attached()
    expect(page.locator("#live-status")).to_have_text("Live")
    return page, heard


def incident_rows(page: Page, text: str) -> Locator:
    return page.locator("#incident-list [data-incident]").filter(has_text=text)


def mark_page(page: Page) -> Callable[[], bool]:
    """Whether the page is still the document it was now: a reload would drop the mark."""
    page.evaluate("window.__incidentLoopMark = true")
    return lambda: page.evaluate("window.__incidentLoopMark === true")


def test_a_rule_saved_in_the_portal_opens_an_incident_live_and_its_clearing_resolves_it(
    wired: AlertingStack, sinks: HttpSink, committed_alerting, browsing: Browsing
):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    loop = Loop.fresh()

    desk, heard_at_acme = open_incident_list(browsing, "acme", "security@acme.example")
    # The default list shows open incidents only: the incident comes and goes there.
    open_desk, _ = open_incident_list(browsing, "acme", "operator@acme.example", query="")
    elsewhere, heard_at_globex = open_incident_list(browsing, "globex", "operator@globex.example")
    same_document = mark_page(desk)
    row = incident_rows(desk, loop.alertname)
    open_row = incident_rows(open_desk, loop.alertname)
    expect(row).to_have_count(0)
    p0_count = desk.locator('[data-severity-count="P0"]')
    p0_before = int(p0_count.inner_text())

    committed(lambda: arm(acme, sinks, loop))
    wired.exporter.set_series([(loop.metric, {"tenant": "acme"}, 1)])

    # The incident appears on the open page, triggered.
    with explained(wired, acme, loop):
        expect(row).to_have_count(1, timeout=DEADLINE_MS)
    expect(row).to_have_attribute("data-status", "triggered")
    expect(p0_count).to_have_text(str(p0_before + 1))
    expect(open_row).to_have_count(1, timeout=DEADLINE_MS)
    expect(open_row).to_have_attribute("data-status", "triggered")
    incident_id = row.get_attribute("data-incident")
    opened = committed(lambda: incidents_named(acme, loop.alertname))
    assert [(str(i["public_id"]), i["status"], i["severity"]) for i in opened] == [
        (incident_id, "triggered", "P0")
    ]
    assert committed(lambda: incidents_named(globex, loop.alertname)) == []

    # Teams and SMS went out through the portal's relay and are on the incident's timeline.
    teams = wait_for(
        lambda: mentions(sinks.bodies(loop.teams_path), loop.alertname),
        timeout=DEADLINE_S,
        message="the firing alert relayed to Teams",
    )
    assert teams[0]["title"] == f"[FIRING] P0 {loop.alertname}"
    sms = wait_for(
        lambda: mentions(sinks.bodies(SMS_PATH), loop.alertname),
        timeout=DEADLINE_S,
        message="the firing alert relayed as an SMS",
    )
    assert [m["to"] for m in sms] == [loop.phone]
    wanted = {("msteams", "sent", "firing"), ("sms", "sent", "firing")}
    wait_for(
        lambda: wanted <= committed(lambda: relay_notices(acme, incident_id)),
        timeout=DEADLINE_S,
        interval=0.5,
        message="'notified' entries for Teams and SMS on the incident's timeline",
    )

    # The condition clears: the same row turns resolved, still without a reload.
    wired.exporter.set_series([(loop.metric, {"tenant": "acme"}, 0)])
    with explained(wired, acme, loop):
        expect(row).to_have_attribute("data-status", "resolved", timeout=DEADLINE_MS)
    expect(row).to_have_count(1)
    assert row.get_attribute("data-incident") == incident_id
    expect(p0_count).to_have_text(str(p0_before + 1))
    expect(open_row).to_have_count(0, timeout=DEADLINE_MS)
    (resolved,) = committed(lambda: incidents_named(acme, loop.alertname))
    assert (resolved["status"], resolved["alert_state"], resolved["resolved_by"]) == (
        "resolved",
        "resolved",
        "Alertmanager",
    )
    # Teams hears of the resolution too, on the timeline as well (waiting for that also lets the
    # worker finish before the clean-up removes the logs); SMS is for firing only.
    wait_for(
        lambda: (
            ("msteams", "sent", "resolved") in committed(lambda: relay_notices(acme, incident_id))
        ),
        timeout=DEADLINE_S,
        interval=0.5,
        message="the resolution relayed to Teams and noted on the timeline",
    )
    assert [b["title"] for b in mentions(sinks.bodies(loop.teams_path), loop.alertname)] == [
        f"[FIRING] P0 {loop.alertname}",
        f"[RESOLVED] P0 {loop.alertname}",
    ]
    assert len(mentions(sinks.bodies(SMS_PATH), loop.alertname)) == 1
    assert same_document(), "the incident list was reloaded"

    # Globex's desk, open the whole time, neither listed nor heard of acme's incident (which
    # acme's desk did hear of: the frames are there to be heard).
    assert [f for f in heard_at_acme if incident_id in f]
    expect(incident_rows(elsewhere, loop.alertname)).to_have_count(0)
    expect(elsewhere.locator(f'[data-incident="{incident_id}"]')).to_have_count(0)
    assert not [f for f in heard_at_globex if incident_id in f or loop.alertname in f]
