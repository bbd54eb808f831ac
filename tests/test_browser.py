"""The flows a person clicks through, in Debian's Chromium driven by Playwright.

The real app (CSRF on, as in production: htmx sends the token from ``hx-headers`` on
``<body>``) is served by werkzeug in a background thread on SQLite. Each test opens a
fresh browser context (its own cookies, so its own cart) and checks the page and the
database after each step.

Without ``/usr/bin/chromium`` these tests skip, saying why, except when
``STOREFRONT_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Cart, CartStatus, utcnow

from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    ROOT,
    PageWatch,
    _unavailable,
    browser,
    live,
    live_server,
)
from .factories import make_event, ticket_type

pytestmark = pytest.mark.browser
SCREENSHOT_DOC = ROOT / "docs" / "screenshots" / "event-with-cart.png"

# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    yield context
    context.close()


def clock_seconds(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+):(\d{2})\s*", text)
    assert match, f"countdown shows {text!r}"
    return int(match.group(1)) * 60 + int(match.group(2))


def only_cart() -> Cart:
    """The one cart in the database (each test starts from empty tables), as committed now."""
    db.session.rollback()
    return db.session.execute(select(Cart)).scalar_one()


def quantity_input(page, tt):
    return page.locator(f'input[name="quantity-{tt.id}"]')


def cart_line(page, name: str):
    return page.locator("#cart .cart-line").filter(has=page.locator(".line-name", has_text=name))


def badge(page):
    return page.locator("#cart-count .badge")


# --- 1. the cart, live, without reloads --------------------------------------------------


def test_cart_updates_in_place_with_htmx(live, context):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(
        title="Jazz at the Harbour",
        ticket_types=[
            {"name": "Early Bird", "price_minor": 1900, "capacity": 12, "description": "The first dozen seats."},
            {"name": "Standard", "price_minor": 2500, "capacity": 100, "description": "Free seating."},
            {"name": "VIP", "price_minor": 6000, "capacity": 40, "description": "Front rows and a drink."},
        ],
    )
    early, standard, vip = event.ticket_types
    page = context.new_page()
    watch = PageWatch(page)

    page.goto(f"{base_url}/events/{event.slug}")
    expect(page.locator("h1")).to_have_text("Jazz at the Harbour")
    expect(page.locator("#cart")).to_contain_text("Your cart is empty.")
    expect(page.locator(f"#availability-{early.id}")).to_have_text("On sale")
    expect(badge(page)).to_have_text("0")
    watch.mark()

    # Add: the cart fragment, the header count and the availability row change in place.
    quantity_input(page, early).fill("3")
    quantity_input(page, standard).fill("2")
    quantity_input(page, vip).fill("1")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart .cart-line")).to_have_count(3)
    expect(cart_line(page, "Early Bird")).to_contain_text("€57.00")
    expect(cart_line(page, "Standard")).to_contain_text("€50.00")
    expect(cart_line(page, "VIP")).to_contain_text("€60.00")
    expect(page.locator("#cart .cart-total")).to_contain_text("€167.00")
    expect(badge(page)).to_have_text("6")
    expect(page.locator(f"#availability-{early.id}")).to_have_text("Only 9 left")
    expect(page.locator(f"#availability-{standard.id}")).to_have_text("On sale")
    # The rows were swapped in anew: the quantities are back to 0, ready for another add.
    expect(quantity_input(page, early)).to_have_value("0")
    watch.assert_not_reloaded()
    assert (ticket_type(early.id).held, ticket_type(standard.id).held, ticket_type(vip.id).held) == (3, 2, 1)

    # The token came from hx-headers on <body> (CSRF is on), and it was an htmx request.
    [add_request] = watch.posts(f"/events/{event.slug}/cart")
    assert add_request.headers.get("x-csrftoken")
    assert add_request.headers.get("hx-request") == "true"

    # The countdown ticks.
    clock = page.locator("#cart .countdown-clock")
    expect(clock).to_have_text(re.compile(r"^1[45]:\d\d$"))
    before = clock_seconds(clock.text_content())
    page.wait_for_timeout(2_100)
    after = clock_seconds(clock.text_content())
    assert 1 <= before - after <= 3, (before, after)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "event-with-cart.png"
    page.mouse.move(0, 0)  # no hover or focus styles in the picture
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed picture on purpose only
        SCREENSHOT_DOC.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_DOC)

    # Remove a line: it disappears, the stock comes back.
    cart_line(page, "Standard").get_by_role("button", name="Remove").click()
    expect(cart_line(page, "Standard")).to_have_count(0)
    expect(page.locator("#cart .cart-line")).to_have_count(2)
    expect(page.locator("#cart .cart-total")).to_contain_text("€117.00")
    expect(badge(page)).to_have_text("4")
    expect(page.locator(f"#availability-{early.id}")).to_have_text("Only 9 left")
    watch.assert_not_reloaded()
    assert ticket_type(standard.id).held == 0
    watch.assert_clean()

    # Change a quantity the way a person does: type it, leave the field ("change").
    early_quantity = cart_line(page, "Early Bird").locator('input[name="quantity"]')
    early_quantity.fill("5")
    early_quantity.press("Tab")
    expect(cart_line(page, "Early Bird")).to_contain_text("€95.00")
    expect(cart_line(page, "Early Bird")).to_contain_text("5 × €19.00")
    expect(page.locator("#cart .cart-total")).to_contain_text("€155.00")
    expect(badge(page)).to_have_text("6")
    expect(page.locator(f"#availability-{early.id}")).to_have_text("Only 7 left")
    watch.assert_not_reloaded()
    assert ticket_type(early.id).held == 5
    watch.assert_clean()


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast of two computed CSS colours (``rgb(r, g, b)``)."""

    def luminance(css: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_every_page_says_test_mode_in_its_header_readably(live, context):
    """The app runs on the built-in sandbox (demo mode): no payment is real, and the
    header of each page, the banner landmark, says so in words one can read."""
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(title="Jazz at the Harbour")
    page = context.new_page()
    watch = PageWatch(page)
    for path in ("/", f"/events/{event.slug}", "/cart", "/no-such-page"):
        page.goto(base_url + path)
        marker = page.get_by_role("banner").get_by_text("Test mode — no real payments")
        expect(marker).to_be_visible()
        colours = marker.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
        assert contrast_ratio(*colours) >= 4.5, (path, colours)
    page.goto(f"{base_url}/events/{event.slug}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test-mode-header.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 160})
    assert not watch.csp_violations


# --- 2. the countdown reaching zero ---------------------------------------------------


def test_countdown_at_zero_releases_the_hold_and_says_so(live, context):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(ticket_types=[{"name": "Early Bird", "capacity": 12}, {"name": "Standard"}])
    early = event.ticket_types[0]
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{base_url}/events/{event.slug}")
    quantity_input(page, early).fill("3")
    page.get_by_role("button", name="Add to cart").click()
    expect(cart_line(page, "Early Bird")).to_be_visible()
    expect(page.locator(f"#availability-{early.id}")).to_have_text("Only 9 left")

    # The hold now runs out in 3 seconds; the reloaded page counts down from there.
    cart_id = only_cart().id
    with write_transaction():
        db.session.execute(update(Cart).where(Cart.id == cart_id).values(expires_at=utcnow() + timedelta(seconds=3)))
    page.reload()
    expect(page.locator("#cart .countdown-clock")).to_have_text(re.compile(r"^0:0[0-3]$"))
    watch.mark()

    expect(page.locator("#cart")).to_contain_text("Your reservation lapsed", timeout=10_000)
    expect(page.locator("#cart .cart-line")).to_have_count(0)
    expect(badge(page)).to_have_text("0")
    watch.assert_not_reloaded()
    assert only_cart().status == CartStatus.EXPIRED.value
    assert ticket_type(early.id).held == 0

    # The buyer sees the stock back too, without reloading.
    expect(page.locator(f"#availability-{early.id}")).to_have_text("On sale")

    # One lapse request, not a burst of them; it carried the CSRF token from hx-headers
    # (it comes from a <p>, not a form, so the header is its only token).
    [lapse_request] = watch.posts("/cart/lapse")
    assert lapse_request.headers.get("x-csrftoken")
    assert lapse_request.response().status == 200
    watch.assert_clean()


# --- 3. an error shown in the fragment ------------------------------------------------


def test_shortage_message_appears_in_the_cart_without_reload(live, context):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(ticket_types=[{"name": "Last Seats", "capacity": 2}, {"name": "Standard"}])
    last, standard = event.ticket_types
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{base_url}/events/{event.slug}")
    watch.mark()

    # Something already in the cart stays there when the next add fails.
    quantity_input(page, standard).fill("1")
    page.get_by_role("button", name="Add to cart").click()
    expect(cart_line(page, "Standard")).to_be_visible()
    expect(page.locator(f"#availability-{last.id}")).to_have_text("Only 2 left")

    # The page caps the input at what is left; a buyer racing others can still ask for
    # more than is left by the time the request arrives. Lift the cap to ask for 3.
    field = quantity_input(page, last)
    expect(field).to_have_attribute("max", "2")
    field.evaluate("input => input.removeAttribute('max')")
    field.fill("3")
    page.get_by_role("button", name="Add to cart").click()

    expect(page.locator("#cart [role=alert]")).to_have_text("Only 2 tickets left for Last Seats.")
    assert watch.posts(f"/events/{event.slug}/cart")[-1].response().status == 409
    expect(page.locator("#cart .cart-line")).to_have_count(1)
    expect(cart_line(page, "Standard")).to_be_visible()
    expect(badge(page)).to_have_text("1")
    expect(page.locator(f"#availability-{last.id}")).to_have_text("Only 2 left")
    watch.assert_not_reloaded()
    assert ticket_type(last.id).held == 0
    assert ticket_type(standard.id).held == 1
    assert not watch.page_errors, watch.page_errors


# --- 4. without JavaScript ------------------------------------------------------------


def test_without_javascript_plain_forms_and_redirects(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(
        ticket_types=[
            {"name": "Early Bird", "price_minor": 1900, "capacity": 12},
            {"name": "Standard", "price_minor": 2500},
        ]
    )
    early, standard = event.ticket_types
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    try:
        page = context.new_page()
        event_url = f"{base_url}/events/{event.slug}"
        page.goto(event_url)

        quantity_input(page, early).fill("2")
        quantity_input(page, standard).fill("1")
        with page.expect_navigation():
            page.get_by_role("button", name="Add to cart").click()
        assert page.url == event_url  # the 303 brought the buyer back to the event
        expect(page.locator(".notice-success")).to_have_text("Added to your cart.")
        expect(page.locator("#cart .cart-line")).to_have_count(2)
        expect(page.locator("#cart .cart-total")).to_contain_text("€63.00")
        expect(badge(page)).to_have_text("3")
        expect(page.locator(f"#availability-{early.id}")).to_have_text("Only 10 left")
        # The countdown shows the time left even without the script ticking it.
        expect(page.locator("#cart .countdown-clock")).to_have_text(re.compile(r"^1[45]:\d\d$"))
        assert (ticket_type(early.id).held, ticket_type(standard.id).held) == (2, 1)

        # Without JavaScript the quantity form has its own Update button.
        line = cart_line(page, "Early Bird")
        line.locator('input[name="quantity"]').fill("4")
        with page.expect_navigation():
            line.get_by_role("button", name="Update").click()
        assert page.url == event_url
        expect(cart_line(page, "Early Bird")).to_contain_text("€76.00")
        expect(badge(page)).to_have_text("5")
        assert ticket_type(early.id).held == 4

        # (The remove form carries no "next", so this lands on the cart page, not back
        # on the event page as the update did; either way the buyer sees the cart.)
        with page.expect_navigation():
            cart_line(page, "Standard").get_by_role("button", name="Remove").click()
        expect(cart_line(page, "Standard")).to_have_count(0)
        expect(page.locator("#cart .cart-line")).to_have_count(1)
        expect(badge(page)).to_have_text("4")
        assert ticket_type(standard.id).held == 0
    finally:
        context.close()


# --- 5. a limited buyer -----------------------------------------------------------------


def test_a_limited_add_says_so_in_the_cart_and_keeps_it(live, context):
    from playwright.sync_api import expect

    app, base_url = live
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    standard = event.ticket_types[0]
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{base_url}/events/{event.slug}")
    watch.mark()
    limit = app.config["LIMIT_ADD_TO_CART"]
    app.config["LIMIT_ADD_TO_CART"] = "2 per minute"  # read per request: this test's own count
    try:
        for _ in range(3):
            quantity_input(page, standard).fill("1")
            page.get_by_role("button", name="Add to cart").click()
            expect(page.locator("#cart .countdown-clock")).to_be_visible()
        expect(page.locator("#cart [role=alert]")).to_have_text(
            re.compile(r"^Too many requests came from your connection\. Please try again in \d+ seconds\.$")
        )
    finally:
        app.config["LIMIT_ADD_TO_CART"] = limit
    response = watch.posts(f"/events/{event.slug}/cart")[-1].response()
    assert response.status == 429 and 1 <= int(response.headers["retry-after"]) <= 60
    expect(cart_line(page, "Standard")).to_contain_text("€50.00")  # what it held, it still holds
    expect(badge(page)).to_have_text("2")
    watch.assert_not_reloaded()
    assert ticket_type(standard.id).held == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(ARTIFACTS / "cart-too-many-requests.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(
            ARTIFACTS / "cart-too-many-requests.png", ROOT / "docs" / "screenshots" / "cart-too-many-requests.png"
        )
    # (The browser logs the 429 in its console, as it does the 409 of a shortage.)
    assert not watch.csp_violations and not watch.page_errors, (watch.csp_violations, watch.page_errors)
