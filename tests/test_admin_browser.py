"""The back office in Debian's Chromium: signing in with the second factor, a viewer who
cannot edit, a door member who sees only check-in, and an owner changing a role in place.
At desktop and phone width; screenshots in tests/artifacts/admin-*.png (reviewed copies
in docs/screenshots/ with ``UPDATE_SCREENSHOTS=1``).

The real app (CSRF on) is served by werkzeug in a background thread on SQLite.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from storefront.extensions import db
from storefront.staff_models import Role

from .admin_support import PASSWORD, add_member, make_event_of, make_organiser, make_user, reload_user, totp_now
from .browser_support import ARTIFACTS, ROOT, PageWatch, browser  # noqa: F401 (browser: a fixture)
from .conftest import clean, make_app

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def live_server(database_urls):
    app = make_app(database_urls["sqlite"], WTF_CSRF_ENABLED=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="admin-live-server", daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        clean(app)


@pytest.fixture
def live(live_server):
    app, base_url = live_server
    clean(app)
    with app.app_context():
        yield app, base_url
        db.session.remove()


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def viewport(request):
    return request.param


def shoot(page, name: str, viewport: dict) -> None:
    suffix = "-phone" if viewport is PHONE else ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    shot = ARTIFACTS / f"admin-{name}{suffix}.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed pictures on purpose only
        target = ROOT / "docs" / "screenshots" / shot.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def sign_in_on_page(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/admin/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def assert_no_script_trouble(watch) -> None:
    """No CSP violation and no uncaught exception. (A refused form answers 4xx, which the
    console reports as a failed load: that is the point, so those are not counted.)"""
    assert not watch.csp_violations, watch.csp_violations
    assert not watch.page_errors, watch.page_errors
    others = [t for t in watch.console_errors if "status of 4" not in t and "Response Status Error Code 4" not in t]
    assert not others, others


def fits_the_screen(page) -> None:
    page.wait_for_load_state("load")  # measured with the stylesheets applied
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways: {width}px"


def test_sign_in_with_the_second_factor(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    owner = make_user("owner@jazz.example", two_factor=True)
    organiser = make_organiser("jazz-club", "Jazz Club")
    add_member(owner, organiser, Role.OWNER)
    make_event_of(organiser, "Nocturne Jazz Night")
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{base_url}/admin/o/jazz-club/members")
        expect(page.locator("h1")).to_have_text("Sign in")  # sent to sign in first
        page.get_by_label("Email").fill("owner@jazz.example")
        page.get_by_label("Password").fill("not my password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("[role=alert]")).to_have_text("Wrong email or password.")
        page.get_by_label("Email").fill("owner@jazz.example")
        page.get_by_label("Password").fill(PASSWORD)
        shoot(page, "sign-in", viewport)
        page.get_by_role("button", name="Sign in").click()

        expect(page.locator("h1")).to_have_text("Two-factor sign-in")
        page.get_by_label("Code from your app, or a recovery code").fill("000000")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".field-error")).to_contain_text("That code is not right")
        page.get_by_label("Code from your app, or a recovery code").fill(totp_now(reload_user(owner.id), 1))
        shoot(page, "second-factor", viewport)
        page.get_by_role("button", name="Sign in").click()

        expect(page.locator("h1")).to_have_text("Members")  # back where it started
        expect(page.locator(".admin-organiser")).to_contain_text("Jazz Club")
        expect(page.locator("table.members")).to_contain_text("owner@jazz.example")
        fits_the_screen(page)
        shoot(page, "members", viewport)

        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("h1")).to_have_text("You are signed out")
        page.goto(f"{base_url}/admin/o/jazz-club/members")
        expect(page.locator("h1")).to_have_text("Sign in")
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_an_owner_changes_a_role_in_place(live, browser):
    from playwright.sync_api import expect

    _, base_url = live
    owner = make_user("owner@roles.example")
    organiser = make_organiser("roles", "Roles Hall")
    add_member(owner, organiser, Role.OWNER)
    member = add_member(make_user("helper@roles.example"), organiser, Role.VIEWER)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@roles.example")
        page.goto(f"{base_url}/admin/o/roles/members")
        watch.mark()
        page.get_by_label("Role of helper@roles.example").select_option("door")
        row = page.locator(f"#member-{member.id}")
        expect(row.locator(".field-saved")).to_have_text("Saved")
        watch.assert_not_reloaded()
        db.session.rollback()
        assert db.session.get(type(member), member.id).role == Role.DOOR
        # The last owner: refused in place, with the reason beside the field.
        page.get_by_label("Role of owner@roles.example").select_option("viewer")
        expect(page.locator(".field-error")).to_contain_text("at least one owner")
        watch.assert_not_reloaded()
        [request] = watch.posts(f"/members/{member.id}/role")
        assert request.headers.get("x-csrftoken")
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_viewer_cannot_edit(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("viewing", "Viewing Rooms")
    make_event_of(organiser, "Harbour Lights Festival")
    add_member(make_user("owner@viewing.example"), organiser, Role.OWNER)
    add_member(make_user("viewer@viewing.example"), organiser, Role.VIEWER)
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "viewer@viewing.example")
        expect(page.locator("h1")).to_have_text("Viewing Rooms")
        expect(page.locator(".page-title p")).to_contain_text("Viewer")
        expect(page.locator("main")).to_contain_text("Harbour Lights Festival")
        nav = page.locator(".admin-nav")
        expect(nav.get_by_role("link", name="Home")).to_be_visible()
        for hidden in ("Members", "Settings", "Audit log", "Check-in"):
            expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
        expect(page.locator("main form")).to_have_count(0)  # nothing to edit
        fits_the_screen(page)
        shoot(page, "viewer", viewport)
        answer = page.goto(f"{base_url}/admin/o/viewing/settings")
        assert answer.status == 403
        expect(page.locator("h1")).to_have_text("Not allowed with your role")
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_door_member_sees_only_check_in(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    organiser = make_organiser("doors", "Old Chapel")
    tonight = make_event_of(organiser, "String Quartet")
    other = make_event_of(organiser, "Organ Recital")
    add_member(make_user("owner@doors.example"), organiser, Role.OWNER)
    add_member(make_user("door@doors.example"), organiser, Role.DOOR, events=[tonight])
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "door@doors.example")
        expect(page.locator("h1")).to_have_text("Check-in")
        nav = page.locator(".admin-nav")
        expect(nav.get_by_role("link")).to_have_count(1)
        expect(nav.get_by_role("link", name="Check-in")).to_be_visible()
        expect(page.locator("main")).not_to_contain_text("Organ Recital")
        page.get_by_role("button", name="String Quartet").click()
        expect(page.locator("h1")).to_have_text("String Quartet")
        expect(page.locator(".door-placeholder")).to_contain_text("Check-in comes with tickets")
        fits_the_screen(page)
        shoot(page, "door", viewport)
        assert page.goto(f"{base_url}/admin/o/doors/").status == 403
        assert page.goto(f"{base_url}/admin/o/doors/events/{other.slug}/door").status == 404
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_setting_up_two_factor_sign_in(live, browser):
    import pyotp
    from playwright.sync_api import expect

    _, base_url = live
    user = make_user("careful@example.com")
    add_member(user, make_organiser("careful"), Role.MANAGER)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "careful@example.com")
        page.get_by_role("link", name="careful@example.com").click()
        expect(page.locator("h1")).to_have_text("Your account")
        shoot(page, "account", DESKTOP)
        page.get_by_role("button", name="Set up two-factor sign-in").click()
        expect(page.locator(".qr-code svg")).to_be_visible()
        secret = page.locator(".totp-secret").text_content().strip()
        assert secret == reload_user(user.id).totp_secret
        page.get_by_label("Six-digit code from your app").fill(pyotp.TOTP(secret).now())
        shoot(page, "two-factor-setup", DESKTOP)
        page.get_by_role("button", name="Confirm and turn on").click()
        expect(page.locator("h1")).to_have_text("Your recovery codes")
        expect(page.locator(".recovery-codes li")).to_have_count(10)
        shoot(page, "recovery-codes", DESKTOP)
        assert reload_user(user.id).two_factor_enabled
        assert_no_script_trouble(watch)
    finally:
        context.close()
