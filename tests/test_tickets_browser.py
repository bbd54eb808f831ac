"""A buyer's tickets in Debian's Chromium: the order page with its QR codes at desktop and
at a 390 px phone's width (each QR code, as the screen shows it, decodes to its ticket's
secret), the PDF downloaded from it, the "Lost your tickets?" page, and a manager
reissuing a ticket. Screenshots in tests/artifacts/tickets-*.png (reviewed copies in
docs/screenshots/ with ``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from storefront.staff_models import Role
from storefront.tickets import format_ticket_code

from .admin_support import PASSWORD, add_member, mails_to, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    ROOT,
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_event, make_order, reload_order
from .sandbox_support import wait_until
from .ticket_support import NAMES, decode_qr, pdf_pages

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def viewport(request):
    return request.param


def shoot(page, name: str, viewport: dict) -> None:
    suffix = "-phone" if viewport is PHONE else ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    shot = ARTIFACTS / f"tickets-{name}{suffix}.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed pictures on purpose only
        target = ROOT / "docs" / "screenshots" / shot.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def sign_in_on_page(page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/admin/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_the_order_page_shows_scannable_qr_codes_and_the_pdf(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    event = make_event(title="Nuit de l’Orgue", ticket_types=[{"name": "Parterre", "price_minor": 3500}])
    order = make_order(event, NAMES[:2], email="zoe@example.com")
    context = browser.new_context(viewport=viewport, locale="en-GB", accept_downloads=True)
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{base_url}/orders/{order.access_token}")
        expect(page.locator(".order h1")).to_have_text(f"Your order {order.code}")
        cards = page.locator(".ticket-card")
        expect(cards).to_have_count(2)
        for n, ticket in enumerate(order.tickets):
            card = cards.nth(n)
            expect(card).to_contain_text(f"{ticket.attendee_first_name} {ticket.attendee_last_name}")
            expect(card).to_contain_text("Parterre")
            expect(card).to_contain_text(format_ticket_code(ticket.code))
            qr = card.locator("figure.ticket-qr-box")
            box = qr.bounding_box()
            assert box["width"] >= 150, f"the QR code is {box['width']} px wide: too small to scan"
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], "the QR code leaves the screen"
            pixels = Image.open(io.BytesIO(qr.screenshot()))
            assert decode_qr(pixels) == [ticket.secret]
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= viewport["width"], f"the page scrolls sideways ({scroll_width} px)"
        shoot(page, "order", viewport)

        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download the tickets (PDF)").click()
        download = download_info.value
        assert download.suggested_filename == f"tickets-{order.code}.pdf"
        pages = pdf_pages(Path(download.path()).read_bytes())
        assert [codes for _text, codes in pages] == [[t.secret] for t in order.tickets]
        watch.assert_clean()
    finally:
        context.close()


def test_lost_tickets_page(live, browser, viewport, tmp_path):
    from playwright.sync_api import expect

    app, base_url = live
    outbox_was = app.config["MAIL_OUTBOX"]
    app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    order = make_order(make_event(title="Spring Gala"), email="ada@example.com")
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{base_url}/")
        page.get_by_role("link", name="Lost your tickets?").click()
        expect(page.locator("h1")).to_have_text("Lost your tickets?")
        shoot(page, "lost", viewport)
        page.get_by_label("The email address you ordered with").fill("not an address")
        page.get_by_role("button", name="Send me the links").click()
        expect(page.locator("main")).to_contain_text("Please enter a valid email address")
        page.get_by_label("The email address you ordered with").fill("ada@example.com")
        page.get_by_role("button", name="Send me the links").click()
        expect(page.locator(".notice-success")).to_contain_text("on its way")
        shoot(page, "lost-sent", viewport)
        # The mail goes out once the answer is sent.
        [message] = wait_until(lambda: mails_to(app, "ada@example.com"), timeout=5, what="the links mail")
        assert f"/orders/{order.access_token}" in message.get_body(("plain",)).get_content()
        assert not watch.csp_violations and not watch.page_errors
    finally:
        context.close()
        app.config["MAIL_OUTBOX"] = outbox_was


def test_a_manager_finds_a_ticket_by_its_code_and_reissues_it(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("harbour", "Harbour Nights")
    event = make_event_of(organiser, "Harbour Lights Festival")
    order = make_order(event, [("Grace", "Hopper")])
    old_code, old_secret = order.tickets[0].code, order.tickets[0].secret
    add_member(make_user("manager@harbour.example"), organiser, Role.MANAGER)
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "manager@harbour.example")
        page.get_by_role("link", name="Tickets").click()
        page.get_by_label("Ticket code").fill(format_ticket_code(old_code).lower())
        page.get_by_role("button", name="Find").click()
        expect(page.locator("h1")).to_have_text(f"Ticket {format_ticket_code(old_code)}")
        expect(page.locator("main")).to_contain_text("Grace Hopper")
        page.get_by_role("button", name="Reissue this ticket").click()
        expect(page.locator(".notice-success")).to_contain_text("Ticket reissued")
        new = reload_order(order.id).tickets[0]
        assert new.code != old_code and new.secret != old_secret
        expect(page.locator("h1")).to_have_text(f"Ticket {format_ticket_code(new.code)}")
        shoot(page, "reissued", viewport)
        assert not watch.csp_violations and not watch.page_errors
    finally:
        context.close()
