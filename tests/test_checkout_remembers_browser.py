"""Forms and states that do what a buyer expects (issue 12), in Chromium: the checkout
form filled again after a declined card and Back, and after a lapse; one honest
countdown, announced once in its last minute and at its end; at 0:00 on the checkout
page one message and the way back; a double-click on Add and a cart quantity of 0 or
over the limit answered honestly. Screenshots (desktop and 390 px) go to
``tests/artifacts/forms-*.png``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Cart, PaymentAttempt, utcnow

from .browser_support import PageWatch
from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    sandbox,
    shop,
)
from .factories import make_event
from .test_checkout_browser import go_to_stripe, shoot
from .test_sandbox_browser import browser, fill_card  # noqa: F401 (browser: fixture)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("backend", ["sqlite"])]

ATTENDEES = [("Ada", "Lovelace"), ("Charles", "Babbage")]
EMAIL = "ada@example.com"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def new_page(browser, size: str = "desktop"):
    context = browser.new_context(viewport=SIZES[size], locale="en-GB")
    return context, context.new_page()


def expect_filled(page, attendees=ATTENDEES, email=EMAIL):
    from playwright.sync_api import expect

    expect(page.get_by_label("Email for your tickets")).to_have_value(email)
    for n, (first, last) in enumerate(attendees, 1):
        expect(page.locator(f"input[name='first-{n}']")).to_have_value(first)
        expect(page.locator(f"input[name='last-{n}']")).to_have_value(last)


def hold_ends_in(seconds: float) -> None:
    """Every cart's hold (each test has one buyer's) now ends in ``seconds``."""
    with write_transaction():
        db.session.execute(update(Cart).values(expires_at=utcnow() + timedelta(seconds=seconds)))


def add_again(page, shop, event, tt, quantity: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{shop.live_url}/events/{event.slug}")
    page.locator(f"input[name='quantity-{tt.id}']").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart .cart-line")).to_have_count(1)
    page.locator("#cart-checkout").click()


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
@pytest.mark.parametrize("declined", [True, False], ids=["declined-then-back", "back"])
def test_the_form_is_filled_again_after_a_decline_or_back(shop, sandbox, browser, declined):
    from playwright.sync_api import expect

    event = make_event(title="Jazz at the Harbour", ticket_types=[{"name": "Standard", "price_minor": 2500}])
    tt = event.ticket_types[0]
    context, page = new_page(browser)
    try:
        watch = PageWatch(page)
        go_to_stripe(page, shop, sandbox, event, tt, ATTENDEES, EMAIL)
        if declined:
            fill_card(page, "4000 0000 0000 0002")
            page.get_by_role("button", name="Pay €50.00").click()
            expect(page.locator("#decline")).to_have_text("Your card was declined.")
        page.get_by_role("link", name="Back").click()
        page.wait_for_url(f"{shop.live_url}/cart")
        # Back in the shop: the hold grew to the payment page's lifetime, and it says so.
        expect(page.locator("#cart .countdown")).to_contain_text("The hold grew to 31 minutes")
        seconds = _clock(page.locator("#cart .countdown-clock").inner_text())
        assert 29 * 60 < seconds <= 31 * 60
        if not declined:
            shoot(page, "forms-1-cart-after-back-hold-grew.png")
        page.locator("#cart-checkout").click()
        expect(page.locator("h1")).to_have_text("Checkout")
        expect_filled(page)
        expect(page.locator("#checkout .countdown")).to_contain_text("The hold grew to 31 minutes")
        if declined:
            shoot(page, "forms-2-checkout-filled-after-decline.png")
        watch.assert_clean()
    finally:
        context.close()

    # Another browser (its own session) sees none of it on its own checkout.
    context, page = new_page(browser)
    try:
        add_again(page, shop, event, tt, 2)
        expect(page.get_by_label("Email for your tickets")).to_have_value("")
        expect(page.locator("input[name='first-1']")).to_have_value("")
        assert "Lovelace" not in page.content()
    finally:
        context.close()


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_form_is_filled_again_after_the_hold_lapsed_while_paying(shop, sandbox, browser):
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    tt = event.ticket_types[0]
    context, page = new_page(browser)
    try:
        session_id = go_to_stripe(page, shop, sandbox, event, tt, ATTENDEES, EMAIL)
        db.session.rollback()  # what the server committed meanwhile
        cart_id = db.session.execute(
            select(PaymentAttempt.cart_id).where(PaymentAttempt.stripe_checkout_session_id == session_id)
        ).scalar_one()
        with write_transaction():
            lapsed = utcnow() - timedelta(seconds=1)
            db.session.execute(update(Cart).where(Cart.id == cart_id).values(expires_at=lapsed))
        db.session.rollback()
        add_again(page, shop, event, tt, 2)
        expect_filled(page)
    finally:
        context.close()


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_at_zero_on_the_checkout_page_one_message_and_the_way_back(shop, sandbox, browser, size):
    from playwright.sync_api import expect

    event = make_event(title="Opera Gala", ticket_types=[{"name": "Stalls", "price_minor": 4500}])
    tt = event.ticket_types[0]
    context, page = new_page(browser, size)
    try:
        watch = PageWatch(page)
        add_again(page, shop, event, tt, 2)
        expect(page.locator("#checkout .countdown")).to_contain_text(
            "When you press Pay, the hold grows to 31 minutes while you pay."
        )
        if size == "desktop":
            shoot(page, "forms-3-checkout-says-the-hold-will-grow.png")
        hold_ends_in(6)
        page.reload()
        # The clock is no live region; its last minute is announced once, then its end.
        expect(page.locator("#checkout .countdown-clock")).to_have_attribute("aria-live", "off")
        announce = page.locator("#checkout .countdown-announce")
        expect(announce).to_have_attribute("role", "status")
        expect(announce).to_have_text("One minute left: your tickets are held for one more minute.")
        page.evaluate(
            """() => {
              window.__said = [];
              const el = document.querySelector('#checkout .countdown-announce');
              new MutationObserver(() => window.__said.push(el.textContent))
                .observe(el, {childList: true, characterData: true, subtree: true});
            }"""
        )
        page.get_by_label("Email for your tickets").fill(EMAIL)
        for n, (first, last) in enumerate(ATTENDEES, 1):
            page.locator(f"input[name='first-{n}']").fill(first)
            page.locator(f"input[name='last-{n}']").fill(last)

        notice = page.locator("#checkout .checkout-ended")
        expect(notice).to_contain_text("Your reservation lapsed", timeout=15_000)
        # Once, at the end: not one announcement a second.
        assert page.evaluate("window.__said") == ["Time is up: your tickets are no longer held."]
        # One message, the way back, the form on show with what was typed but not sendable.
        expect(page.locator("#checkout .notice")).to_have_count(1)
        expect(page.get_by_role("button", name="Back to the event")).to_have_attribute("href", f"/events/{event.slug}")
        expect_filled(page)
        expect(page.get_by_role("button", name="Pay")).to_be_disabled()
        expect(page.locator("#cart-count .badge")).to_have_text("0")  # the header knows too
        expect(page.get_by_label("Email for your tickets")).to_be_disabled()
        shoot(page, f"forms-4-checkout-lapsed-{size}.png")
        [lapse] = watch.posts("/checkout/lapse")
        assert lapse.response().status == 200

        # Back to the event, the tickets added again: the form is filled in.
        page.get_by_role("button", name="Back to the event").click()
        page.wait_for_url(f"{shop.live_url}/events/{event.slug}")
        add_again(page, shop, event, tt, 2)
        expect_filled(page)
        expect(page.get_by_role("button", name="Pay")).to_be_enabled()
        watch.assert_clean()
    finally:
        context.close()


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_double_click_on_add_adds_once_and_says_nothing_false(shop, sandbox, browser):
    from playwright.sync_api import expect

    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    tt = event.ticket_types[0]
    context, page = new_page(browser)
    try:
        watch = PageWatch(page)
        page.goto(f"{shop.live_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{tt.id}']").fill("2")
        page.get_by_role("button", name="Add to cart").dblclick()
        expect(page.locator("#cart .cart-line")).to_have_count(1)
        page.wait_for_timeout(500)  # a second answer, if any, has come by now
        expect(page.locator("#cart")).not_to_contain_text("Choose how many tickets you want first")
        expect(page.locator(".notice-error")).to_have_count(0)
        expect(page.locator("#cart input[name='quantity']")).to_have_value("2")
        assert len(watch.posts(f"/events/{event.slug}/cart")) == 1
    finally:
        context.close()


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_cart_quantity_of_zero_or_over_the_limit_is_answered(shop, sandbox, browser, size):
    from playwright.sync_api import expect

    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "max_per_order": 4}])
    tt = event.ticket_types[0]
    context, page = new_page(browser, size)
    try:
        watch = PageWatch(page)
        page.goto(f"{shop.live_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{tt.id}']").fill("2")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator("#cart .cart-line")).to_have_count(1)
        for typed, words in (("0", "a whole number of tickets, at least 1"), ("5", "at most 4 tickets of Standard")):
            field = page.locator("#cart input[name='quantity']")
            field.fill(typed)
            field.press("Tab")
            expect(page.locator("#cart .notice-error")).to_contain_text(words)
            # The field shows what the cart really holds.
            expect(page.locator("#cart input[name='quantity']")).to_have_value("2")
            if typed == "0":
                shoot(page, f"forms-5-cart-quantity-zero-{size}.png")
        # Each answer was a 400 with its message (htmx logs those); nothing else went wrong.
        assert not watch.csp_violations and not watch.page_errors
        changes = [r for r in watch.requests if r.method == "POST" and "/cart/lines/" in r.url]
        assert [r.response().status for r in changes] == [400, 400]
    finally:
        context.close()


def _clock(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+):(\d{2})\s*", text)
    assert match, text
    return int(match.group(1)) * 60 + int(match.group(2))
