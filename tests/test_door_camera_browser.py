"""The camera at the door, in headless Chromium: a ticket's QR code played as the camera's
picture (``--use-fake-device-for-media-stream --use-file-for-fake-video-capture``, a Y4M
written from segno's code), read by the page (BarcodeDetector where Chromium has it,
else the vendored jsQR, loaded under the CSP) and sent as a scan: admitted; and the same
code, still in front of the camera after "Scan next", is not sent again.

Chromium reads the video file when it starts, so this module starts its own browser,
after the ticket (and so its secret) exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (live, live_server: fixtures)
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    PageWatch,
    _unavailable,
    live,
    live_server,
)
from .factories import make_order
from .qr_images import write_y4m
from .test_admin_browser import PHONE, assert_no_script_trouble, shoot, sign_in_on_page

pytestmark = pytest.mark.browser


def test_a_qr_code_held_to_the_camera_checks_the_ticket_in(live, tmp_path):
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: install Debian's chromium package to run the browser tests")
    from playwright.sync_api import expect, sync_playwright

    _, base_url = live
    organiser = make_organiser("camera-hall", "Camera Hall")
    event = make_event_of(organiser, "Lens Night", slug="lens-night", starts_at=datetime.now(UTC))
    add_member(make_user("door@camera.example"), organiser, Role.DOOR)
    order = make_order(event, [("Cam", "Era")])
    video = write_y4m(tmp_path / "ticket.y4m", order.tickets[0].secret)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        context = browser.new_context(viewport=PHONE, locale="en-GB", has_touch=True, is_mobile=True)
        context.grant_permissions(["camera"], origin=base_url)
        page = context.new_page()
        watch = PageWatch(page)
        try:
            sign_in_on_page(page, base_url, "door@camera.example")
            page.goto(f"{base_url}/admin/o/camera-hall/events/lens-night/door")
            watch.mark()
            page.get_by_role("button", name="Scan with the camera").click()
            shown = page.locator('.door-verdict[data-verdict="admitted"]')
            expect(shown).to_be_visible(timeout=20_000)
            expect(shown).to_contain_text("Cam Era")
            decoder = page.locator("[data-door]").get_attribute("data-decoder-used")
            assert decoder in ("BarcodeDetector", "jsQR"), decoder
            shoot(page, "door-camera-admitted", PHONE)
            page.get_by_role("button", name="Scan next").click()
            # The guest just let in is still in front of the camera: no amber "already checked
            # in" for them, the code is sent again only once it has been out of view a while.
            page.wait_for_timeout(5_000)
            expect(page.locator(".door-verdict")).to_have_count(0)
            assert len(watch.posts("/door/scan")) == 1, [r.url for r in watch.posts("/door/scan")]
            page.get_by_role("button", name="Stop the camera").click()
            shoot(page, "door-camera", PHONE)
            watch.assert_not_reloaded()
            assert_no_script_trouble(watch)
        finally:
            context.close()
            browser.close()


def test_the_vendored_decoder_loads_under_the_csp_and_reads_a_qr_code(live, tmp_path):
    """Whatever the camera: jsQR itself, fetched by the door page under its CSP, decodes a
    QR code drawn into the page's canvas (no eval, no inline script)."""
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: install Debian's chromium package to run the browser tests")
    from playwright.sync_api import sync_playwright

    from .qr_images import HEIGHT, WIDTH, qr_pixels

    _, base_url = live
    organiser = make_organiser("decoder-hall", "Decoder Hall")
    make_event_of(organiser, "Decode Night", slug="decode-night", starts_at=datetime.now(UTC))
    add_member(make_user("door@decoder.example"), organiser, Role.DOOR)
    pixels = list(qr_pixels("door-test-secret-0123456789abcdef"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        watch = PageWatch(page)
        try:
            sign_in_on_page(page, base_url, "door@decoder.example")
            page.goto(f"{base_url}/admin/o/decoder-hall/events/decode-night/door")
            src = page.locator("[data-door]").get_attribute("data-decoder")
            page.add_script_tag(url=f"{base_url}{src}")
            decoded = page.evaluate(
                """([grey, width, height]) => {
                    const rgba = new Uint8ClampedArray(width * height * 4);
                    grey.forEach((v, i) => { rgba.set([v, v, v, 255], i * 4); });
                    const found = window.jsQR(rgba, width, height);
                    return found && found.data;
                }""",
                [pixels, WIDTH, HEIGHT],
            )
            assert decoded == "door-test-secret-0123456789abcdef"
            assert_no_script_trouble(watch)
        finally:
            browser.close()
