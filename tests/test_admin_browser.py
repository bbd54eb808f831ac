"""The back office in Debian's Chromium: signing in with the second factor, a viewer who
cannot edit, a door member who sees only check-in, and an owner changing a role in place.
At desktop and phone width; screenshots in tests/artifacts/admin-*.png (reviewed copies
in docs/screenshots/ with ``UPDATE_SCREENSHOTS=1``).

The real app (CSRF on) is served by werkzeug in a background thread on SQLite
(``browser_support.live_server``).
"""

from __future__ import annotations

import os
import shutil

import pytest

from storefront.extensions import db
from storefront.staff_models import Role

from .admin_support import (
    PASSWORD,
    add_member,
    link_in,
    mails_to,
    make_event_of,
    make_organiser,
    make_user,
    reload_user,
    totp_now,
)
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    ARTIFACTS,
    ROOT,
    PageWatch,
    browser,
    live,
    live_server,
)

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
        assert answer.status == 404
        expect(page.locator("h1")).to_have_text("Page not found")
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
        expect(page.get_by_label("Ticket code", exact=True)).to_be_visible()
        fits_the_screen(page)
        shoot(page, "door", viewport)
        assert page.goto(f"{base_url}/admin/o/doors/").status == 404
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


def test_an_invited_person_sets_a_password_and_joins(live, browser):
    from playwright.sync_api import expect

    app, base_url = live
    owner = make_user("owner@invite.example")
    add_member(owner, make_organiser("invites", "Harbour Nights"), Role.OWNER)
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@invite.example")
        page.goto(f"{base_url}/admin/o/invites/members")
        page.get_by_label("Email").fill("joiner@invite.example")
        page.get_by_label("Role", exact=True).select_option("box_office")
        page.get_by_role("button", name="Send the invitation").click()
        expect(page.locator(".notice-success")).to_contain_text("Invitation sent to joiner@invite.example")
        expect(page.locator("main")).to_contain_text("Pending invitations")
        [mail] = mails_to(app, "joiner@invite.example")
        path = link_in(mail, "/admin/invitations/")
        context.clear_cookies()

        page.goto(base_url + path)
        expect(page.locator("h1")).to_have_text("Join Harbour Nights")
        expect(page.locator("main")).to_contain_text("Box office")
        page.get_by_label("New password", exact=True).fill("qwerty123")
        page.get_by_label("New password again").fill("qwerty123")
        page.get_by_role("button", name="Create my account and join").click()
        expect(page.locator(".field-error")).to_contain_text("commonly used passwords")
        page.get_by_label("New password", exact=True).fill("lanterns on the pier")
        page.get_by_label("New password again").fill("lanterns on the pier")
        shoot(page, "accept-invitation", DESKTOP)
        page.get_by_role("button", name="Create my account and join").click()
        expect(page.locator(".notice-success")).to_have_text("Welcome to Harbour Nights.")
        expect(page.locator(".admin-organiser")).to_contain_text("Box office")
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_a_forgotten_password_is_reset_by_mail(live, browser):
    from playwright.sync_api import expect

    app, base_url = live
    make_user("forgetful@example.com")
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{base_url}/admin/sign-in")
        page.get_by_role("link", name="Forgot your password?").click()
        page.get_by_label("Email").fill("forgetful@example.com")
        page.get_by_role("button", name="Send the link").click()
        expect(page.locator("h1")).to_have_text("Check your mail")
        [mail] = mails_to(app, "forgetful@example.com")
        page.goto(base_url + link_in(mail, "/admin/reset-password/"))
        expect(page.locator("h1")).to_have_text("Choose a new password")
        page.get_by_label("New password", exact=True).fill("a new and long passphrase")
        page.get_by_label("New password again").fill("a new and long passphrase")
        shoot(page, "reset-password", PHONE)
        page.get_by_role("button", name="Save the new password").click()
        expect(page.locator(".notice-success")).to_contain_text("Your password is changed")
        sign_in_on_page(page, base_url, "forgetful@example.com", "a new and long passphrase")
        expect(page.locator("h1")).to_have_text("Choose an organiser")
        expect(page.locator("main")).to_contain_text("not a member of any organiser yet")
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_an_owner_changes_settings_and_reads_the_audit_log(live, browser, viewport):
    from playwright.sync_api import expect

    _, base_url = live
    owner = make_user("owner@audit.example")
    organiser = make_organiser("audited", "Audited Hall")
    make_event_of(organiser, "Winter Gala")
    add_member(owner, organiser, Role.OWNER)
    add_member(make_user("helper@audit.example"), organiser, Role.VIEWER)
    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@audit.example")
        page.locator(".admin-nav").get_by_role("link", name="Settings").click()
        page.get_by_label("Contact email for buyers").fill("not an email")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".field-error")).to_be_visible()
        page.get_by_label("Contact email for buyers").fill("hello@audited.example")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".notice-success")).to_have_text("Settings saved.")
        shoot(page, "settings", viewport)
        page.locator(".admin-nav").get_by_role("link", name="Audit log").click()
        expect(page.locator("h1")).to_have_text("Audit log")
        first_row = page.locator("table.audit tbody tr").first
        expect(first_row).to_contain_text("Settings changed")
        expect(first_row).to_contain_text("hello@audited.example")
        expect(first_row).to_contain_text("owner@audit.example")
        fits_the_screen(page)
        shoot(page, "audit", viewport)
        assert_no_script_trouble(watch)
    finally:
        context.close()
