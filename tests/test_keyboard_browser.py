"""Keyboard and screen-reader use of the shop (issue 12), in Debian's Chromium.

After every htmx swap focus stays on the control the buyer was on (or moves to the
message when that control is gone), so the next Tab goes on from there and not from the
logo; a polite live region tells each cart change once, in words; a skip link comes
first; the focus ring is plain to see; every control is at least 24 × 24 px.
Screenshots of the focused states go to ``tests/artifacts/focus-*.png``."""

from __future__ import annotations

import re

import pytest

from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_event

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    yield context
    context.close()


def active(page) -> str:
    """The focused element: its id, else its tag and text (``BODY`` when focus is lost)."""
    return page.evaluate(
        "() => { const e = document.activeElement; return e ? (e.id || e.tagName + ':' + e.textContent.trim()) : '' }"
    )


def settled(page) -> None:
    """htmx has swapped and settled (its 20 ms settle delay, and focus.js after it)."""
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping')")
    page.wait_for_timeout(100)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def watch_announcements(page) -> None:
    """Record every text the polite live region #cart-status comes to hold."""
    page.evaluate(
        """() => {
        window.__said = [];
        const region = document.getElementById('cart-status');
        new MutationObserver(() => { const t = region.textContent.trim(); if (t) window.__said.push(t); })
          .observe(region, {childList: true, characterData: true, subtree: true});
    }"""
    )


def said(page) -> list[str]:
    return page.evaluate("window.__said")


def two_types():
    return make_event(
        title="Harbour Nights",
        ticket_types=[
            {"name": "Floor", "price_minor": 2500, "capacity": 50},
            {"name": "Balcony", "price_minor": 4000, "capacity": 50},
        ],
    )


def test_focus_stays_put_after_each_swap_and_tab_goes_on(live, context):
    from playwright.sync_api import expect

    _app, base = live
    event = two_types()
    floor, balcony = event.ticket_types
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{base}/events/{event.slug}")
    watch_announcements(page)

    # Nothing chosen, Add pressed from the keyboard: focus goes to the error message.
    page.focus("#add-to-cart")
    page.keyboard.press("Enter")
    expect(page.locator("#cart-error")).to_be_visible()
    settled(page)
    assert active(page) == "cart-error"
    page.keyboard.press("Tab")
    assert active(page) != "BODY" and "Storefront" not in active(page)

    # A quantity typed on the event page, Enter: the row is swapped, focus stays in its field.
    page.focus(f"#quantity-{floor.id}")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(page.locator("#cart .cart-line")).to_have_count(1)
    settled(page)
    assert active(page) == f"quantity-{floor.id}"
    page.keyboard.press("Tab")
    assert active(page) == f"quantity-{balcony.id}"
    shoot(page, "focus-1-after-add.png")

    # Add pressed with the keyboard: focus stays on Add; the next Tab enters the cart.
    page.keyboard.press("Control+A")
    page.keyboard.type("1")
    page.focus("#add-to-cart")
    page.keyboard.press("Enter")
    expect(page.locator("#cart .cart-line")).to_have_count(2)
    settled(page)
    assert active(page) == "add-to-cart"
    page.keyboard.press("Tab")
    assert active(page) == "cart-event-link"

    # A cart quantity changed, then Tab (the "change" fires as focus moves): the swapped
    # cart keeps focus where the Tab went, on that line's Remove.
    floor_line = page.locator("#cart .cart-line").filter(has_text="Floor")
    line_id = floor_line.get_attribute("id").removeprefix("line-")
    page.focus(f"#line-quantity-{line_id}")
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Tab")
    expect(page.locator("#cart .cart-total")).to_contain_text("€115.00")
    settled(page)
    assert active(page) == f"line-remove-{line_id}"
    # ... and Enter in the field keeps focus in it; the next Tab is that line's Remove.
    page.focus(f"#line-quantity-{line_id}")
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    page.keyboard.press("Enter")
    expect(page.locator("#cart .cart-total")).to_contain_text("€140.00")
    settled(page)
    assert active(page) == f"line-quantity-{line_id}"
    shoot(page, "focus-2-cart-quantity.png")
    page.keyboard.press("Tab")
    assert active(page) == f"line-remove-{line_id}"

    # Remove: the button is gone, focus goes to the note saying what happened.
    page.keyboard.press("Enter")
    expect(page.locator("#cart .cart-line")).to_have_count(1)
    settled(page)
    assert active(page) == "cart-news"
    expect(page.locator("#cart-news")).to_have_text("Floor removed. Total €40.00.")
    shoot(page, "focus-3-after-remove.png")
    page.keyboard.press("Tab")
    assert active(page) == "cart-event-link"

    # The live region said each change once, in words.
    assert said(page) == [
        "2 × Floor added. Total €50.00.",
        "1 × Balcony added. Total €90.00.",
        "Floor: now 3 tickets. Total €115.00.",
        "Floor: now 4 tickets. Total €140.00.",
        "Floor removed. Total €40.00.",
    ]
    # The countdown ticking announces nothing.
    page.wait_for_timeout(2_500)
    assert len(said(page)) == 5
    # (The console logs the deliberate 400 of the first Add; nothing else went wrong.)
    assert not watch.csp_violations and not watch.page_errors, (watch.csp_violations, watch.page_errors)


def contrast(a: str, b: str) -> float:
    def lum(css: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


RING = """(el) => {
    const s = getComputedStyle(el);
    let bg = 'rgb(255, 255, 255)';
    for (let p = el.parentElement; p; p = p.parentElement) {
      const c = getComputedStyle(p).backgroundColor;
      if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { bg = c; break; }
    }
    return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: s.outlineColor, background: bg};
}"""


@pytest.mark.parametrize("path", ["/events/{slug}", "/admin/sign-in"])
def test_the_skip_link_comes_first_and_every_focus_ring_is_plain(live, context, path):
    from playwright.sync_api import expect

    _app, base = live
    event = two_types()
    page = context.new_page()
    page.goto(base + path.format(slug=event.slug))
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert active(page) == "A:Skip to content"
    box = skip.bounding_box()
    assert box and box["y"] >= 0 and box["width"] >= 24 and box["height"] >= 24, box  # in sight now
    shoot(page, f"focus-skip-link-{'admin' if 'admin' in path else 'shop'}.png")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    page.keyboard.press("Tab")
    # Past the header: the first control inside <main>.
    assert page.evaluate("document.getElementById('content').contains(document.activeElement)")
    # Every control the keyboard reaches shows a ring of 2px or more that stands out.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    seen = 0
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate_handle("document.activeElement")
        if page.evaluate("document.activeElement === document.body"):
            break
        ring = page.evaluate(RING, focused)
        assert ring["style"] != "none" and ring["width"] >= 2, (active(page), ring)
        assert contrast(ring["color"], ring["background"]) >= 3, (active(page), ring)
        seen += 1
    assert seen >= 3
    expect(skip).to_be_attached()


CONTROLS = "a[href], button, input:not([type=hidden]), select, textarea, [role=button]"
TARGETS = """() => [...document.querySelectorAll('CONTROLS')]
  .filter(el => el.offsetParent !== null && !el.closest('.visually-hidden'))
  // An inline link inside a sentence is exempt (WCAG 2.5.8).
  .filter(el => !(el.tagName === 'A' && el.parentElement.matches('p, small, li')
                  && el.parentElement.textContent.trim() !== el.textContent.trim()))
  .map(el => { const r = el.getBoundingClientRect();
               return {what: el.outerHTML.slice(0, 90), width: r.width, height: r.height}; })""".replace(
    "CONTROLS", CONTROLS
)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_control_of_the_purchase_is_at_least_24_px(live, browser, viewport):
    _app, base = live
    event = two_types()
    context = browser.new_context(viewport=viewport, locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{base}/events/{event.slug}")
        page.locator(f"#quantity-{event.ticket_types[0].id}").fill("2")
        page.get_by_role("button", name="Add to cart").click()
        page.locator("#cart .cart-line").first.wait_for()
        measured = 0
        for path in (f"/events/{event.slug}", "/cart", "/checkout"):
            page.goto(base + path)
            targets = page.evaluate(TARGETS)
            small = [t for t in targets if t["width"] < 24 or t["height"] < 24]
            assert not small, (path, small)
            measured += len(targets)
        assert measured > 15
    finally:
        context.close()


def test_a_checkout_error_takes_focus_to_the_field_it_is_about(live, context):
    from playwright.sync_api import expect

    _app, base = live
    event = two_types()
    page = context.new_page()
    page.goto(f"{base}/events/{event.slug}")
    page.locator(f"#quantity-{event.ticket_types[0].id}").fill("1")
    page.get_by_role("button", name="Add to cart").click()
    page.locator("#cart .cart-line").first.wait_for()
    page.goto(f"{base}/checkout")
    page.get_by_label("Email for your tickets").fill("ada@example.com")
    page.locator("input[name=first-1]").fill("Ada")
    page.locator("input[name=last-1]").fill("   ")  # passes the browser's "required", not the shop
    page.locator("button.pay").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#checkout-error")).to_be_visible()
    settled(page)
    last = page.locator("input[name=last-1]")
    assert page.evaluate("document.activeElement.name") == "last-1"
    expect(last).to_have_attribute("aria-invalid", "true")
    expect(last).to_have_accessible_description(re.compile("first and a last name"))
    shoot(page, "focus-4-checkout-error.png")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "pay"
