"""The events area in Debian's Chromium: an owner signs in, creates an event with two ticket
types (reordering them in place), publishes it and sees it in the shop; a viewer reads it
without edit controls and downloads an export; a door member sees only check-in; the events list at phone width.
Screenshots in tests/artifacts/admin-event*.png (reviewed copies in docs/screenshots/
with ``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image

from storefront.models import utcnow
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    PageWatch,
    browser,
    live,
    live_server,
)
from .test_admin_browser import DESKTOP, PHONE, assert_no_script_trouble, fits_the_screen, shoot, sign_in_on_page

pytestmark = pytest.mark.browser


def test_an_owner_creates_an_event_with_two_ticket_types_and_publishes_it(live, browser, tmp_path):
    from playwright.sync_api import expect

    app, base_url = live
    organiser = make_organiser("harbour", "Harbour Arts")
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@harbour.example")
        expect(page.locator("h1")).to_have_text("Harbour Arts")
        page.get_by_role("button", name="New event").first.click()
        expect(page.locator("h1")).to_have_text("New event")
        page.get_by_label("Title").fill("Lighthouse Sessions")
        page.get_by_label("Web address").fill("lighthouse-sessions")
        page.get_by_label("Description").fill("Acoustic sets by the sea.\n\n- **Three** bands\n- Hot drinks")
        page.get_by_label("Venue").fill("The Old Lighthouse, Harbour Road")
        page.get_by_label("Timezone").select_option("Europe/London")
        when = (utcnow() + timedelta(days=40)).strftime("%Y-%m-%d")
        page.get_by_label("Starts").fill(f"{when}T19:30")
        page.get_by_label("Currency").select_option("GBP")
        shoot(page, "event-new", DESKTOP)
        page.get_by_role("button", name="Save as a draft").click()

        expect(page.locator("h1")).to_have_text("Lighthouse Sessions")
        expect(page.locator(".page-title .pill")).to_have_text("Draft")
        for name, price in (("Standing", "11"), ("Front row", "30")):
            page.get_by_label("Name", exact=True).fill(name)
            page.get_by_label("Price").fill(price)
            page.get_by_label("Capacity", exact=True).fill("80")
            page.get_by_role("button", name="Add", exact=True).click()
            expect(page.locator(".notice-success")).to_contain_text(f"Ticket type {name} added")
        items = page.locator(".admin-tt strong")
        expect(items).to_have_text(["Standing", "Front row"])
        watch.mark()
        page.get_by_role("button", name="Move Front row up").click()  # htmx: in place
        expect(items).to_have_text(["Front row", "Standing"])
        watch.assert_not_reloaded()

        # The draft as a buyer would see it; the shop itself does not show it.
        page.get_by_role("button", name="Preview").click()
        expect(page.locator(".preview-banner")).to_contain_text("only members of the organiser can see this preview")
        expect(page.locator(".tt-name")).to_have_text(["Front row", "Standing"])
        expect(page.get_by_role("button", name="Add to cart")).to_be_disabled()
        shoot(page, "event-preview", DESKTOP)
        assert page.request.get(f"{base_url}/events/lighthouse-sessions").status == 404
        page.get_by_role("link", name="Back to the back office").click()

        # A ticket type's own page: a new price.
        page.locator(".admin-tt", has_text="Standing").get_by_role("link", name="Edit").click()
        expect(page.locator("h1")).to_have_text("Edit Standing")
        page.get_by_label("Price").fill("12.50")
        shoot(page, "ticket-type", DESKTOP)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".notice-success")).to_contain_text("Ticket type saved")

        image = io.BytesIO()
        Image.new("RGB", (1600, 900), (30, 90, 140)).save(image, "PNG")
        path = tmp_path / "cover.png"
        path.write_bytes(image.getvalue())
        page.get_by_label("Cover image (JPEG, PNG or WebP)").set_input_files(str(path))
        page.get_by_role("button", name="Upload").click()
        expect(page.locator(".notice-success")).to_contain_text("Cover image saved")
        page.get_by_role("button", name="Publish").click()
        expect(page.locator(".notice-success")).to_contain_text("Published")
        expect(page.locator(".page-title .pill")).to_have_text("On sale")
        fits_the_screen(page)
        shoot(page, "event", DESKTOP)

        page.get_by_role("button", name="Open in the shop").click()
        expect(page.locator("h1")).to_have_text("Lighthouse Sessions")
        expect(page.locator(".tt-name")).to_have_text(["Front row", "Standing"])
        expect(page.locator(".tt-price")).to_have_text(["£30.00", "£12.50"])
        expect(page.locator(".description li strong")).to_have_text("Three")
        expect(page.locator("img.event-cover")).to_be_visible()
        shoot(page, "event-in-shop", DESKTOP)
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_the_events_list_on_a_phone(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("phone-org", "Pocket Theatre")
    add_member(make_user("owner@pocket.example"), organiser, Role.OWNER)
    make_event_of(organiser, "A Midsummer Night's Dream")
    make_event_of(organiser, "The Tempest, with a much longer title than most", capacity=0)
    make_event_of(organiser, "Later in the year", sales_start=utcnow() + timedelta(days=5))
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@pocket.example")
        page.get_by_role("link", name="Events", exact=True).click()
        expect(page.locator("h1")).to_have_text("Events")
        expect(page.locator(".admin-event")).to_have_count(3)
        expect(page.locator(".admin-event").nth(1)).to_contain_text("Sold out")
        fits_the_screen(page)
        shoot(page, "events", PHONE)
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_viewer_reads_an_event_without_edit_controls(live, browser):
    from playwright.sync_api import expect

    app, base_url = live
    organiser = make_organiser("view-ev", "Viewing Hall")
    event = make_event_of(organiser, "Quiet Recital")
    add_member(make_user("viewer@viewhall.example"), organiser, Role.VIEWER)
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "viewer@viewhall.example")
        page.get_by_role("link", name="Quiet Recital").click()
        expect(page.locator("h1")).to_have_text("Quiet Recital")
        expect(page.locator("main form")).to_have_count(0)
        expect(page.get_by_role("button", name="Edit")).to_have_count(0)
        expect(page.get_by_role("button", name="Preview")).to_be_visible()
        # A viewer reads orders, so the event's exports are offered; one downloads as a file.
        exports = page.locator("section.admin-exports")
        expect(exports.get_by_role("heading")).to_have_text("Exports")
        expect(exports.get_by_role("button")).to_have_count(4)
        with page.expect_download() as download:
            exports.get_by_role("button", name="Attendees, the door list (CSV)").click()
        assert download.value.suggested_filename == f"attendees-{event.slug}.csv"
        fits_the_screen(page)
        shoot(page, "event-viewer", PHONE)
        # A POST the page does not offer is "not found", as for anything not theirs.
        answer = page.request.post(f"{base_url}/admin/o/view-ev/events/{event.slug}/publish")
        assert answer.status in (400, 404)  # the CSRF check (400) comes first without a token
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_door_member_sees_only_check_in(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("door-ev", "Door Hall")
    event = make_event_of(organiser, "Late Show")
    add_member(make_user("door@doorhall.example"), organiser, Role.DOOR)
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    try:
        sign_in_on_page(page, base_url, "door@doorhall.example")
        expect(page.locator(".admin-nav").get_by_role("link")).to_have_count(1)
        for path in ("events", f"events/{event.slug}", f"events/{event.slug}/edit", f"events/{event.slug}/preview"):
            assert page.goto(f"{base_url}/admin/o/door-ev/{path}").status == 404, path
        shoot(page, "event-door", PHONE)
    finally:
        context.close()
