"""Cancelling an event with paid orders in Debian's Chromium: the confirm step says how many
orders and how much it refunds; the progress page polls (htmx) from "Refunding…" to
"Finished" while the run refunds them against the sandbox, and a refund that failed later
is listed with its Retry button. Screenshots in tests/artifacts/admin-event-cancel*.png."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storefront import cancellations
from storefront.extensions import db
from storefront.models import Refund
from storefront.staff_models import Role

from .admin_support import add_member, make_user
from .browser_support import PageWatch, browser  # noqa: F401 (browser: fixture)
from .checkout_support import CARD_OK, sandbox, shop  # noqa: F401 (shop, sandbox: fixtures)
from .test_admin_browser import DESKTOP, assert_no_script_trouble, shoot, sign_in_on_page
from .test_event_cancellation import CARD_REFUND_FAILS, orders_of_one_event

pytestmark = pytest.mark.browser


# One backend is enough for the screenshots; the run itself is proven on both (test_event_cancellation.py).
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_owner_cancels_an_event_and_watches_its_refunds(shop, sandbox, browser, backend):
    from playwright.sync_api import expect

    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK, CARD_OK, CARD_REFUND_FAILS])
    add_member(make_user("owner-cancels@example.com"), event.organiser, Role.OWNER)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, shop.live_url, "owner-cancels@example.com")
        page.goto(f"{shop.live_url}/admin/o/{event.organiser.slug}/events/{event.slug}")
        page.get_by_role("button", name="Cancel the event…").click()
        expect(page.locator("article strong")).to_have_text("This refunds 3 orders, total €75.00.")
        shoot(page, "event-cancel-confirm", DESKTOP)
        page.get_by_role("button", name="Cancel the event and refund 3 orders").click()
        expect(page.locator("h1")).to_contain_text("Cancellation of")
        expect(page.locator("#cancellation-progress")).to_contain_text("Refunding…")
        shoot(page, "event-cancel-running", DESKTOP)

        db.session.rollback()
        run_id = cancellations.of_event(event.id).id
        cancellations.run(run_id)  # the job's work (no worker consumes the queue here)
        failing = db.session.execute(select(Refund).where(Refund.order_id == orders[2].id)).scalar_one()
        sandbox.control("POST", f"/_sandbox/refunds/{failing.stripe_refund_id}/settle", {})
        expect(page.locator("#cancellation-progress")).to_contain_text("Finished", timeout=15000)
        page.reload()
        expect(page.locator("#cancellation-progress")).to_contain_text(orders[2].code, timeout=15000)
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        shoot(page, "event-cancel-finished", DESKTOP)
        assert_no_script_trouble(watch)
    finally:
        context.close()
