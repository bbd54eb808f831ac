"""The payments dashboard in Debian's Chromium, at desktop and phone width: reached from
the event's page, its figures, its SVG charts (no script, no CSP violation) beside their
tables, and a bad period said on the page. Screenshots in tests/artifacts/admin-report*.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, TicketType, utcnow
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_order
from .test_admin_browser import DESKTOP, PHONE, assert_no_script_trouble, shoot, sign_in_on_page
from .test_reports import _at, _attempt, _refund

pytestmark = pytest.mark.browser


def _a_month_of_sales(event) -> None:
    standard, vip = event.ticket_types
    now = utcnow()
    for day in range(12):
        for n in range(day % 4 + 1):
            order = make_order(
                event, [("Ada", "Lovelace")] * (1 + n % 2), ticket_type_id=(vip if n == 2 else standard).id
            )
            _at(order, now - timedelta(days=day, hours=n))
            _attempt(event, AttemptStatus.PAID, when=now - timedelta(days=day, hours=n))
            if day == 3 and n == 0:
                _refund(order, order.total_minor)
    for code, decline, times in (
        ("card_declined", "insufficient_funds", 5),
        ("card_declined", "expired_card", 2),
        ("payment_intent_authentication_failure", None, 3),
        ("payment_method_provider_decline", None, 1),
        (None, None, 4),
    ):
        for _ in range(times):
            _attempt(event, AttemptStatus.EXPIRED, code=code, decline=decline, when=now - timedelta(days=2))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_payments_dashboard(live, browser, viewport):
    from playwright.sync_api import expect

    _app, base_url = live
    organiser = make_organiser("harbour", "Harbour Arts")
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    event = make_event_of(organiser, "Lighthouse Sessions", slug="lighthouse", timezone="Europe/London")
    with write_transaction():
        db.session.add(TicketType(event_id=event.id, name="VIP", price_minor=9000, capacity=50, position=1))
    db.session.rollback()
    event = db.session.get(type(event), event.id)
    _a_month_of_sales(event)

    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@harbour.example")
        page.goto(f"{base_url}/admin/o/harbour/events/lighthouse")
        page.get_by_role("button", name="Payments dashboard").click()
        expect(page.locator("h1")).to_have_text("Payments dashboard: Lighthouse Sessions")
        expect(page.get_by_role("button", name="Last 30 days")).to_have_attribute("aria-current", "page")
        expect(page.get_by_role("img", name="Funnel: carts, checkouts started, paid orders")).to_be_visible()
        expect(page.get_by_role("img", name="Attempts that did not pay, by reason")).to_be_visible()
        expect(page.get_by_role("img", name="Tickets sold per ticket type, by day")).to_be_visible()
        expect(page.locator(".report-figures")).to_contain_text("Success rate")
        expect(page.locator("table").nth(2)).to_contain_text("Insufficient funds")
        expect(page.locator(".report-money")).to_contain_text("EUR")
        shoot(page, "report", viewport)

        page.get_by_label("From").fill("2026-03-05")
        page.get_by_label("To (included)").fill("2026-03-01")
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_role("alert")).to_contain_text("The period ends before it starts")
        expect(page.get_by_label("From")).to_have_attribute("aria-invalid", "true")
        shoot(page, "report-bad-period", viewport)
        assert_no_script_trouble(watch)
    finally:
        context.close()
