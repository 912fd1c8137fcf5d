"""Every main page fits a phone (390 px) and a laptop (1366 px): nothing widens the page.

The tenant holds the kind of data that used to break layouts: a 100-character token name, a
200-character dashboard title with no spaces, and an audit event with a long value.
"""

from __future__ import annotations

import uuid

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
    "/incidents/",
    "/compliance/",
]


@pytest.fixture(scope="module")
def long_data(django_db_blocker) -> str:
    """Writes the long data; returns the path of acme's Executive dashboard (Plotly panels)."""

    def create() -> str:
        from django_tenants.utils import schema_context

        from dashboards import services as dashboards
        from tenants import audit, services
        from tenants.models import Tenant

        acme = Tenant.objects.get(schema_name="acme")
        actor = audit.Actor.system("layout check")
        tag = uuid.uuid4().hex[:6]
        services.create_token(tenant=acme, name=("t" * 94) + tag, scopes=["read"], actor=actor)
        with schema_context("acme"):
            dashboards.create_dashboard(
                title=("D" * 194) + tag, description="x" * 2000, actor=actor
            )
            from dashboards.models import Dashboard

            executive = Dashboard.objects.get(title="Executive overview")
            return f"/dashboards/{executive.public_id}/"

    with django_db_blocker.unblock():
        return committed(create)


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
    for path in [*TENANT_PAGES, long_data]:
        response = page.goto(browsing.site.url("acme", path))
        assert response is not None and response.status == 200, path
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
