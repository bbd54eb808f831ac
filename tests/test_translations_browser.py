"""French in a real browser: Chromium set to French gets the event page and the cart in
French (``lang="fr"``, French money and dates), and the switch, used without JavaScript,
changes the language and keeps it. Screenshots in tests/artifacts/."""

from __future__ import annotations

import re

import pytest

from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    EXPECT_TIMEOUT_MS,
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_event

pytestmark = pytest.mark.browser


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_french_browser_shops_in_french(browser, live):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    _app, base = live
    event = make_event(
        title="Nuit du Jazz", ticket_types=[{"name": "Plein tarif", "price_minor": 1250, "capacity": 50}]
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{base}/events/{event.slug}")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.locator(".tt-price").first).to_have_text("12,50\u00a0€")
        page.locator(f'input[name="quantity-{event.ticket_types[0].id}"]').fill("2")
        page.get_by_role("button", name="Ajouter au panier").click()
        expect(page.locator("#cart h2")).to_have_text("Votre panier")
        expect(page.locator("#cart .line-total").first).to_have_text("25,00\u00a0€")
        _shot(page, "event-with-cart-fr.png")
        page.goto(f"{base}/cart")
        expect(page.get_by_role("button", name="Vider le panier")).to_be_visible()
        _shot(page, "cart-fr.png")
        page.goto(f"{base}/checkout")
        expect(page.get_by_label("E-mail pour recevoir vos billets")).to_be_visible()
        expect(page.get_by_role("button", name="Payer")).to_be_visible()
        _shot(page, "checkout-fr.png")
        watch.assert_clean()
    finally:
        context.close()


def test_the_switch_works_without_javascript_and_is_remembered(browser, live):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    _app, base = live
    event = make_event(title="Nuit du Jazz")
    context = browser.new_context(java_script_enabled=False, locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{base}/events/{event.slug}")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        page.get_by_role("button", name="English").click()
        expect(page).to_have_url(re.compile(rf"/events/{event.slug}$"))  # back on the same page
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("button", name="Add to cart")).to_be_visible()
        page.goto(f"{base}/admin/sign-in")  # the choice holds in the back office too
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.get_by_role("button", name="Français").click()
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.get_by_role("button", name="Se connecter")).to_be_visible()
        _shot(page, "admin-sign-in-fr.png")
    finally:
        context.close()
