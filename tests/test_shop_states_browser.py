"""States shown up front, as a person sees them (Chromium): the event page not yet on
sale, with its limits and the organiser's contact, and the events list with each
availability state, at desktop and phone width, in English and French. The pictures go
to tests/artifacts/ (and docs/screenshots/ with UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Organiser, utcnow

from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    EXPECT_TIMEOUT_MS,
    ROOT,
    browser,
    live,
    live_server,
)
from .factories import make_event

pytestmark = pytest.mark.browser
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "screenshots" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def _no_sideways_scroll(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _events():
    now = utcnow()
    make_event(title="Plenty of Room", ticket_types=[{"name": "Standard", "capacity": 200}])
    make_event(title="Nearly Full", ticket_types=[{"name": "Standard", "capacity": 100, "sold": 94}])
    make_event(title="All Gone", ticket_types=[{"name": "Standard", "capacity": 50, "sold": 50}])
    later = make_event(
        title="Spring Gala",
        sales_start=now + timedelta(days=5),
        ticket_types=[{"name": "Standard", "max_per_order": 4}, {"name": "Balcony", "max_per_order": 2}],
    )
    make_event(title="Closed Early", sales_end=now - timedelta(hours=1))
    with write_transaction():
        db.session.execute(
            update(Organiser).where(Organiser.slug == "test-org").values(contact_email="hello@harbour.example")
        )
    limits = make_event(
        title="Harbour Jazz",
        ticket_types=[{"name": "Standard", "max_per_order": 4}, {"name": "Front Row", "capacity": 3}],
    )
    return later, limits


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
@pytest.mark.parametrize("size", list(SIZES))
def test_states_up_front_as_seen(live, browser, size, locale):
    from playwright.sync_api import expect

    app, base = live
    later, limits = _events()
    lang = locale[:2]
    context = browser.new_context(viewport=SIZES[size], locale=locale)
    try:
        page = context.new_page()
        page.set_default_timeout(EXPECT_TIMEOUT_MS)

        page.goto(f"{base}/")
        expect(page.locator(".event-availability .pill")).to_have_count(6)
        _no_sideways_scroll(page, SIZES[size]["width"])
        _shot(page, f"events-availability-{lang}-{size}")

        page.goto(f"{base}/events/{later.slug}")
        add = page.locator("button.add-to-cart")
        expect(add).to_be_disabled()
        expect(page.locator("#add-to-cart-why")).to_contain_text("En vente dès le" if lang == "fr" else "On sale from")
        expect(page.locator(".organiser a")).to_have_text("hello@harbour.example")
        expect(page.locator('input[name^="quantity-"]')).to_have_count(0)
        _no_sideways_scroll(page, SIZES[size]["width"])
        _shot(page, f"event-not-yet-on-sale-{lang}-{size}")

        page.goto(f"{base}/events/{limits.slug}")
        standard, front = limits.ticket_types
        expect(page.locator(f"#limit-{standard.id}")).to_have_text(
            "Jusqu'à 4 par commande" if lang == "fr" else "Up to 4 per order"
        )
        expect(page.locator(f'input[name="quantity-{front.id}"]')).to_have_attribute("max", "3")
        # Adding moves the header's count at once (htmx, out of band).
        page.locator(f'input[name="quantity-{standard.id}"]').fill("2")
        page.locator("button.add-to-cart").click()
        expect(page.locator("#cart-count .badge")).to_have_text("2")
        _no_sideways_scroll(page, SIZES[size]["width"])
        _shot(page, f"event-limits-organiser-{lang}-{size}")
    finally:
        context.close()
