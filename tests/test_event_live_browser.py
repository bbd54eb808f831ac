"""The live on-sale view in Debian's Chromium: an owner opens it from the event page and
watches it change by itself (htmx polling, no reload) when a buyer in another browser
holds tickets and when an order is made; hidden, the page stops asking. Screenshots in
tests/artifacts/admin-event-live*.png."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import TicketType
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

pytestmark = pytest.mark.browser


def _sold(event, n: int) -> None:
    """An order of ``n`` tickets, its tickets counted sold as fulfilment counts them."""
    make_order(event, [("Ada", f"Lovelace{i}") for i in range(n)])
    with write_transaction():
        db.session.execute(
            update(TicketType).where(TicketType.id == event.ticket_types[0].id).values(sold=TicketType.sold + n)
        )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_live_view_follows_a_buyer_in_another_browser(live, browser, viewport):
    from playwright.sync_api import expect

    _app, base_url = live
    organiser = make_organiser("harbour", "Harbour Arts")
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    event = make_event_of(organiser, "Lighthouse Sessions", slug="lighthouse", timezone="Europe/London")
    tt = event.ticket_types[0]
    _sold(event, 1)

    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    sign_in_on_page(page, base_url, "owner@harbour.example")
    page.goto(f"{base_url}/admin/o/harbour/events/lighthouse")
    page.get_by_role("button", name="Live", exact=True).click()
    expect(page.get_by_role("heading", name="Live: Lighthouse Sessions")).to_be_visible()
    held, sold = page.locator('[data-live="held"]'), page.locator('[data-live="sold"]')
    expect(sold).to_have_text("1 / 100")
    expect(held).to_have_text("0")
    watch.mark()

    buyer_context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    buyer = buyer_context.new_page()
    buyer.goto(f"{base_url}/events/lighthouse")
    buyer.locator(f'input[name="quantity-{tt.id}"]').fill("3")
    buyer.get_by_role("button", name="Add to cart").click()
    expect(buyer.locator("#cart .cart-line")).to_have_count(1)
    buyer_context.close()

    # The page asks every 5 s, and a reading may be 2 s old: within 10 s it shows the hold.
    expect(held).to_have_text("3", timeout=10_000)
    _sold(event, 4)
    expect(sold).to_have_text("5 / 100", timeout=10_000)
    expect(page.locator('[data-live="left"]')).to_have_text("92")
    watch.assert_not_reloaded()
    page.locator("details summary").click()
    shoot(page, "event-live", viewport)
    assert_no_script_trouble(watch)

    # Hidden (another tab), the page drops its polls; shown again, it asks at once.
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    # Counted once hidden: a poll that left just before is not the script's failure.
    page.wait_for_timeout(500)
    polls = [r for r in watch.requests if r.url.endswith("/live")]
    page.wait_for_timeout(6_000)
    assert [r for r in watch.requests if r.url.endswith("/live")] == polls
    _sold(event, 1)
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    expect(sold).to_have_text("6 / 100", timeout=3_500)  # before the next 5 s poll
    context.close()
