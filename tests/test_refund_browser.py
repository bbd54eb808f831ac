"""A partial refund in Debian's Chromium: a manager opens an order of 3 tickets, refunds one
of them with "put back on sale", reviews, confirms, and lands on the order page with the
refund's row and the ticket void; stock has one more place. Then the confirmation is sent
again and shows in the order's mails. Desktop and phone (390 px)
widths; screenshots in tests/artifacts/admin-refund-*.png."""

from __future__ import annotations

import pytest

from storefront.extensions import db
from storefront.models import Event
from storefront.staff_models import Role

from .admin_support import add_member, make_user
from .browser_support import PageWatch, browser  # noqa: F401 (browser: fixture)
from .checkout_support import sandbox, shop  # noqa: F401 (shop, sandbox: fixtures)
from .test_admin_browser import DESKTOP, PHONE, assert_no_script_trouble, shoot, sign_in_on_page
from .test_refunds import paid_order

pytestmark = pytest.mark.browser


# One backend is enough for the screenshots; the refunds themselves run on both (test_order_action_views.py).
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_manager_refunds_one_ticket_of_three_and_puts_it_back_on_sale(shop, sandbox, browser, backend, viewport):
    from playwright.sync_api import expect

    order = paid_order(shop, sandbox, quantity=3)  # 3 × €25.00
    event = db.session.get(Event, order.event_id)
    sold_before = event.ticket_types[0].sold
    first = sorted(order.tickets, key=lambda t: t.id)[0]
    add_member(make_user("manager-refunds@example.com"), event.organiser, Role.MANAGER)
    shop.config["WTF_CSRF_ENABLED"] = True  # the buying above posted the shop's forms without tokens
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, shop.live_url, "manager-refunds@example.com")
        page.goto(f"{shop.live_url}/admin/o/{event.organiser.slug}/events/{event.slug}/orders/{order.code}")
        expect(page.locator("h1")).to_have_text(f"Order {order.code}")
        shoot(page, "refund-order", viewport)
        page.get_by_role("button", name="Refund…", exact=True).click()
        page.get_by_label("These tickets (they become void)").check()
        page.get_by_label(first.code[:5], exact=False).check()
        page.get_by_label("Put the chosen tickets back on sale").check()
        page.get_by_label("Reason").fill("Could not come")
        shoot(page, "refund-form", viewport)
        page.get_by_role("button", name="Review the refund").click()
        expect(page.locator(".confirm-what")).to_contain_text("Refund €25.00.")
        expect(page.locator(".confirm-what")).to_contain_text("They go back on sale.")
        shoot(page, "refund-confirm", viewport)
        page.get_by_role("button", name="Refund now").click()

        expect(page.locator("h1")).to_have_text(f"Order {order.code}")
        expect(page.get_by_text("Refund asked of Stripe.")).to_be_visible()
        refunds = page.locator("section", has=page.get_by_role("heading", name="Refunds")).locator("tbody tr")
        expect(refunds).to_have_count(1)
        expect(refunds.first).to_contain_text("€25.00")
        expect(refunds.first).to_contain_text("Could not come")
        expect(refunds.first).to_contain_text("Refunded")
        tickets = page.locator("section", has=page.get_by_role("heading", name="Tickets")).locator("tbody tr")
        expect(tickets.filter(has_text="Void")).to_have_count(1)
        expect(tickets.filter(has_text="Valid")).to_have_count(2)
        expect(tickets.filter(has_text="Void")).to_contain_text(first.code[:5])
        shoot(page, "refund-done", viewport)

        # The buyer lost the mail: the confirmation again, with its remaining tickets.
        page.get_by_role("button", name="Resend confirmation…").click()
        expect(page.locator(".confirm-what")).to_contain_text(f"goes again to {order.buyer_email}")
        shoot(page, "resend-confirm", viewport)
        page.get_by_role("button", name="Send it again").click()
        expect(page.get_by_text(f"The confirmation is on its way again to {order.buyer_email}.")).to_be_visible()
        mails = page.locator("section", has=page.get_by_role("heading", name="Mails")).locator("li")
        expect(mails.filter(has_text="Order confirmation, sent again (1)")).to_have_count(1)
        assert_no_script_trouble(watch)
    finally:
        context.close()
    db.session.rollback()
    assert db.session.get(Event, order.event_id).ticket_types[0].sold == sold_before - 1
