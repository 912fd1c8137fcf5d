"""Every page an admin can GET fits a phone (390 px) and a laptop (1366 px): nothing widens it.

The tenant holds the kind of data that used to break layouts: a 100-character token name, a
200-character dashboard title with no spaces, 200-character rule and group names, a 100-character
receiver name, and an audit event with a long value.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import Browsing, committed

pytestmark = pytest.mark.django_db

WIDTHS = (390, 1366)
TENANT_PAGES = [
    "/",
    "/members/",
    "/tokens/",
    "/settings/",
    "/audit/",
    "/dashboards/",
    "/alerts/rules/",
    "/alerts/receivers/",
    "/alerts/policy/",
    "/alerts/silences/",
    "/alerts/rule-file/import/",
    "/alerts/rules/new/",
    "/alerts/receivers/new/",
    "/incidents/",
    "/compliance/",
    "/compliance/controls/GOV-01/",
    "/compliance/frameworks/iso27001/report/",
    "/dashboards/metrics/",
    "/dashboards/import/",
    "/accounts/profile/",
]


@pytest.fixture(scope="module")
def long_data(django_db_blocker) -> Iterator[list[str]]:
    """Writes the long data; yields the paths of the pages that show one object of it.

    The rule group (with its rule) and the receiver are removed afterwards: later alerting tests
    expect acme without rules.
    """
    made: dict[str, uuid.UUID] = {}

    def create() -> list[str]:
        from django_tenants.utils import schema_context

        from alerts import services as alerts
        from dashboards import services as dashboards
        from tenants import audit, services
        from tenants.models import Membership, Tenant

        acme = Tenant.objects.get(schema_name="acme")
        actor = audit.Actor.system("layout check")
        tag = uuid.uuid4().hex[:6]
        services.create_token(tenant=acme, name=("t" * 94) + tag, scopes=["read"], actor=actor)
        member = (
            Membership.objects.filter(tenant=acme)
            .exclude(user__email="admin@acme.example")
            .earliest("created_at")
        )
        with schema_context("acme"):
            dashboards.create_dashboard(
                title=("D" * 194) + tag, description="x" * 2000, actor=actor
            )
            group = alerts.create_group(name=("G" * 194) + tag, interval="1m", actor=actor)
            made["group"] = group.public_id
            rule = alerts.create_rule(
                group_id=group.public_id,
                kind="alert",
                name=("R" * 194) + tag,
                expr="sum by (job) (up) == 0",
                for_duration="5m",
                keep_firing_for="",
                severity="P2",
                category="availability",
                labels={"team": "o" * 120},
                annotations={"summary": "s" * 500},
                enabled=True,
                actor=actor,
            )
            receiver = alerts.create_receiver(
                name=("r" * 94) + tag,
                kind="slack",
                settings={"channel": "#" + "c" * 70},
                secret="https://hooks.example/" + "h" * 200,
                actor=actor,
            )
            made["receiver"] = receiver.public_id
            incident = _long_incident(rule.name, actor)
            from dashboards.models import Dashboard

            executive = Dashboard.objects.get(title="Executive overview")
            panel = executive.panels.order_by("pk").first()
            assert panel is not None, "the Executive dashboard has no panels"
            return [
                f"/dashboards/{executive.public_id}/",
                f"/dashboards/{executive.public_id}/panels/new/",
                f"/dashboards/{executive.public_id}/panels/{panel.public_id}/",
                f"/alerts/groups/{group.public_id}/",
                f"/alerts/rules/{rule.public_id}/",
                f"/alerts/receivers/{receiver.public_id}/",
                f"/members/{member.public_id}/remove/",
                f"/incidents/{incident.public_id}/",
                "/incidents/?status=all",
            ]

    def forget() -> None:
        from django_tenants.utils import schema_context

        from alerts import services as alerts
        from tenants import audit

        actor = audit.Actor.system("layout check")
        with schema_context("acme"):
            if "group" in made:  # its rule goes with it
                alerts.delete_group(group_id=made["group"], actor=actor)
            if "receiver" in made:
                alerts.delete_receiver(receiver_id=made["receiver"], actor=actor)

    with django_db_blocker.unblock():
        paths = committed(create)
    try:
        yield paths
    finally:
        with django_db_blocker.unblock():
            committed(forget)


def _long_incident(alertname: str, actor):
    """A resolved security incident of long ago with long labels, notes and a breach flag.

    Resolved and months old, so it counts in no open list and no 30-day figure; its timeline is
    append-only, so it stays in acme for the rest of the run.
    """
    import json

    from alerts import services as alerts
    from alerts.incident_intake import apply_notification
    from alerts.intake import parse_notification

    alert = {
        "status": "resolved",
        "labels": {
            "alertname": alertname,
            "tenant": "acme",
            "severity": "P1",
            "category": "security",
            "service": "s" * 200,
            "team": "o" * 120,
        },
        "annotations": {"summary": "s" * 500, "description": "d" * 4000},
        "startsAt": "2026-01-05T10:00:00Z",
        "endsAt": "2026-01-05T11:00:00Z",
        "fingerprint": uuid.uuid4().hex[:16],
    }
    body = json.dumps({"version": "4", "status": "resolved", "alerts": [alert]})
    (incident,) = apply_notification(parse_notification(body.encode(), schema="acme")).opened
    alerts.add_incident_note(incident_id=incident.public_id, text="n" * 3000, actor=actor)
    alerts.flag_personal_data_breach(incident_id=incident.public_id, actor=actor)
    return incident


def _overflow(page: Page) -> int:
    """How many pixels the page is wider than the viewport (0 when it fits)."""
    return page.evaluate(
        "() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_every_main_page_fits_the_viewport(browsing: Browsing, long_data, width: int):
    page = browsing.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    browsing.sign_in(page, "acme", "admin@acme.example")
    too_wide = {}
    for path in [*TENANT_PAGES, *long_data]:
        response = page.goto(browsing.site.url("acme", path))
        assert response is not None and response.status == 200, path
        # Parts loaded after the page (the incident's chart) are measured too.
        page.wait_for_function("() => !document.querySelector('[hx-trigger=load]')")
        overflow = _overflow(page)
        if overflow:
            too_wide[path] = overflow
    public = browsing.new_page()
    public.set_viewport_size({"width": width, "height": 900})
    browsing.sign_in(public, None, "admin@acme.example")
    if _overflow(public):
        too_wide["public /"] = _overflow(public)
    assert too_wide == {}, f"pages wider than {width} px (by px): {too_wide}"


def test_the_phone_menu_opens_and_shows_the_navigation(browsing: Browsing):
    page = browsing.new_page()
    page.set_viewport_size({"width": 390, "height": 800})
    browsing.sign_in(page, "acme", "admin@acme.example")
    link = page.locator("nav").get_by_role("link", name="Members", exact=True)
    assert not link.is_visible()
    page.get_by_role("button", name="Menu").click()
    assert link.is_visible()


def _two_factor_state(require: bool, app: bool) -> None:
    """acme's requirement, and the operator's authenticator app: confirmed (`app`) or none."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tenants.models import Tenant

    Tenant.objects.filter(schema_name="acme").update(require_two_factor=require)
    TOTPDevice.objects.filter(user__email="operator@acme.example").delete()
    if app:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(email="operator@acme.example")
        TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_two_factor_pages_fit_the_viewport(browsing: Browsing, django_db_blocker, width):
    too_wide = {}
    page = browsing.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    browsing.sign_in(page, "acme", "operator@acme.example")
    page.goto(browsing.site.url("acme", "/accounts/profile/"))
    page.get_by_role("button", name="Set up an authenticator app").click()
    page.wait_for_load_state()
    assert page.locator(".qr svg").is_visible()
    too_wide["profile: set-up (QR code and key)"] = _overflow(page)
    with django_db_blocker.unblock():
        committed(lambda: _two_factor_state(require=True, app=True))
    try:
        refused = browsing.site.url("acme", "/alerts/rules/")
        browsing.expect_http_error(refused, 403)
        assert page.goto(refused).status == 403
        too_wide["requires two-factor (code form)"] = _overflow(page)
        page.goto(browsing.site.url("acme", "/accounts/profile/"))
        page.locator("#two-factor summary").click()
        too_wide["profile: app on, removal open"] = _overflow(page)
        code_step = browsing.new_page()
        code_step.set_viewport_size({"width": width, "height": 900})
        browsing.sign_in(code_step, "acme", "operator@acme.example")
        assert "step=code" in code_step.url
        too_wide["sign-in: code step"] = _overflow(code_step)
    finally:
        with django_db_blocker.unblock():
            committed(lambda: _two_factor_state(require=False, app=False))
    assert {path: px for path, px in too_wide.items() if px} == {}, f"wider than {width} px"


@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_arrange_mode_fits_and_moves_a_panel_by_keyboard(browsing: Browsing, width: int):
    page = browsing.new_page()
    page.set_viewport_size({"width": width, "height": 1400})
    browsing.sign_in(page, "acme", "admin@acme.example")
    page.goto(browsing.site.url("acme", "/dashboards/"))
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("button", name="Arrange panels").click()
    assert page.locator("#arrange-form").is_visible() and _overflow(page) == 0

    def titles() -> list[str]:
        return page.eval_on_selector_all(
            "#panel-grid > .panel", "cards => cards.map(c => c.dataset.title)"
        )

    first = titles()[0]
    page.locator('[data-arrange="drag"]').first.focus()
    page.keyboard.press("ArrowDown")
    assert titles()[1] == first
    page.get_by_role("button", name="Cancel").click()  # nothing saved, all put back
    assert titles()[0] == first and not page.locator("#arrange-form").is_visible()
