"""The door in Debian's Chromium on a phone (390×844): a member of the door signs in, types
codes and sees each answer over the whole screen (screenshots of every answer in
tests/artifacts/admin-door-*-phone.png, reviewed copies in docs/screenshots/ with
``UPDATE_SCREENSHOTS=1``); consecutive scans without reloading; the counters and the
search follow; a manager undoes a check-in at an event that is not today; and the door
works without JavaScript.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storefront.models import OrderStatus, TicketStatus
from storefront.staff_models import Role
from storefront.tickets import format_ticket_code

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_order
from .test_admin_browser import PHONE, assert_no_script_trouble, fits_the_screen, shoot, sign_in_on_page

pytestmark = pytest.mark.browser


def _covers_the_screen(page) -> None:
    page.wait_for_load_state("load")  # without JavaScript the answer is a new page: its styles first
    box = page.locator(".door-verdict").bounding_box()
    assert box == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}, box


def _type_code(page, code: str) -> None:
    field = page.get_by_label("Ticket code", exact=True)
    field.fill(code)
    page.get_by_role("button", name="Check in", exact=True).click()


def _answer(page, verdict: str, *words: str):
    from playwright.sync_api import expect

    shown = page.locator(f'.door-verdict[data-verdict="{verdict}"]')
    expect(shown).to_be_visible()
    expect(shown).to_have_attribute("role", "alert")
    for word in words:
        expect(shown).to_contain_text(word)
    _covers_the_screen(page)
    return shown


def _next(page) -> None:
    from playwright.sync_api import expect

    page.locator(".door-verdict [data-door-next]").click()  # "Scan next", "Back to scanning"
    expect(page.locator(".door-verdict")).to_have_count(0)


def test_every_answer_at_the_door_on_a_phone(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("chapel", "Old Chapel")
    tonight = make_event_of(organiser, "String Quartet", slug="quartet", starts_at=datetime.now(UTC))
    later = make_event_of(organiser, "Organ Recital", slug="organ")
    away = make_event_of(make_organiser("elsewhere", "Elsewhere"), "Their Gig")
    add_member(make_user("door@chapel.example"), organiser, Role.DOOR)
    guests = make_order(tonight, [("Zoë", "Ødegård"), ("李", "小龍"), ("Ada", "Lovelace")])
    void = make_order(tonight, [("Vera", "Void")], ticket_status=TicketStatus.VOID.value)
    refunded = make_order(tonight, [("Rufus", "Refund")], status=OrderStatus.REFUNDED.value)
    wrong = make_order(later, [("Otto", "Other")])
    theirs = make_order(away, [("Their", "Guest")])
    first = guests.tickets[0]

    context = browser.new_context(viewport=PHONE, locale="en-GB", has_touch=True, is_mobile=True)
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "door@chapel.example")
        page.get_by_role("button", name="String Quartet").click()
        expect(page.locator("h1")).to_have_text("String Quartet")
        expect(page.locator(".door-other-day")).to_have_count(0)
        expect(page.locator("#door-counters")).to_contain_text("0 of 3")
        fits_the_screen(page)
        page.get_by_label("This door").fill("North gate")
        shoot(page, "door-page", PHONE)
        watch.mark()

        _type_code(page, format_ticket_code(first.code).lower())
        _answer(page, "admitted", "Admitted", "Zoë Ødegård", "Standard")
        shoot(page, "door-admitted", PHONE)
        _next(page)
        expect(page.locator("#door-counters")).to_contain_text("1 of 3")

        _type_code(page, first.code)
        _answer(page, "already_used", "Already checked in", "at the door: North gate", "by door@chapel.example")
        shoot(page, "door-already-used", PHONE)
        _next(page)

        _type_code(page, void.tickets[0].code)
        _answer(page, "void", "Refused", "void")
        shoot(page, "door-void", PHONE)
        _next(page)

        _type_code(page, refunded.tickets[0].code)
        _answer(page, "refunded", "Refused", "refunded")
        shoot(page, "door-refunded", PHONE)
        _next(page)

        _type_code(page, wrong.tickets[0].code)
        _answer(page, "wrong_event", "Refused", "Organ Recital")
        shoot(page, "door-wrong-event", PHONE)
        _next(page)

        _type_code(page, theirs.tickets[0].code)
        shown = _answer(page, "unknown", "Refused", "Unknown ticket")
        expect(shown).not_to_contain_text("Their")
        shoot(page, "door-unknown", PHONE)
        _next(page)

        _type_code(page, "ACDEF")
        _answer(page, "error", "Not checked", "not a ticket code")
        _next(page)

        page.get_by_label("Find by name, order code or ticket code").fill("ada")
        results = page.locator("#door-results")
        expect(results).to_contain_text("Ada Lovelace")
        results.get_by_role("button", name="Check in").click()
        _answer(page, "admitted", "Ada Lovelace")
        _next(page)
        expect(results).to_contain_text("Checked in")
        expect(page.locator("#door-counters")).to_contain_text("2 of 3")
        shoot(page, "door-search", PHONE)

        watch.assert_not_reloaded()
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_manager_undoes_a_check_in_at_an_event_that_is_not_today(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("barn", "The Barn")
    event = make_event_of(organiser, "Harvest Dance", slug="harvest")  # in 30 days
    add_member(make_user("manager@barn.example"), organiser, Role.MANAGER)
    order = make_order(event, [("Hattie", "Hay")])
    context = browser.new_context(viewport=PHONE, locale="en-GB", has_touch=True, is_mobile=True)
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "manager@barn.example")
        page.goto(f"{base_url}/admin/o/barn/events/harvest/door")
        expect(page.locator(".door-other-day")).to_contain_text("not today")
        watch.mark()
        _type_code(page, order.tickets[0].code)
        shown = _answer(page, "admitted", "Hattie Hay")
        expect(shown.locator(".door-verdict-warning")).to_contain_text("not today")
        shoot(page, "door-not-today", PHONE)
        shown.get_by_role("button", name="Undo this check-in").click()
        _answer(page, "undone", "Check-in undone", "Hattie Hay")
        shoot(page, "door-undone", PHONE)
        _next(page)
        _type_code(page, order.tickets[0].code)
        _answer(page, "admitted", "Hattie Hay")
        watch.assert_not_reloaded()
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_the_door_works_without_javascript(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("cellar", "The Cellar")
    make_event_of(organiser, "Late Jazz", slug="late-jazz", starts_at=datetime.now(UTC))
    add_member(make_user("door@cellar.example"), organiser, Role.DOOR)
    event = make_event_of(organiser, "Early Jazz", slug="early-jazz", starts_at=datetime.now(UTC))
    order = make_order(event, [("Nina", "Nojs")])
    context = browser.new_context(viewport=PHONE, locale="en-GB", java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in_on_page(page, base_url, "door@cellar.example")
        page.goto(f"{base_url}/admin/o/cellar/events/early-jazz/door")
        expect(page.locator("[data-camera]")).to_be_hidden()  # no camera without the script
        _type_code(page, order.tickets[0].code)
        _answer(page, "admitted", "Nina Nojs")
        _next(page)
        _type_code(page, order.tickets[0].code)
        _answer(page, "already_used", "Already checked in")
        page.get_by_role("button", name="Scan next").click()
        page.get_by_label("Find by name, order code or ticket code").fill("nina")
        page.get_by_role("button", name="Find").click()
        expect(page.locator("#door-results")).to_contain_text("Checked in")
    finally:
        context.close()


def test_the_printable_door_list(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("loft", "The Loft")
    event = make_event_of(organiser, "Poetry Night", slug="poetry", starts_at=datetime.now(UTC))
    add_member(make_user("door@loft.example"), organiser, Role.DOOR)
    make_order(event, [("Zoë", "Ødegård"), ("Ἀριστοτέλης", "Σταγειρίτης"), ("Ada", "Lovelace")])
    make_order(event, [("Vera", "Void")], ticket_status=TicketStatus.VOID.value)
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "door@loft.example")
        page.goto(f"{base_url}/admin/o/loft/events/poetry/door")
        page.get_by_role("link", name="Printable door list").click()
        expect(page.locator("h1")).to_contain_text("Door list")
        expect(page.locator("table.door-list tbody tr")).to_have_count(4)
        fits_the_screen(page)  # the table scrolls in its own box
        shoot(page, "door-list", PHONE)
        page.emulate_media(media="print")
        expect(page.locator(".site-header")).to_be_hidden()
        assert_no_script_trouble(watch)
    finally:
        context.close()
