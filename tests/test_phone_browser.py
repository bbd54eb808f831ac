"""On a phone, in Debian's Chromium: the cart's total and Checkout stay in view after adding
tickets (390×844), no page or state scrolls sideways at 320 px (the buyer's whole path, the
sandbox's hosted page, the back office), and a checkout for six tickets stays compact.
Screenshots in tests/artifacts/phone-*.png.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest

from storefront.extensions import db
from storefront.models import TicketType, utcnow
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    ROOT,
    PageWatch,
    browser,
    live,
    live_server,
)
from .checkout_support import IBAN_FAILS, order_of, sandbox, shop  # noqa: F401 (fixtures)
from .factories import make_event, make_order, write_transaction
from .sandbox_support import session_params
from .test_admin_browser import sign_in_on_page
from .test_sandbox_browser import fill_card

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 320, "height": 640}
DESKTOP = {"width": 1280, "height": 900}

# Reviewed copies go to docs/screenshots/ with UPDATE_SCREENSHOTS=1.
REVIEWED = {
    "390-summary",
    "320-event-with-cart",
    "320-success-processing",
    "320-event-not-yet-on-sale",
    "checkout-six-tickets-phone",
    "checkout-six-tickets-desktop",
    "320-fr-event-with-cart",
}

# The page's width, and when it is wider than the viewport the deepest elements that stick
# out on the right (tag, class, id, start of the text), so a failure says what to fix.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 0.5) continue;
    if ([...el.children].some(c => c.getBoundingClientRect().right > width + 0.5)) continue;
    let scroller = el.parentElement, clipped = false;
    while (scroller && scroller !== document.body) {
      const ox = getComputedStyle(scroller).overflowX;
      if (ox !== 'visible') { clipped = true; break; }
      scroller = scroller.parentElement;
    }
    if (clipped) continue;
    const names = typeof el.className === 'string' ? el.className.trim() : '';
    const cls = names ? '.' + names.split(/\\s+/).join('.') : '';
    const text = (el.textContent || '').trim().slice(0, 50);
    out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls} right=${Math.round(box.right)} "${text}"`);
  }
  // Text kept on one line (white-space: nowrap) that reaches past the edge is the likely cause:
  // it widens its grid or flex track and so everything beside it. Named first.
  const nowrap = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    // Its box, or its text spilling out of its box, reaches past the edge.
    const reach = Math.max(box.right, box.left + (el.scrollWidth > el.clientWidth + 1 ? el.scrollWidth : 0));
    if (reach > width + 0.5 && getComputedStyle(el).whiteSpace.startsWith('nowrap')) {
      const names = typeof el.className === 'string' ? el.className.trim() : '';
      nowrap.push(`nowrap ${el.tagName.toLowerCase()}${names ? '.' + names.split(/\\s+/).join('.') : ''}`
                  + ` right=${Math.round(reach)} "${(el.textContent || '').trim().slice(0, 50)}"`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, out: nowrap.slice(0, 3).concat(out.slice(0, 5))};
}"""


def shoot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    shot = ARTIFACTS / f"phone-{name}.png"
    page.screenshot(path=str(shot), full_page=full_page)
    if name in REVIEWED and os.environ.get("UPDATE_SCREENSHOTS") == "1":  # on purpose only
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "screenshots" / shot.name)


def fits(page, name: str, seen: list[str]) -> None:
    """The page is no wider than the viewport (320 px): a screenshot, then the measure."""
    page.wait_for_load_state("load")
    shoot(page, f"320-{name}")
    measured = page.evaluate(OVERFLOW_JS)
    limit = page.viewport_size["width"]
    assert measured["scroll"] <= limit, f"{name}: the page is {measured['scroll']}px wide: {measured['out']}"
    seen.append(name)


def summary_in_view(page) -> dict:
    return page.evaluate(
        """() => {
      const inView = el => { const b = el.getBoundingClientRect();
        return b.width > 0 && b.top >= 0 && b.bottom <= innerHeight && b.left >= 0 && b.right <= innerWidth; };
      const total = document.querySelector('.cart-summary-total');
      const checkout = document.querySelector('.cart-summary-checkout');
      return {scrollY: scrollY, total: total && inView(total), checkout: checkout && inView(checkout),
              text: total && total.textContent.trim()};
    }"""
    )


# --- the cart's summary in view -------------------------------------------------------------


def test_after_adding_tickets_on_a_phone_the_total_and_checkout_are_in_view(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(
        title="Jazz at the Harbour",
        ticket_types=[
            {"name": "Early Bird", "price_minor": 1900, "description": "The first hundred seats, at a better price."},
            {"name": "Standard", "price_minor": 2500, "description": "A seat anywhere in the hall."},
            {"name": "Front rows", "price_minor": 4000, "description": "The first three rows."},
        ],
    )
    early, standard, _ = event.ticket_types
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{base_url}/events/{event.slug}")
        expect(page.locator(".cart-summary")).to_have_count(0)  # nothing to sum up yet
        page.locator(f"input[name='quantity-{early.id}']").fill("2")
        page.locator(f"input[name='quantity-{standard.id}']").fill("1")
        watch.mark()
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator(".cart-summary-total")).to_have_text("€63.00")
        watch.assert_not_reloaded()
        # The cart itself is below the fold: its summary is in view without scrolling.
        assert not _in_view(page, "#cart .cart-total"), "the cart's own total is in view: nothing to prove"
        seen = summary_in_view(page)
        assert seen["total"] and seen["checkout"], seen
        expect(page.locator(".cart-summary-count")).to_have_text("3 tickets")
        shoot(page, "390-summary", full_page=False)

        # The bar covers nothing: the page ends above it (the footer is reachable).
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        bar_top = page.evaluate("document.querySelector('.cart-summary').getBoundingClientRect().top")
        footer_bottom = page.evaluate("document.querySelector('.site-footer').getBoundingClientRect().bottom")
        assert footer_bottom <= bar_top, (footer_bottom, bar_top)
        # ... and a focused control scrolls into view above it.
        page.evaluate("window.scrollTo(0, 0)")
        page.locator("#cart input[type=number]").first.focus()
        focused = page.evaluate("document.activeElement.getBoundingClientRect().bottom")
        assert focused <= bar_top, (focused, bar_top)

        # A change of quantity in the cart: the summary follows the same swap.
        page.locator("#cart input[type=number]").first.fill("4")
        page.locator("#cart input[type=number]").first.dispatch_event("change")
        expect(page.locator(".cart-summary-total")).to_have_text("€101.00")
        expect(page.locator(".cart-summary-count")).to_have_text("5 tickets")
        # A Remove: the summary says what is left.
        page.locator(f"#line-{_line_of(page, 'Early Bird')} button.remove").click()
        expect(page.locator(".cart-summary-total")).to_have_text("€25.00")
        expect(page.locator(".cart-summary-count")).to_have_text("1 ticket")
        page.evaluate("window.scrollTo(0, 0)")
        seen = summary_in_view(page)
        assert seen["total"] and seen["checkout"], seen
        shoot(page, "390-summary-after-remove", full_page=False)
        watch.assert_not_reloaded()

        # Its Checkout leads to the checkout.
        page.locator(".cart-summary-checkout").click()
        expect(page.locator("h1")).to_have_text("Checkout")
        watch.assert_clean()
    finally:
        context.close()


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        "s => { const b = document.querySelector(s).getBoundingClientRect();"
        " return b.top >= 0 && b.bottom <= innerHeight; }",
        selector,
    )


def _line_of(page, name: str) -> str:
    line = page.locator(".cart-line", has_text=name)
    return line.get_attribute("id").removeprefix("line-")


def test_without_javascript_the_summary_is_a_plain_part_of_the_page(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    tt = event.ticket_types[0]
    context = browser.new_context(viewport=PHONE, locale="en-GB", java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{tt.id}']").fill("2")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator(".cart-summary-total")).to_have_text("€50.00")
        seen = summary_in_view(page)
        assert seen["total"] and seen["checkout"], seen
        page.locator(".cart-summary-checkout").click()
        expect(page.locator("h1")).to_have_text("Checkout")
    finally:
        context.close()


def test_on_a_desktop_the_cart_shows_no_second_summary(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{base_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{event.ticket_types[0].id}']").fill("1")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator("#cart .cart-total")).to_contain_text("€25.00")
        expect(page.locator(".cart-summary")).to_be_hidden()
        expect(page.get_by_role("button", name="Checkout")).to_have_count(1)
    finally:
        context.close()


# --- no sideways scrolling at 320 px --------------------------------------------------------


def _sold_out(tt_id: int) -> None:
    with write_transaction():
        tt = db.session.get(TicketType, tt_id)
        tt.sold = tt.capacity


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_no_buyer_page_scrolls_sideways_at_320px(shop, sandbox, browser):
    from playwright.sync_api import expect

    base = shop.live_url
    on_sale = make_event(
        title="An evening of chamber music by candlelight at the Old Harbour Warehouse",
        ticket_types=[
            {"name": "Early Bird (members of the friends' association)", "price_minor": 1900, "capacity": 12},
            {"name": "Standard", "price_minor": 2500, "capacity": 100},
        ],
    )
    sold_out = make_event(title="Sold-out gala", ticket_types=[{"name": "Stalls", "price_minor": 4500, "capacity": 5}])
    _sold_out(sold_out.ticket_types[0].id)
    later = make_event(
        title="Spring festival", sales_start=utcnow() + timedelta(days=10), ticket_types=[{"name": "Pass"}]
    )
    early, standard = on_sale.ticket_types
    seen: list[str] = []
    context = browser.new_context(viewport=NARROW, locale="en-GB")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{base}/")
        fits(page, "events", seen)
        page.goto(f"{base}/events/{sold_out.slug}")
        fits(page, "event-sold-out", seen)
        page.goto(f"{base}/events/{later.slug}")
        expect(page.locator(".pill-later")).to_be_visible()
        fits(page, "event-not-yet-on-sale", seen)
        page.goto(f"{base}/events/{on_sale.slug}")
        fits(page, "event-on-sale", seen)
        page.get_by_role("button", name="Add to cart").click()  # nothing chosen: a message
        fits(page, "event-nothing-chosen", seen)
        page.locator(f"input[name='quantity-{early.id}']").fill("2")
        page.locator(f"input[name='quantity-{standard.id}']").fill("1")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator(".cart-summary-total")).to_have_text("€63.00")
        fits(page, "event-with-cart", seen)
        page.goto(f"{base}/cart")
        fits(page, "cart", seen)
        page.goto(f"{base}/checkout")
        fits(page, "checkout", seen)
        page.get_by_label("Email for your tickets").fill("ada.lovelace.longname@example.com")
        for n, (first, last) in enumerate([("Ada", "Lovelace"), ("Charles", "Babbage"), ("Grace", "Hopper")], 1):
            page.locator(f"input[name='first-{n}']").fill(first)
            page.locator(f"input[name='last-{n}']").fill(last)
        page.get_by_role("button", name="Pay").click()

        # The hosted page, in its states.
        page.wait_for_url(f"{sandbox.base}/pay/cs_*")
        session_id = page.url.rsplit("/", 1)[1]
        fits(page, "sandbox-card", seen)
        fill_card(page, "4000 0000 0000 9995")
        page.get_by_role("button", name="Pay €63.00").click()
        expect(page.locator("#decline")).to_be_visible()
        fits(page, "sandbox-declined", seen)
        fill_card(page, "4000 0025 0000 3155")
        page.get_by_role("button", name="Pay €63.00").click()
        expect(page.get_by_role("heading", name="Authenticate your payment")).to_be_visible()
        fits(page, "sandbox-3ds", seen)
        page.get_by_role("button", name="Fail authentication").click()
        expect(page.locator("#decline")).to_be_visible()
        page.get_by_label("Bank debit").check()
        fits(page, "sandbox-bank-debit", seen)
        page.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 00")
        page.get_by_label("Name on card or account").fill("Ada Lovelace")
        page.get_by_role("button", name="Pay €63.00").click()

        # The success page polling: the bank debit "being processed", then the order.
        page.wait_for_url(f"{base}/checkout/success?session_id={session_id}")
        expect(page.locator("#payment-status h1")).to_have_text("Your payment is being processed", timeout=15_000)
        fits(page, "success-processing", seen)
        from storefront.payments import gateway as gw

        pi_id = gw.get_gateway().retrieve_checkout_session(session_id).payment_intent
        sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
        expect(page.locator(".order")).to_contain_text("Charles Babbage", timeout=15_000)
        fits(page, "success-order", seen)
        page.goto(page.locator("a.order-link").get_attribute("href"))
        expect(page.locator(".order h1")).to_contain_text("Your order")
        fits(page, "order", seen)

        # The hosted page of a paid session, and of an expired one.
        page.goto(f"{sandbox.base}/pay/{session_id}")
        fits(page, "sandbox-paid", seen)
        expired = sandbox.client().v1.checkout.sessions.create(
            params=session_params(success_url=f"{base}/checkout/success", cancel_url=f"{base}/cart")
        )
        sandbox.client().v1.checkout.sessions.expire(expired.id)
        page.goto(expired.url)
        expect(page.locator("#state h2")).to_have_text("This checkout session has expired")
        fits(page, "sandbox-expired", seen)

        # A failed bank debit, on the success page.
        page.goto(f"{base}/events/{on_sale.slug}")
        page.locator(f"input[name='quantity-{standard.id}']").fill("1")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator(".cart-summary-total")).to_have_text("€25.00")
        page.goto(f"{base}/checkout")
        page.get_by_label("Email for your tickets").fill("ada@example.com")
        page.locator("input[name='first-1']").fill("Ada")
        page.locator("input[name='last-1']").fill("Lovelace")
        page.get_by_role("button", name="Pay").click()
        page.wait_for_url(f"{sandbox.base}/pay/cs_*")
        failing = page.url.rsplit("/", 1)[1]
        page.get_by_label("Bank debit").check()
        page.get_by_label("IBAN").fill(IBAN_FAILS)
        page.get_by_label("Name on card or account").fill("Ada Lovelace")
        page.get_by_role("button", name="Pay €25.00").click()
        page.wait_for_url(f"{base}/checkout/success?session_id={failing}")
        expect(page.locator("#payment-status h1")).to_have_text("Your payment is being processed", timeout=15_000)
        pi_id = gw.get_gateway().retrieve_checkout_session(failing).payment_intent
        sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {"outcome": "failed"})
        expect(page.locator("#payment-status h1")).not_to_have_text("Your payment is being processed", timeout=15_000)
        fits(page, "success-debit-failed", seen)

        page.goto(f"{base}/checkout/success?session_id=cs_test_unknown")
        fits(page, "success-not-found", seen)
        page.goto(f"{base}/lost-tickets")
        fits(page, "lost-tickets", seen)
        page.get_by_role("button").last.click()  # sent empty: the field's error
        fits(page, "lost-tickets-error", seen)
        page.goto(f"{base}/events/no-such-event")
        fits(page, "error-404", seen)
        assert not watch.page_errors, watch.page_errors
    finally:
        context.close()
    assert len(seen) == 22 and seen[-1] == "error-404", seen
    assert order_of(session_id) is not None


def test_no_page_scrolls_sideways_at_320px_in_french(live, browser):
    """French words are longer: the shop's pages without the payment, in French."""
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(
        title="Une soirée de musique de chambre aux chandelles à l'entrepôt du vieux port",
        ticket_types=[
            {"name": "Tarif réduit (adhérents de l'association des amis)", "price_minor": 1900},
            {"name": "Plein tarif", "price_minor": 2500},
        ],
    )
    later = make_event(title="Festival", sales_start=utcnow() + timedelta(days=10), ticket_types=[{"name": "Pass"}])
    reduced = event.ticket_types[0]
    seen: list[str] = []
    context = browser.new_context(viewport=NARROW, locale="fr-FR", extra_http_headers={"Accept-Language": "fr"})
    try:
        page = context.new_page()
        page.goto(f"{base_url}/")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        fits(page, "fr-events", seen)
        page.goto(f"{base_url}/events/{later.slug}")
        fits(page, "fr-event-not-yet-on-sale", seen)
        page.goto(f"{base_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{reduced.id}']").fill("2")
        page.locator("button.add-to-cart").click()
        expect(page.locator(".cart-summary-count")).to_have_text("2 billets")
        fits(page, "fr-event-with-cart", seen)
        page.goto(f"{base_url}/cart")
        fits(page, "fr-cart", seen)
        page.goto(f"{base_url}/checkout")
        fits(page, "fr-checkout", seen)
        page.goto(f"{base_url}/lost-tickets")
        fits(page, "fr-lost-tickets", seen)
        page.goto(f"{base_url}/events/no-such-event")
        fits(page, "fr-error-404", seen)
    finally:
        context.close()
    assert len(seen) == 7


def test_no_back_office_page_scrolls_sideways_at_320px(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    owner = make_user("owner.of.a.rather.long.address@jazz-club.example")
    organiser = make_organiser("jazz-club", "The Harbour Jazz Club and Friends Association")
    add_member(owner, organiser, Role.OWNER)
    event = make_event_of(organiser, "An evening of chamber music by candlelight at the Old Harbour Warehouse")
    order = make_order(event, [("Ada", "Lovelace"), ("Bartholomew-Maximilian", "Featherstonehaugh-Smythe")])
    admin = f"{base_url}/admin/o/jazz-club"
    seen: list[str] = []
    context = browser.new_context(viewport=NARROW, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{base_url}/admin/sign-in")
        fits(page, "admin-sign-in", seen)
        sign_in_on_page(page, base_url, owner.email)
        expect(page.locator("h1")).not_to_have_text("Sign in")
        for name, path in [
            ("admin-events", "/events"),
            ("admin-event", f"/events/{event.slug}"),
            ("admin-orders", "/orders"),
            ("admin-event-orders", f"/events/{event.slug}/orders"),
            ("admin-order", f"/events/{event.slug}/orders/{order.code}"),
            ("admin-dashboard", "/reports"),
            ("admin-door-events", "/door"),
            ("admin-door", f"/events/{event.slug}/door"),
            ("admin-door-list", f"/events/{event.slug}/door/list"),
        ]:
            response = page.goto(admin + path)
            assert response.status == 200, (name, response.status)
            fits(page, name, seen)
    finally:
        context.close()
    assert len(seen) == 10


# --- a checkout for many tickets ------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_checkout_for_six_tickets_asks_the_email_once_and_a_name_per_row(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    context = browser.new_context(viewport=viewport, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{base_url}/events/{event.slug}")
        page.locator(f"input[name='quantity-{event.ticket_types[0].id}']").fill("6")
        page.get_by_role("button", name="Add to cart").click()
        expect(page.locator("#cart .cart-total")).to_contain_text("€150.00")
        page.goto(f"{base_url}/checkout")
        expect(page.locator("input[type=email]")).to_have_count(1)
        expect(page.locator("fieldset.attendee")).to_have_count(6)
        for n in range(1, 7):
            first = page.locator(f"input[name='first-{n}']").bounding_box()
            last = page.locator(f"input[name='last-{n}']").bounding_box()
            assert abs(first["y"] - last["y"]) < 1, f"ticket {n}: first and last name are not on one row"
            assert last["x"] > first["x"] + first["width"]
        # Six tickets' names take less than two screens on a phone.
        top = page.locator("input[name='first-1']").bounding_box()["y"]
        bottom = page.locator("input[name='last-6']").bounding_box()
        assert bottom["y"] + bottom["height"] - top < 1.6 * viewport["height"] if viewport is PHONE else True
        width = "phone" if viewport is PHONE else "desktop"
        shoot(page, f"checkout-six-tickets-{width}")
    finally:
        context.close()
