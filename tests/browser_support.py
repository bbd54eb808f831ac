"""Shared by the browser tests: Debian's Chromium through Playwright, and what a page did.

Without ``/usr/bin/chromium`` the browser tests skip, saying why, except when
``STOREFRONT_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from storefront.extensions import db

from .conftest import clean, make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("STOREFRONT_REQUIRE_BROWSER") == "1"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"

# Playwright's expect() waits up to this long (ms) for the page to get there.
EXPECT_TIMEOUT_MS = 5_000


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(reason + " (STOREFRONT_REQUIRE_BROWSER=1: browser tests may not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: install Debian's chromium package to run the browser tests")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:  # pragma: no cover - playwright is a test dependency
        _unavailable(f"playwright is not installed: {error}")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """What happened on a page: console errors, uncaught exceptions, CSP violations,
    main-frame navigations (a reload is one) and the htmx requests it made."""

    def __init__(self, page):
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.navigations: list[str] = []
        self.requests = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("framenavigated", lambda frame: frame == page.main_frame and self.navigations.append(frame.url))
        page.on("request", lambda request: self.requests.append(request))

    def _console(self, message):
        if message.type == "error" and "favicon" not in message.text:
            self.console_errors.append(message.text)

    @property
    def csp_violations(self) -> list[str]:
        return [text for text in self.console_errors if "Content Security Policy" in text]

    def posts(self, path_suffix: str) -> list:
        return [r for r in self.requests if r.method == "POST" and r.url.endswith(path_suffix)]

    def mark(self) -> None:
        """Leave a mark in the page's JavaScript state: a reload would wipe it."""
        self.page.evaluate("window.__marker = 1")
        self._navigations_at_mark = len(self.navigations)

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__marker") == 1, "the page was reloaded"
        assert len(self.navigations) == self._navigations_at_mark, f"the page navigated: {self.navigations}"

    def assert_clean(self) -> None:
        """No CSP violation, console error or uncaught exception so far."""
        assert not self.csp_violations, self.csp_violations
        assert not self.console_errors, self.console_errors
        assert not self.page_errors, self.page_errors


@pytest.fixture(scope="module")
def live_server(database_urls):
    """The real app on SQLite, CSRF enabled, served over HTTP from a background thread."""
    app = make_app(database_urls["sqlite"], WTF_CSRF_ENABLED=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        clean(app)


@pytest.fixture
def live(live_server):
    """(app, base URL) with empty tables, and the app context pushed for the factories."""
    app, base_url = live_server
    clean(app)
    # What the process keeps between requests goes with the tables (ids are reused).
    app.extensions.pop("live_sales_cache", None)
    with app.app_context():
        yield app, base_url
        db.session.remove()
