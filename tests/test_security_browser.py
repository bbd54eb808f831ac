"""What the security headers and error answers mean in a real browser (Debian's Chromium).

* Without JavaScript, the checkout form is a plain POST answered 303 to the payment
  page on another origin: the CSP's ``form-action`` (which browsers apply to that
  redirect too) must let it through, or the buyer is stuck on our page.
* An htmx change refused for an expired CSRF token shows its message in the page's
  message area and leaves the cart box as it was (screenshot:
  ``tests/artifacts/security-expired-csrf-message.png``; reviewed copy in
  ``docs/screenshots/`` with ``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import time

import pytest

from .browser_support import PageWatch
from .checkout_support import order_of, sandbox, shop  # noqa: F401 (sandbox, shop: fixtures)
from .factories import make_event, ticket_type
from .test_browser import cart_line, live, live_server  # noqa: F401 (fixtures)
from .test_checkout_browser import go_to_stripe, shoot
from .test_sandbox_browser import browser, fill_card  # noqa: F401 (browser: fixture)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_without_javascript_the_checkout_form_reaches_the_payment_page(shop, sandbox, browser):
    from playwright.sync_api import expect

    event = make_event(title="Plain Forms", ticket_types=[{"name": "Seat", "price_minor": 3000, "capacity": 5}])
    tt = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", java_script_enabled=False)
    try:
        page = context.new_page()
        watch = PageWatch(page)
        # Every step a plain form post or link; the last, Pay, is answered 303 to the sandbox's page.
        session_id = go_to_stripe(page, shop, sandbox, event, tt, [("Ada", "Lovelace")], "ada@example.com")
        expect(page.get_by_role("button", name="Pay €30.00")).to_be_visible()
        fill_card(page, "4242 4242 4242 4242")
        page.get_by_role("button", name="Pay €30.00").click()

        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        deadline = time.monotonic() + 15
        while not page.locator(".order").count():  # no polling without JavaScript: the buyer asks again
            assert time.monotonic() < deadline, "the order never showed"
            page.get_by_role("link", name="Check again").click()
        expect(page.locator(".order h1")).to_have_text(f"Your order {order_of(session_id).code}")
        assert not watch.csp_violations, watch.csp_violations
        assert (ticket_type(tt.id).sold, ticket_type(tt.id).held) == (1, 0)
    finally:
        context.close()


def test_an_expired_csrf_token_on_a_quantity_change_shows_a_message_and_keeps_the_cart(live, browser):
    from playwright.sync_api import expect

    app, base_url = live
    event = make_event(title="Late Night Set", ticket_types=[{"name": "Standing", "capacity": 50}])
    tt = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    app.config["WTF_CSRF_TIME_LIMIT"] = 2  # the page's token expires two seconds after it was made
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{base_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{tt.id}']").fill("2")
        page.get_by_role("button", name="Add to cart").click()
        expect(cart_line(page, "Standing")).to_contain_text("2 ×")
        watch.mark()
        # itsdangerous counts whole seconds (age = now - stamp, both floored) and expires a
        # token only when its age is above the limit: 3 s and more is past 2 s whenever the
        # page was made; 2.5 s was not when the stamp fell late in its second.
        time.sleep(3.2)

        quantity = cart_line(page, "Standing").locator("input[name='quantity']")
        quantity.fill("3")
        quantity.dispatch_event("change")
        message = page.locator("#messages .notice-error")
        expect(message).to_contain_text("Your session has expired")
        expect(message).to_contain_text("Please reload the page and try again.")
        # The cart box is the cart still, not an error page swapped into it.
        expect(page.locator("#cart h2")).to_have_text("Your cart")
        expect(page.locator("#cart .error-page")).to_have_count(0)
        expect(page.locator("#cart header, #cart footer")).to_have_count(0)
        assert page.locator("h1").count() == 1
        watch.assert_not_reloaded()
        assert ticket_type(tt.id).held == 2
        shoot(page, "security-expired-csrf-message.png")

        # The token is good again (no time limit): the next change goes through and the
        # stale message goes away.
        app.config["WTF_CSRF_TIME_LIMIT"] = None
        quantity.fill("4")
        quantity.dispatch_event("change")
        expect(cart_line(page, "Standing")).to_contain_text("4 ×")
        expect(page.locator("#messages")).to_be_empty()
        assert ticket_type(tt.id).held == 4
    finally:
        app.config["WTF_CSRF_TIME_LIMIT"] = None
        context.close()
