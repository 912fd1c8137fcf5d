"""Chromium, driven by Playwright's sync API, against the live ASGI server.

Every test gets fresh browser contexts whose pages are watched: an uncaught JavaScript error, a
console error or a Content-Security-Policy violation fails the test that caused it.

Playwright's sync API keeps an asyncio loop running in the main thread while the browser is up,
and Django refuses ORM calls from a thread with a running loop. While the browser is up (this
package only; no portal code runs in this process meanwhile, the server is its own process),
DJANGO_ALLOW_ASYNC_UNSAFE lets pytest-django open and roll back each test's transaction. Data a
test needs is written by `committed`, in a short-lived worker thread with its own connection, so
it is committed and visible to the server process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.helpers import IN_CI, PASSWORD, host_of, run_committed

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1",
]
TIMEOUT_MS = 15_000

# Reports `securitypolicyviolation` events to the test through an exposed binding; bindings are
# installed by the browser itself, so the page's own CSP does not block them.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__portalCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} on ${event.documentURI}`
  );
});
"""
_HTTP_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


# The browser tests' name for it: ORM work run in its own thread and connection, committed.
committed = run_committed


@dataclass
class Site:
    """Addresses of the live server: the public site and tenant hosts on the same port."""

    port: int

    def host(self, slug: str | None = None) -> str:
        return f"{host_of(slug)}:{self.port}"

    def url(self, slug: str | None = None, path: str = "/") -> str:
        return f"http://{self.host(slug)}{path}"


@dataclass
class Browsing:
    """Opens watched browser contexts for one test and collects what went wrong in them."""

    browser: Browser
    site: Site
    problems: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)
    # (url, status) pairs a test expects to be answered with an HTTP error, e.g. a 403 page.
    expected_http_errors: set[tuple[str, int]] = field(default_factory=set)
    # Console errors a test provokes on purpose (a WebSocket refused while the server is down).
    expected_console: list[re.Pattern] = field(default_factory=list)

    def new_page(self) -> Page:
        context = self.browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        context.expose_binding(
            "__portalCspViolation",
            lambda source, text: self.problems.append(f"CSP violation: {text}"),
        )
        context.add_init_script(_CSP_LISTENER)
        context.on("console", self._on_console)
        context.on("weberror", lambda error: self.problems.append(f"JS error: {error.error}"))
        self.contexts.append(context)
        return context.new_page()

    def expect_http_error(self, url: str, status: int) -> None:
        self.expected_http_errors.add((url, status))

    def expect_console_error(self, pattern: str) -> None:
        self.expected_console.append(re.compile(pattern))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        status = _HTTP_ERROR.search(message.text)
        url = message.location.get("url", "")
        if status and (url, int(status.group(1))) in self.expected_http_errors:
            return
        if any(pattern.search(message.text) for pattern in self.expected_console):
            return
        self.problems.append(f"console error at {url or '?'}: {message.text}")

    def sign_in(self, page: Page, slug: str | None, email: str, password: str = PASSWORD) -> None:
        """Sign in through the login form of `slug`'s host (the public site when None)."""
        page.goto(self.site.url(slug, "/accounts/login/"))
        submit_login_form(page, email, password)

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


def submit_login_form(page: Page, email: str, password: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for this package, so Playwright's loop is gone before other tests run."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"Chromium is not installed at {CHROMIUM} (Debian package `chromium`)"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                # While the loop runs, Django keys the main thread's connections by that loop's
                # context: close them now, or they would outlive the test database.
                connections.close_all()
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def site(live_server_url: str) -> Site:
    return Site(port=int(live_server_url.rsplit(":", 1)[1]))


@pytest.fixture
def browsing(browser: Browser, site: Site) -> Iterator[Browsing]:
    session = Browsing(browser=browser, site=site)
    try:
        yield session
    finally:
        session.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose pages logged a JS error or a CSP violation fails, even if it asserted OK."""
    result = yield
    session = getattr(item, "funcargs", {}).get("browsing")
    if isinstance(session, Browsing) and session.problems:
        raise AssertionError("the browser reported problems:\n" + "\n".join(session.problems))
    return result


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $PORTAL_E2E_ARTIFACTS if set, else a pytest temporary directory."""
    configured = os.environ.get("PORTAL_E2E_ARTIFACTS")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("e2e-artifacts")
