"""The main purchase with the keyboard only, and what a screen reader is given (issue 12).

From the event page to the sandbox's hosted payment page and back to the order, with
Tab, Shift+Tab, Enter, Space and typing only (no click, no fill), in English and French.
On the way, the accessibility tree (Playwright's aria snapshot) is checked: every
control has a name, the headings go down one level at a time, and the cart change is
said in the polite live region in the page's language."""

from __future__ import annotations

import re

import pytest

from .browser_support import ARTIFACTS, PageWatch
from .checkout_support import order_of, sandbox, shop  # noqa: F401 (sandbox, shop: fixtures)
from .factories import make_event
from .test_sandbox_browser import browser  # noqa: F401 (browser: fixture)

pytestmark = pytest.mark.browser

LANGUAGES = {
    "en": {"locale": "en-GB", "said": "2 × Floor added. Total €50.00.", "order": "Your order"},
    "fr": {"locale": "fr-FR", "said": "Ajouté au panier : 2 × Floor. Total : 50,00 €.", "order": "Votre commande"},
}


def plain(text: str) -> str:
    """Spaces as a person reads them (no-break and narrow no-break spaces too)."""
    return re.sub(r"\s+", " ", text).strip()


def tab_to(page, selector: str, *, back: bool = False, most: int = 60) -> None:
    """Press Tab (Shift+Tab when ``back``) until the focused element matches ``selector``."""
    for _ in range(most):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


UNNAMED = re.compile(r"^\s*- (button|link|textbox|spinbutton|checkbox|radio|combobox|switch)\s*(\[.*\])?:?\s*$")
HEADING = re.compile(r'^\s*- heading "(.*)" \[level=(\d)\]')


def check_tree(page, where: str) -> str:
    """The page's accessibility tree: every control named, headings in order."""
    tree = page.locator("body").aria_snapshot()
    unnamed = [line for line in tree.splitlines() if UNNAMED.match(line)]
    assert not unnamed, (where, unnamed)
    levels = [int(m.group(2)) for m in map(HEADING.match, tree.splitlines()) if m]
    assert levels and levels[0] == 1, (where, levels)
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), (where, levels)
    return tree


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_whole_purchase_with_the_keyboard_only(shop, sandbox, browser, lang):  # noqa: F811
    from playwright.sync_api import expect

    words = LANGUAGES[lang]
    event = make_event(
        title="Harbour Nights",
        ticket_types=[
            {"name": "Floor", "price_minor": 2500, "capacity": 50},
            {"name": "Balcony", "price_minor": 4000, "capacity": 50},
        ],
    )
    floor = event.ticket_types[0]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=words["locale"])
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{shop.live_url}/events/{event.slug}")
        assert page.evaluate("document.documentElement.lang") == lang
        check_tree(page, "event page")

        # Two Floor tickets, Add: typed and pressed from the keyboard.
        tab_to(page, f"#quantity-{floor.id}")
        page.keyboard.press("Control+A")
        page.keyboard.type("2")
        tab_to(page, "#add-to-cart")
        page.keyboard.press("Space")
        expect(page.locator("#cart .cart-line")).to_have_count(1)
        # The screen reader hears the change, in the page's language.
        expect(page.get_by_role("status").filter(has_text="Floor")).to_have_count(1)
        region = page.locator("#cart-status")
        expect(region).to_have_text(re.compile(r"\S"))
        assert plain(region.text_content()) == words["said"]
        tree = check_tree(page, "event page with cart")
        assert "Floor" in tree and "status" in tree
        # Shift+Tab goes back from the Add button to the Balcony row, not to the logo.
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.id") == f"quantity-{event.ticket_types[1].id}"

        tab_to(page, "#cart-checkout")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"focus-keyboard-{lang}-1-checkout-link.png"))
        page.keyboard.press("Enter")
        page.wait_for_url(f"{shop.live_url}/checkout")
        check_tree(page, "checkout")

        tab_to(page, "input[name=email]")
        page.keyboard.type("ada@example.com")
        for n, (first, last) in enumerate([("Ada", "Lovelace"), ("Charles", "Babbage")], 1):
            tab_to(page, f"input[name=first-{n}]")
            page.keyboard.type(first)
            page.keyboard.press("Tab")
            page.keyboard.type(last)
        tab_to(page, "button.pay")
        page.screenshot(path=str(ARTIFACTS / f"focus-keyboard-{lang}-2-pay.png"))
        page.keyboard.press("Enter")

        # The hosted payment page, by keyboard too.
        page.wait_for_url(f"{sandbox.base}/pay/cs_*")
        session_id = page.url.rsplit("/", 1)[1]
        for selector, text in (
            ("#card_number", "4242 4242 4242 4242"),
            ("#card_expiry", "12 / 34"),
            ("#card_cvc", "123"),
            ("#name", "Ada Lovelace"),
        ):
            tab_to(page, selector)
            page.keyboard.type(text)
        tab_to(page, "button.sbx-submit")
        page.keyboard.press("Enter")

        page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
        expect(page.locator(".order h1")).to_contain_text(words["order"], timeout=15_000)
        order = order_of(session_id)
        assert order is not None and len(order.tickets) == 2
        check_tree(page, "success page")
        assert not watch.csp_violations and not watch.page_errors, (watch.csp_violations, watch.page_errors)
    finally:
        context.close()
