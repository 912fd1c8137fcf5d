"""An open live dashboard comes back by itself: after the server restarts and after Redis
restarts, the page says "reconnecting…", then "live" again without a reload, and a sample pushed
afterwards reaches it. While Redis is down, ingest still stores what applications send.

This module serves the portal from a uvicorn and a Redis (Valkey) of its own, so that both can be
stopped and started again on the same ports while the page stays open.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_browser
from tests.e2e.conftest import Browsing, Site, committed
from tests.e2e.test_dashboard_live_browser import (
    SHOWS_VALUE,
    executive_dashboard_path,
    ingest_secrets,
    open_dashboard,
    panel_id,
    push_revenue,
    pushed,
    stat_value,
)
from tests.restartable import Restartable, running

pytestmark = pytest.mark.django_db
forget_sign_ins = test_browser.forget_sign_ins
# Fixtures of the live-dashboard module, used here as they are.
__all__ = ["ingest_secrets", "pushed"]

# The page retries after 1, 2, 4 ... s (at most 30 s apart); a restart under load can take ten.
BACK_WITHIN_MS = 75_000
PUSH_WITHIN_MS = 2_000


@pytest.fixture(scope="module")
def served(process_env, tmp_path_factory) -> Iterator[Restartable]:
    with running(process_env, tmp_path_factory.mktemp("restartable")) as parts:
        yield parts


@pytest.fixture(scope="module")
def site(served: Restartable) -> Site:
    return Site(port=served.port)


def shows_state(page: Page, state: str, timeout: int) -> None:
    expect(page.locator("#live-state")).to_have_attribute("data-state", state, timeout=timeout)


def pushed_sample_arrives(
    page: Page, browsing: Browsing, secret: str, pushed: dict[str, list[float]]
) -> None:
    series, stat = panel_id(page, "Revenue per minute"), panel_id(page, "Revenue")
    value = round(random.uniform(900_000, 999_999), 3)  # noqa: S311 (not a secret)
    before = stat_value(page, stat)
    pushed["acme"].append(value)
    push_revenue(browsing, "acme", secret, value)
    page.wait_for_function(SHOWS_VALUE, arg=[series, stat, value, before], timeout=PUSH_WITHIN_MS)


@pytest.mark.timeout(240)
def test_the_page_comes_back_after_the_server_and_redis_restart(
    served: Restartable,
    browsing: Browsing,
    ingest_secrets: dict[str, str],
    pushed: dict[str, list[float]],
    django_db_blocker,
):
    # While a part is down the browser logs the refused socket; that is what is being tested.
    browsing.expect_console_error(r"WebSocket connection to .* failed")
    with django_db_blocker.unblock():
        path = committed(lambda: executive_dashboard_path("acme"))
    page, _ = open_dashboard(browsing, "acme", path)
    page.evaluate("window.__stillTheSamePage = true")
    secret = ingest_secrets["acme"]

    served.stop_server()
    shows_state(page, "reconnecting", timeout=10_000)
    expect(page.locator("#live-state")).to_have_text("reconnecting…")
    served.start_server()
    shows_state(page, "live", timeout=BACK_WITHIN_MS)
    pushed_sample_arrives(page, browsing, secret, pushed)

    served.stop_redis()
    shows_state(page, "reconnecting", timeout=BACK_WITHIN_MS)
    # Without Redis a batch is still stored (202), only not pushed live; nothing is lost.
    offline_value = round(random.uniform(800_000, 899_999), 3)  # noqa: S311 (not a secret)
    pushed["acme"].append(offline_value)
    push_revenue(browsing, "acme", secret, offline_value)
    served.start_redis()
    shows_state(page, "live", timeout=BACK_WITHIN_MS)
    pushed_sample_arrives(page, browsing, secret, pushed)
    assert page.evaluate("window.__stillTheSamePage === true")
