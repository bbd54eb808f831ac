"""axe-core on the back office's main pages, in English and French at desktop size: no
WCAG 2.0/2.1/2.2 A or AA violation, nor best-practice one (``axe_support``).

Sign-in, the events list, an event, the orders list, an order, the payments dashboard and
the door (its list of events, and an event's check-in). Screenshots go to
``tests/artifacts/admin-axe-<page>-<en|fr>.png`` (the back office's reviewed pictures are
``test_admin_browser``'s).
"""

from __future__ import annotations

import pytest

from storefront.staff_models import Role

from .admin_support import PASSWORD, add_member, make_event_of, make_organiser, make_user
from .axe_support import assert_accessible, axe_source
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_order
from .test_admin_browser import DESKTOP, assert_no_script_trouble

pytestmark = pytest.mark.browser

LOCALES = {"en": "en-GB", "fr": "fr-FR"}


@pytest.mark.parametrize("lang", list(LOCALES))
def test_the_back_office_pages_have_no_axe_violation(live, browser, lang):  # noqa: F811
    from playwright.sync_api import expect

    axe_source()  # axe-core missing: skip (or fail in CI) before doing anything
    _, base = live
    organiser = make_organiser("harbour", "Harbour Events")
    event = make_event_of(organiser, "Jazz at the Harbour", slug="jazz")
    order = make_order(event, [("Ada", "Lovelace"), ("Charles", "Babbage")])
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[lang])
    try:
        page = context.new_page()
        watch = PageWatch(page)

        def check(name: str) -> None:
            assert page.locator("html").get_attribute("lang") == lang, f"{name}: <html lang> is not {lang}"
            assert_accessible(page, f"admin {name} ({lang}, {page.url})")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.mouse.move(0, 0)
            page.screenshot(path=str(ARTIFACTS / f"admin-axe-{name}-{lang}.png"), full_page=True)

        page.goto(f"{base}/admin/sign-in")
        check("sign-in")
        page.locator("input[name='email']").fill("owner@harbour.example")
        page.locator("input[name='password']").fill(PASSWORD)
        page.locator("main form button[type='submit']").click()
        expect(page.locator("h1")).to_have_text("Harbour Events")

        admin = f"{base}/admin/o/harbour"
        for name, path in [
            ("events", "/events"),
            ("event", "/events/jazz"),
            ("orders", "/orders"),
            ("order", f"/events/jazz/orders/{order.code}"),
            ("payments", "/reports"),
            ("door-events", "/door"),
            ("door", "/events/jazz/door"),
        ]:
            assert page.goto(admin + path).status == 200, path
            page.wait_for_load_state("networkidle")
            check(name)
        assert_no_script_trouble(watch)
    finally:
        context.close()
