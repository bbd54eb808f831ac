"""Two-factor sign-in: enrolment confirmed by a first code, codes good once, recovery
codes, and an organiser requiring it of its members."""

from __future__ import annotations

import json
import re

import pyotp
from sqlalchemy import select

from storefront import tokens, two_factor
from storefront.admin import sessions
from storefront.extensions import db
from storefront.staff_models import RecoveryCode, Role

from .admin_support import (
    PASSWORD,
    SETUP,
    add_member,
    audit_actions,
    audit_entries,
    csrf_token_of,
    enable_two_factor,
    make_organiser,
    make_user,
    reload_user,
    sign_in,
    sign_in_as,
    totp_now,
)


def test_enrolment_shows_a_qr_code_and_turns_on_only_with_a_right_code(app, client):
    user = make_user("enrol@example.com")
    sign_in_as(client, user)
    assert client.post("/admin/account/two-factor/start").status_code == 303
    page = client.get("/admin/account/two-factor").get_data(as_text=True)
    assert "<svg" in page and "<img" not in page  # inline SVG: nothing for the CSP to load
    secret = reload_user(user.id).totp_secret
    assert secret and secret in page
    assert not reload_user(user.id).two_factor_enabled

    wrong = client.post("/admin/account/two-factor", data={"code": "000000"})
    assert wrong.status_code == 400
    assert not reload_user(user.id).two_factor_enabled

    done = client.post("/admin/account/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    assert done.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code>", done.get_data(as_text=True))
    assert len(set(codes)) == 10
    assert reload_user(user.id).two_factor_enabled
    stored = set(db.session.execute(select(RecoveryCode.code_hash)).scalars())
    assert stored == {tokens.digest(code) for code in codes}  # only digests are kept
    assert audit_actions(action="two_factor_enabled") == ["two_factor_enabled"]


def test_sign_in_with_two_factor_asks_for_a_code_before_the_session_is_signed_in(app, client):
    user = make_user("tf@example.com", two_factor=True)
    add_member(user, make_organiser("tf"), Role.OWNER)
    step_one = sign_in(client, "tf@example.com")
    assert step_one.status_code == 303 and step_one.headers["Location"].startswith("/admin/sign-in/second-factor")
    with client.session_transaction() as session:
        assert "_user_id" not in session and sessions.PENDING_KEY in session
    assert client.get("/admin/o/tf/").status_code == 303  # not signed in yet

    assert client.post("/admin/sign-in/second-factor", data={"code": "123456"}).status_code == 400
    user = reload_user(user.id)
    good = client.post("/admin/sign-in/second-factor", data={"code": totp_now(user, 1)})
    assert good.status_code == 303 and good.headers["Location"] == "/admin/o/tf/"
    assert client.get("/admin/o/tf/").status_code == 200
    with client.session_transaction() as session:
        assert sessions.PENDING_KEY not in session
    assert audit_actions(action="two_factor_failed") == ["two_factor_failed"]


def test_a_totp_code_works_once(app):
    user = make_user("once@example.com", two_factor=True)
    user = reload_user(user.id)
    code = totp_now(user, 1)  # the next step's code: not used by the enrolment
    assert two_factor.verify_second_factor(user.id, code, SETUP) == "totp"
    assert two_factor.verify_second_factor(user.id, code, SETUP) is None
    # An older step's code is refused too, once a newer one was used.
    assert two_factor.verify_second_factor(user.id, totp_now(user, -1), SETUP) is None


def test_a_recovery_code_signs_in_once(app, client):
    user = make_user("lost-phone@example.com")
    codes = enable_two_factor(user.id)
    add_member(user, make_organiser("lost"), Role.OWNER)
    sign_in(client, "lost-phone@example.com")
    typed = codes[3].upper().replace("-", " ")  # as a person might type it off paper
    answer = client.post("/admin/sign-in/second-factor", data={"code": typed})
    assert answer.status_code == 303
    assert two_factor.unused_recovery_codes(user.id) == 9
    other = app.test_client()
    sign_in(other, "lost-phone@example.com")
    assert other.post("/admin/sign-in/second-factor", data={"code": codes[3]}).status_code == 400
    [signed_in] = audit_entries(action="signed_in")
    assert json.loads(signed_in.after) == {"method": "password+recovery_code"}


def test_the_pending_step_lapses(app, client):
    user = make_user("slow@example.com", two_factor=True)
    sign_in(client, "slow@example.com")
    with client.session_transaction() as session:
        session[sessions.PENDING_KEY] = {**session[sessions.PENDING_KEY], "at": 0}
    answer = client.post("/admin/sign-in/second-factor", data={"code": totp_now(reload_user(user.id), 1)})
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/admin/sign-in")
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_new_recovery_codes_replace_the_old_ones(app, client):
    user = make_user("again@example.com")
    old = enable_two_factor(user.id)
    sign_in_as(client, user)
    wrong = client.post("/admin/account/recovery-codes", data={"current_password": "not it at all"})
    assert wrong.status_code == 400
    answer = client.post("/admin/account/recovery-codes", data={"current_password": PASSWORD})
    new = re.findall(r"<code>([a-z2-9-]{19})</code>", answer.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    stored = set(db.session.execute(select(RecoveryCode.code_hash)).scalars())
    assert stored == {tokens.digest(code) for code in new}


def test_disabling_needs_the_password(app, client):
    user = make_user("off@example.com", two_factor=True)
    sign_in_as(client, user)
    assert client.post("/admin/account/two-factor/disable", data={"current_password": "nope nope"}).status_code == 400
    assert reload_user(user.id).two_factor_enabled
    assert client.post("/admin/account/two-factor/disable", data={"current_password": PASSWORD}).status_code == 303
    after = reload_user(user.id)
    assert not after.two_factor_enabled and after.totp_secret is None
    assert two_factor.unused_recovery_codes(user.id) == 0


def test_an_organiser_requiring_two_factor_sends_members_to_enrol_first(app, client):
    owner = make_user("boss@example.com", two_factor=True)
    member = make_user("member@example.com")
    organiser = make_organiser("strict")
    add_member(owner, organiser, Role.OWNER)
    add_member(member, organiser, Role.VIEWER)
    boss = app.test_client()
    sign_in_as(boss, owner)
    page = boss.get("/admin/o/strict/settings").get_data(as_text=True)
    saved = boss.post(
        "/admin/o/strict/settings",
        data={"require_two_factor": "y", "contact_email": "", "csrf_token": csrf_token_of(page)},
    )
    assert saved.status_code == 303

    sign_in_as(client, member)
    answer = client.get("/admin/o/strict/")
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/account/two-factor"
    assert client.get("/admin/").headers["Location"] == "/admin/account/two-factor"
    assert client.get("/admin/account").status_code == 200  # the way to enrol stays open
    # It cannot be turned off while required.
    enable_two_factor(member.id)
    assert client.get("/admin/o/strict/").status_code == 200
    refused = client.post("/admin/account/two-factor/disable", data={"current_password": PASSWORD})
    assert refused.status_code == 409 and "requires two-factor sign-in" in refused.get_data(as_text=True)
    assert reload_user(member.id).two_factor_enabled


def test_an_owner_without_two_factor_cannot_require_it(app, client):
    owner = make_user("lax@example.com")
    organiser = make_organiser("lax")
    add_member(owner, organiser, Role.OWNER)
    sign_in_as(client, owner)
    answer = client.post("/admin/o/lax/settings", data={"require_two_factor": "y"})
    assert answer.status_code == 409
    assert "Turn on two-factor sign-in for your own account first" in answer.get_data(as_text=True)
    db.session.rollback()
    assert not db.session.get(type(organiser), organiser.id).require_two_factor
