"""The whole purchase in Debian's Chromium: event → cart → attendee names → checkout →
the sandbox's hosted page (its own process) → the success page polling → the order.

The storefront is served over HTTP with CSRF on; the sandbox delivers its signed
webhooks to it. Screenshots of each page go to ``tests/artifacts/checkout-*.png`` (and to
``docs/screenshots/`` with ``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import shutil

import pytest

from .browser_support import ARTIFACTS, PageWatch
from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    deliver,
    drop_completed,
    order_of,
    sandbox,
    shop,
    stripe_event,
)
from .factories import make_event, ticket_type
from .test_sandbox_browser import DOC_SHOTS, browser, fill_card  # noqa: F401 (browser: fixture)

pytestmark = pytest.mark.browser


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed pictures on purpose only
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, DOC_SHOTS / name)


def go_to_stripe(page, shop, sandbox, event, tt, attendees: list[tuple[str, str]], email: str) -> str:
    """From the event page to the sandbox's hosted page: one ticket per attendee of type
    ``tt``, the names and email given, Pay pressed. Returns the Checkout Session's id."""
    from playwright.sync_api import expect

    page.goto(f"{shop.live_url}/events/{event.slug}")
    page.locator(f"input[name='quantity-{tt.id}']").fill(str(len(attendees)))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart")).to_contain_text(tt.name)
    page.get_by_role("button", name="Checkout").click()
    page.get_by_label("Email for your tickets").fill(email)
    for n, (first, last) in enumerate(attendees, 1):
        page.locator(f"input[name='first-{n}']").fill(first)
        page.locator(f"input[name='last-{n}']").fill(last)
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(f"{sandbox.base}/pay/cs_*")
    return page.url.rsplit("/", 1)[1]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_buyer_buys_two_named_tickets_and_sees_the_order(shop, sandbox, browser):
    from playwright.sync_api import expect

    event = make_event(
        title="Jazz at the Harbour",
        ticket_types=[
            {"name": "Early Bird", "price_minor": 1900, "capacity": 12},
            {"name": "Standard", "price_minor": 2500, "capacity": 100},
        ],
    )
    early = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{shop.live_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{early.id}']").fill("2")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator("#cart")).to_contain_text("Early Bird")
        shoot(page, "checkout-1-event-with-cart.png")

        page.get_by_role("button", name="Checkout").click()
        expect(page.locator("h1")).to_have_text("Checkout")
        page.get_by_label("Email for your tickets").fill("ada@example.com")
        page.locator("input[name='first-1']").fill("Ada")
        page.locator("input[name='last-1']").fill("Lovelace")
        page.locator("input[name='first-2']").fill("Charles")
        page.locator("input[name='last-2']").fill("Babbage")
        shoot(page, "checkout-2-attendee-names.png")
        page.get_by_role("button", name="Pay").click()

        page.wait_for_url(f"{sandbox.base}/pay/cs_*")
        expect(page.get_by_role("button", name="Pay €38.00")).to_be_visible()
        fill_card(page, "4242 4242 4242 4242")
        shoot(page, "checkout-3-stripe-page.png")
        session_id = page.url.rsplit("/", 1)[1]
        page.get_by_role("button", name="Pay €38.00").click()

        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        # The page polls until the webhook's order shows up, then stops.
        expect(page.locator(".order h1")).to_contain_text("Your order", timeout=15_000)
        order = order_of(session_id)
        expect(page.locator(".order h1")).to_have_text(f"Your order {order.code}")
        expect(page.locator("tr.ticket")).to_have_count(2)
        expect(page.locator(".order")).to_contain_text("Charles Babbage")
        # Each ticket's QR code is there on the success page already.
        expect(page.locator(".ticket-card figure.ticket-qr-box svg")).to_have_count(2)
        expect(page.locator(".order tfoot")).to_contain_text("€38.00")
        shoot(page, "checkout-4-success-order.png")
        assert watch.posts("/checkout"), "the checkout form was posted"
        watch.assert_clean()

        # The link in the order brings the buyer back later.
        page.goto(page.locator("a.order-link").get_attribute("href"))
        expect(page.locator(".order h1")).to_have_text(f"Your order {order.code}")
        assert (ticket_type(early.id).sold, ticket_type(early.id).held) == (2, 0)
    finally:
        context.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_bank_debit_buyer_is_told_it_is_processing_then_sees_the_order(shop, sandbox, browser):
    from playwright.sync_api import expect

    event = make_event(title="Opera Gala", ticket_types=[{"name": "Stalls", "price_minor": 4500, "capacity": 10}])
    tt = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        session_id = go_to_stripe(page, shop, sandbox, event, tt, [("Grace", "Hopper")], "grace@example.com")
        page.get_by_label("Bank debit").check()
        page.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 00")
        page.get_by_label("Name on card or account").fill("Grace Hopper")
        page.get_by_role("button", name="Pay €45.00").click()

        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        expect(page.locator("#payment-status h1")).to_have_text("Your payment is being processed", timeout=15_000)
        shoot(page, "checkout-5-bank-debit-processing.png")
        assert order_of(session_id) is None

        # The debit settles: the page, still polling, swaps in the order.
        from storefront.payments import gateway as gw

        pi_id = gw.get_gateway().retrieve_checkout_session(session_id).payment_intent
        sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
        expect(page.locator(".order")).to_contain_text("Grace Hopper", timeout=15_000)
        watch.assert_clean()
        assert (ticket_type(tt.id).sold, ticket_type(tt.id).held) == (1, 0)
    finally:
        context.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_buyer_pays_in_yen_and_every_page_says_whole_yen(shop, sandbox, browser):
    from playwright.sync_api import expect

    event = make_event(
        title="Tokyo Design Summit",
        currency="JPY",
        timezone="Asia/Tokyo",
        ticket_types=[{"name": "Early bird", "price_minor": 12000, "capacity": 10}],
    )
    tt = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{shop.live_url}/events/{event.slug}")
        expect(page.locator(f"#ticket-type-{tt.id} .tt-price")).to_have_text("¥12,000")
        session_id = go_to_stripe(
            page, shop, sandbox, event, tt, [("Kenji", "Sato"), ("Yuki", "Tanaka")], "kenji@example.com"
        )
        expect(page.get_by_role("button", name="Pay ¥24,000")).to_be_visible()
        fill_card(page, "4242 4242 4242 4242")
        shoot(page, "checkout-6-stripe-page-yen.png")
        page.get_by_role("button", name="Pay ¥24,000").click()

        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        expect(page.locator(".order tfoot")).to_contain_text("¥24,000", timeout=15_000)
        shoot(page, "checkout-7-success-order-yen.png")
        watch.assert_clean()
        order = order_of(session_id)
        assert (order.total_minor, order.currency) == (24000, "JPY")
    finally:
        context.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_payment_of_another_amount_tells_the_buyer_it_is_being_checked(shop, sandbox, browser):
    """Stripe's completion reports another amount than the session asked for: the
    polling success page stops and says a person is looking, with no order."""
    from playwright.sync_api import expect

    event = make_event(title="Opera Gala", ticket_types=[{"name": "Stalls", "price_minor": 4500, "capacity": 10}])
    tt = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        session_id = go_to_stripe(page, shop, sandbox, event, tt, [("Grace", "Hopper")], "grace@example.com")
        drop_completed(sandbox)
        fill_card(page, "4242 4242 4242 4242")
        page.get_by_role("button", name="Pay €45.00").click()
        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        completed = stripe_event("checkout.session.completed", session_id).to_dict()
        completed["data"]["object"]["amount_total"] = 450
        assert deliver(shop.test_client(), completed).status_code == 200

        expect(page.locator("#payment-status h1")).to_have_text("We are checking your payment", timeout=15_000)
        expect(page.locator("#payment-status")).to_contain_text("please do not pay again")
        shoot(page, "checkout-8-payment-under-review.png")
        watch.assert_clean()
        assert order_of(session_id) is None
        assert (ticket_type(tt.id).held, ticket_type(tt.id).sold) == (1, 0)
    finally:
        context.close()
