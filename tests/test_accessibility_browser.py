"""axe-core on every page and state a buyer meets, in English and French, on a desktop
(1280 px) and a phone (390 px): no WCAG 2.0/2.1/2.2 A or AA violation, nor of axe's best
practices (``axe_support``).

The tour: the events list; an event on sale, sold out, and not yet on sale; an event with a
cart; the cart; the checkout form showing an error; the hosted sandbox payment page (its own
process) and its declined, 3-D Secure and bank-debit states; the success page while it polls,
then with the order; the order page; a bank debit processing, and one that failed; the
lost-tickets page (with an error, then sent); a page that does not exist.

Each page's screenshot goes to ``tests/artifacts/shop-<page>-<en|fr>-<desktop|phone>.png``,
and with ``UPDATE_SCREENSHOTS=1`` to ``docs/screenshots/`` (the reviewed copies).
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest

from storefront.models import utcnow

from .axe_support import assert_accessible, axe_source
from .browser_support import ARTIFACTS, ROOT, PageWatch
from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    IBAN_FAILS,
    IBAN_OK,
    deliver,
    drop_completed,
    order_of,
    sandbox,
    shop,
    stripe_event,
)
from .factories import make_event
from .test_sandbox_browser import browser  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"]),
    pytest.mark.app_config(WTF_CSRF_ENABLED=True),
]

LOCALES = {"en": "en-GB", "fr": "fr-FR"}
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
DOC_SHOTS = ROOT / "docs" / "screenshots"
CATALOGS = ROOT / "storefront" / "translations"


def tr(lang: str, msgid: str) -> str:
    """``msgid`` as the shop shows it in ``lang``."""
    from babel.support import Translations

    return Translations.load(str(CATALOGS), [lang]).gettext(msgid)


@pytest.fixture(params=[(lang, size) for lang in LOCALES for size in SIZES], ids=lambda p: f"{p[0]}-{p[1]}")
def buyer(request, browser):  # noqa: F811 (browser: the fixture)
    """(page, watch, lang, size): a fresh browser context in that language and size."""
    axe_source()  # axe-core missing: skip (or fail in CI) before doing anything
    lang, size = request.param
    context = browser.new_context(viewport=SIZES[size], locale=LOCALES[lang])
    try:
        page = context.new_page()
        yield page, PageWatch(page), lang, size
    finally:
        context.close()


def check(page, name: str, lang: str, size: str) -> None:
    """The page is in ``lang``, axe finds nothing on it, and its screenshot is taken."""
    assert page.locator("html").get_attribute("lang") == lang, f"{name}: <html lang> is not {lang}"
    assert_accessible(page, f"{name} ({lang}, {size}, {page.url})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"shop-{name}-{lang}-{size}.png"
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed pictures on purpose only
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SHOTS / shot.name)


def events():
    on_sale = make_event(
        title="Jazz at the Harbour",
        ticket_types=[
            {"name": "Early Bird", "price_minor": 1900, "capacity": 12, "sold": 8},
            {"name": "Standard", "price_minor": 2500, "capacity": 100},
        ],
    )
    sold_out = make_event(
        title="Opera Gala",
        starts_in=timedelta(days=40),
        ticket_types=[{"name": "Stalls", "price_minor": 4500, "capacity": 10, "sold": 10}],
    )
    later = make_event(
        title="Winter Festival",
        starts_in=timedelta(days=90),
        sales_start=utcnow() + timedelta(days=10),
        ticket_types=[{"name": "Day pass", "price_minor": 3000, "capacity": 50}],
    )
    return on_sale, sold_out, later


def add_to_cart(page, base: str, event, quantity: int) -> None:
    from playwright.sync_api import expect

    tt = event.ticket_types[-1]
    page.goto(f"{base}/events/{event.slug}")
    page.locator(f"input[name='quantity-{tt.id}']").fill(str(quantity))
    page.locator("button.add-to-cart").click()
    expect(page.locator("#cart")).to_contain_text(tt.name)


def fill_checkout(page, email: str, attendees: int) -> None:
    page.locator("input[name='email']").fill(email)
    for n in range(1, attendees + 1):
        page.locator(f"input[name='first-{n}']").fill(f"Ada{n}")
        page.locator(f"input[name='last-{n}']").fill("Lovelace")


def to_payment_page(page, shop, sandbox, event, quantity: int) -> str:  # noqa: F811
    """From the event page to the hosted payment page; returns the session's id."""
    add_to_cart(page, shop.live_url, event, quantity)
    page.goto(f"{shop.live_url}/checkout")
    fill_checkout(page, "ada@example.com", quantity)
    page.locator("button.pay").click()
    page.wait_for_url(f"{sandbox.base}/pay/cs_*")
    return page.url.rsplit("/", 1)[1]


def fill_card(page, number: str) -> None:
    page.locator("#card_number").fill(number)
    page.locator("#card_expiry").fill("12 / 34")
    page.locator("#card_cvc").fill("123")
    page.locator("#name").fill("Ada Lovelace")


def test_the_shop_pages_have_no_axe_violation(shop, buyer):
    from playwright.sync_api import expect

    page, watch, lang, size = buyer
    base = shop.live_url
    on_sale, sold_out, later = events()

    page.goto(f"{base}/")
    expect(page.locator("main")).to_contain_text("Winter Festival")
    check(page, "events", lang, size)
    page.goto(f"{base}/events/{on_sale.slug}")
    check(page, "event", lang, size)
    page.goto(f"{base}/events/{sold_out.slug}")
    check(page, "event-sold-out", lang, size)
    page.goto(f"{base}/events/{later.slug}")
    check(page, "event-not-on-sale", lang, size)

    add_to_cart(page, base, on_sale, 2)
    check(page, "event-with-cart", lang, size)
    page.goto(f"{base}/cart")
    check(page, "cart", lang, size)

    # An address the browser lets through but the shop refuses: the form says so.
    page.goto(f"{base}/checkout")
    fill_checkout(page, "ada@example", 2)
    page.locator("button.pay").click()
    expect(page.locator(".notice-error[role='alert']")).to_be_visible()
    check(page, "checkout-error", lang, size)

    page.goto(f"{base}/lost-tickets")
    check(page, "lost-tickets", lang, size)
    page.locator("main input[name='email']").fill("nobody")  # refused: the field says why
    page.locator("main form button[type='submit']").click()
    expect(page.locator("main .notice-error")).to_be_visible()
    check(page, "lost-tickets-error", lang, size)
    page.locator("main input[name='email']").fill("ada@example.com")
    page.locator("main form button[type='submit']").click()
    expect(page.locator(".notice-success")).to_be_visible()
    check(page, "lost-tickets-sent", lang, size)
    assert page.goto(f"{base}/events/no-such-event").status == 404
    check(page, "not-found", lang, size)
    assert not watch.csp_violations, watch.csp_violations
    assert not watch.page_errors, watch.page_errors


def test_the_payment_pages_have_no_axe_violation(shop, sandbox, buyer):  # noqa: F811
    from playwright.sync_api import expect

    page, watch, lang, size = buyer
    on_sale, _, _ = events()
    session_id = to_payment_page(page, shop, sandbox, on_sale, 2)
    expect(page.locator("#card_number")).to_be_visible()
    check(page, "payment", lang, size)

    fill_card(page, CARD_DECLINED)
    page.locator(".sbx-submit").click()
    expect(page.locator("#decline")).to_be_visible()
    check(page, "payment-declined", lang, size)

    fill_card(page, CARD_3DS)
    page.locator(".sbx-submit").click()
    expect(page.locator("button[value='complete']")).to_be_visible()
    check(page, "payment-3ds", lang, size)

    # Stripe's completion is held back: the success page polls, then shows the order.
    drop_completed(sandbox)
    page.locator("button[value='complete']").click()
    page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
    expect(page.locator("#payment-status")).to_be_visible()
    check(page, "success-polling", lang, size)
    assert deliver(shop.test_client(), stripe_event("checkout.session.completed", session_id)).status_code == 200
    expect(page.locator(".order h1")).to_be_visible(timeout=15_000)
    check(page, "success-order", lang, size)
    page.goto(page.locator("a.order-link").get_attribute("href"))
    expect(page.locator(".order h1")).to_contain_text(order_of(session_id).code)
    check(page, "order", lang, size)
    watch.assert_clean()


@pytest.mark.parametrize("settles", [True, False], ids=["settles", "fails"])
def test_the_bank_debit_pages_have_no_axe_violation(shop, sandbox, buyer, settles):  # noqa: F811
    """Processing, then (for the IBAN that fails later) the page saying the bank debit failed."""
    from playwright.sync_api import expect

    page, watch, lang, size = buyer
    on_sale, _, _ = events()
    session_id = to_payment_page(page, shop, sandbox, on_sale, 1)
    page.locator("#method-bank").check()
    page.locator("#iban").fill(IBAN_OK if settles else IBAN_FAILS)
    page.locator("#name").fill("Grace Hopper")
    if settles:
        check(page, "payment-bank-debit", lang, size)
    page.locator(".sbx-submit").click()
    page.wait_for_url(f"{shop.live_url}/checkout/success?session_id={session_id}")
    processing = tr(lang, "Your payment is being processed")
    expect(page.locator("#payment-status h1")).to_have_text(processing, timeout=15_000)
    if settles:
        check(page, "success-bank-debit", lang, size)
    else:
        pi_id = sandbox.client().v1.checkout.sessions.retrieve(session_id).payment_intent
        sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
        failed = tr(lang, "Your bank debit failed")
        expect(page.locator("#payment-status h1")).to_have_text(failed, timeout=15_000)
        check(page, "success-bank-debit-failed", lang, size)
    watch.assert_clean()
