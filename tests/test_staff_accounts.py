"""Staff accounts: password hashing and policy, signing in and out, sessions, password
change and reset by mail. On SQLite and PostgreSQL, the database asserted after each step."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

import argon2
import pytest
from sqlalchemy import select, update

from storefront import accounts, passwords
from storefront.admin import sessions
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.staff_errors import EmailTaken, WeakPassword
from storefront.staff_models import PasswordReset, Role, User

from .admin_support import (
    PASSWORD,
    SETUP,
    add_member,
    audit_actions,
    comparable,
    csrf_token_of,
    link_in,
    mail_dir,  # noqa: F401 (a fixture)
    mails_to,
    make_organiser,
    make_user,
    reload_user,
    sign_in,
    sign_in_as,
)

# --- passwords ------------------------------------------------------------------------------


def test_stored_hash_is_argon2id_with_at_least_owasps_parameters(app):
    user = make_user("hash@example.com")
    params = argon2.extract_parameters(user.password_hash)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert PASSWORD not in user.password_hash


def test_a_hash_with_old_parameters_is_upgraded_at_sign_in(app, client):
    user = make_user("old@example.com")
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with write_transaction():
        db.session.execute(update(User).where(User.id == user.id).values(password_hash=weak))
    assert sign_in(client, "old@example.com").status_code == 303
    upgraded = reload_user(user.id).password_hash
    assert upgraded != weak
    assert argon2.extract_parameters(upgraded).memory_cost == passwords.HASH_PARAMETERS["memory_cost"]
    assert passwords.verify(upgraded, PASSWORD)


@pytest.mark.parametrize(
    "candidate, reason",
    [
        ("short12", "too_short"),
        ("x" * 129, "too_long"),
        ("password1", "common"),
        ("Sunshine1", "common"),  # compared without regard to case
        ("iloveyou", "common"),
        ("policy@example.com", "is_email"),
        ("policy", "too_short"),
    ],
)
def test_policy_refuses_with_a_reason(candidate, reason):
    violation = passwords.check_policy(candidate, "policy@example.com")
    assert violation is not None and violation.reason == reason


@pytest.mark.parametrize(
    "candidate",
    ["eightch!", "x" * 128, "all lower case words", "12 ünïcödé ☃ ok", "policyholder-at-home"],
)
def test_policy_accepts_any_characters_without_composition_rules(candidate):
    assert passwords.check_policy(candidate, "policy@example.com") is None


def test_a_common_password_is_refused_with_a_message_saying_why(app, client):
    owner = make_user("owner@example.com")
    sign_in_as(client, owner)
    answer = client.post(
        "/admin/account/password",
        data={"current_password": PASSWORD, "password": "baseball", "confirm": "baseball"},
    )
    assert answer.status_code == 400
    assert "list of commonly used passwords" in answer.get_data(as_text=True)
    assert passwords.verify(reload_user(owner.id).password_hash, PASSWORD)


def test_email_is_normalised_and_unique(app):
    user = make_user("Mixed.Case@Example.COM")
    assert user.email == "mixed.case@example.com"
    with pytest.raises(EmailTaken):
        accounts.create_user("MIXED.case@example.com", PASSWORD, SETUP)
    with pytest.raises(WeakPassword):
        accounts.create_user("weak@example.com", "qwertyuiop", SETUP)
    assert accounts.find_by_email("weak@example.com") is None


# --- signing in -----------------------------------------------------------------------------


def test_sign_in_answers_the_same_for_a_wrong_password_and_an_unknown_email(app, client):
    make_user("known@example.com")
    wrong = sign_in(client, "known@example.com", "not the password at all")
    unknown = sign_in(client, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong email or password." in wrong.get_data(as_text=True)
    assert comparable(wrong, "known@example.com") == comparable(unknown, "nobody@example.com")
    assert audit_actions() == ["account_created", "sign_in_failed", "sign_in_failed"]


def test_unknown_email_costs_a_password_verification_too(app, client):
    make_user("timing@example.com")
    sign_in(client, "timing@example.com", "warm up the hasher")

    def timed(address):
        start = time.perf_counter()
        sign_in(client, address, "not the password at all")
        return time.perf_counter() - start

    known = min(timed("timing@example.com") for _ in range(3))
    unknown = min(timed("nobody@example.com") for _ in range(3))
    # Without the dummy verification the unknown email answers in a fraction of the time.
    assert unknown > known * 0.5, (known, unknown)


def test_sign_in_starts_a_new_session_keeping_nothing_planted(app, client):
    owner = make_user("fresh@example.com")
    add_member(owner, make_organiser("fresh"), Role.OWNER)
    with client.session_transaction() as planted:
        planted["cart"] = "an-attackers-cart-token"
        planted["csrf_token"] = "an-attackers-csrf-secret"
        planted["anything"] = "else"
    answer = sign_in(client, "fresh@example.com")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/o/fresh/"
    with client.session_transaction() as session:
        assert set(session.keys()) <= {"_user_id", "_fresh", "_id", sessions.SEEN_KEY, "_flashes"}
        assert session["_user_id"] == reload_user(owner.id).get_id()
    assert audit_actions(action="signed_in") == ["signed_in"]
    assert reload_user(owner.id).last_sign_in_at is not None


def test_sign_out_ends_the_session_and_the_cookie_no_longer_signs_in(app, client):
    owner = make_user("out@example.com")
    add_member(owner, make_organiser("out"), Role.OWNER)
    sign_in(client, "out@example.com")
    page = client.get("/admin/o/out/").get_data(as_text=True)
    answer = client.post("/admin/sign-out", data={"csrf_token": csrf_token_of(page)})
    assert answer.status_code == 303
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert client.get("/admin/o/out/").status_code == 303
    assert audit_actions(action="signed_out") == ["signed_out"]


def test_next_only_leads_inside_the_back_office(app, client):
    owner = make_user("next@example.com")
    add_member(owner, make_organiser("next"), Role.OWNER)
    for evil in (
        "https://evil.example/admin/",
        "//evil.example/admin/",
        "/\\evil.example",
        "/events/x",
        "/admin/\r\nX",
        "/admin/\tx",
    ):
        client.post("/admin/sign-out")
        answer = client.post(
            "/admin/sign-in?next=" + quote(evil, safe=""), data={"email": "next@example.com", "password": PASSWORD}
        )
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/admin/o/next/", evil
        with client.session_transaction() as session:
            session.clear()
    answer = client.post("/admin/sign-in?next=/admin/account", data={"email": "next@example.com", "password": PASSWORD})
    assert answer.headers["Location"] == "/admin/account"


def test_an_anonymous_visit_is_sent_to_sign_in_and_comes_back(app, client):
    owner = make_user("back@example.com")
    add_member(owner, make_organiser("back"), Role.OWNER)
    answer = client.get("/admin/o/back/members")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/admin/sign-in?next=")
    login = client.post(answer.headers["Location"], data={"email": "back@example.com", "password": PASSWORD})
    assert login.headers["Location"] == "/admin/o/back/members"


@pytest.mark.app_config(ADMIN_IDLE_MINUTES=30)
def test_an_idle_session_expires(app, client):
    owner = make_user("idle@example.com")
    add_member(owner, make_organiser("idle"), Role.OWNER)
    sign_in_as(client, owner)
    assert client.get("/admin/o/idle/").status_code == 200
    with client.session_transaction() as session:
        session[sessions.SEEN_KEY] = int(time.time()) - 29 * 60
    assert client.get("/admin/o/idle/").status_code == 200  # activity moves the limit on
    with client.session_transaction() as session:
        session[sessions.SEEN_KEY] = int(time.time()) - 31 * 60
    answer = client.get("/admin/o/idle/")
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/admin/sign-in")
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert client.get("/admin/o/idle/").status_code == 303


# --- changing the password --------------------------------------------------------------------


def test_password_change_signs_out_every_other_session(app):
    owner = make_user("change@example.com")
    add_member(owner, make_organiser("change"), Role.OWNER)
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, "change@example.com")
    sign_in(phone, "change@example.com")
    assert phone.get("/admin/o/change/").status_code == 200
    new = "a brand new passphrase"
    answer = laptop.post(
        "/admin/account/password", data={"current_password": PASSWORD, "password": new, "confirm": new}
    )
    assert answer.status_code == 303
    assert laptop.get("/admin/o/change/").status_code == 200  # this session goes on
    assert phone.get("/admin/o/change/").status_code == 303  # the other one ended
    assert passwords.verify(reload_user(owner.id).password_hash, new)
    assert sign_in(app.test_client(), "change@example.com").status_code == 400
    assert sign_in(app.test_client(), "change@example.com", new).status_code == 303
    assert "password_changed" in audit_actions()


def test_password_change_needs_the_current_password_and_changes_nothing_otherwise(app, client):
    owner = make_user("keep@example.com")
    sign_in_as(client, owner)
    before = reload_user(owner.id)
    answer = client.post(
        "/admin/account/password",
        data={
            "current_password": "wrong wrong wrong",
            "password": "another passphrase",
            "confirm": "another passphrase",
        },
    )
    assert answer.status_code == 400
    assert "That is not your current password." in answer.get_data(as_text=True)
    after = reload_user(owner.id)
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    mismatch = client.post(
        "/admin/account/password",
        data={"current_password": PASSWORD, "password": "another passphrase", "confirm": "other passphrase"},
    )
    assert mismatch.status_code == 400 and "The two passwords differ." in mismatch.get_data(as_text=True)
    assert reload_user(owner.id).password_hash == before.password_hash


# --- password reset by mail --------------------------------------------------------------------


def test_reset_by_mail_link_works_once_and_ends_every_session(app, client, mail_dir):
    owner = make_user("reset@example.com")
    add_member(owner, make_organiser("reset"), Role.OWNER)
    elsewhere = app.test_client()
    sign_in(elsewhere, "reset@example.com")
    answer = client.post("/admin/forgot-password", data={"email": "Reset@Example.com"})
    assert answer.status_code == 200 and "Check your mail" in answer.get_data(as_text=True)
    [mail] = mails_to(app, "reset@example.com")
    path = link_in(mail, "/admin/reset-password/")
    assert link_in(mail, "/admin/reset-password/") == path
    assert app.config["PUBLIC_BASE_URL"] in mail.get_body(("plain",)).get_content()
    token = path.rsplit("/", 1)[1]
    assert db.session.execute(select(PasswordReset.token_hash)).scalar_one() != token  # stored hashed

    assert client.get(path).status_code == 200
    weak = client.post(path, data={"password": "12345678", "confirm": "12345678"})
    assert weak.status_code == 400  # nothing used up by a refused password
    new = "reset to something new"
    done = client.post(path, data={"password": new, "confirm": new})
    assert done.status_code == 303 and done.headers["Location"] == "/admin/sign-in"
    assert passwords.verify(reload_user(owner.id).password_hash, new)
    assert elsewhere.get("/admin/o/reset/").status_code == 303  # signed out everywhere
    again = client.post(path, data={"password": "and yet another one", "confirm": "and yet another one"})
    assert again.status_code == 404
    assert client.get(path).status_code == 404
    assert passwords.verify(reload_user(owner.id).password_hash, new)
    assert audit_actions(action="password_reset") == ["password_reset"]


def test_reset_answers_the_same_for_an_unknown_email_and_mails_nobody(app, client, mail_dir):
    make_user("someone@example.com")
    known = client.post("/admin/forgot-password", data={"email": "someone@example.com"})
    unknown = client.post("/admin/forgot-password", data={"email": "nobody@example.com"})
    invalid = client.post("/admin/forgot-password", data={"email": "not an address"})
    assert known.status_code == unknown.status_code == invalid.status_code == 200
    assert comparable(known) == comparable(unknown) == comparable(invalid)
    assert len(mails_to(app, "someone@example.com")) == 1
    assert mails_to(app, "nobody@example.com") == []


def test_a_reset_link_expires_after_an_hour(app, client, mail_dir):
    owner = make_user("late@example.com")
    client.post("/admin/forgot-password", data={"email": "late@example.com"})
    path = link_in(mails_to(app, "late@example.com")[0], "/admin/reset-password/")
    db.session.rollback()
    reset = db.session.execute(select(PasswordReset)).scalar_one()
    assert reset.expires_at - reset.created_at == timedelta(hours=1)
    assert client.get(path).status_code == 200
    # Sent an hour and a second ago:
    with write_transaction():
        db.session.execute(
            update(PasswordReset).values(
                created_at=reset.created_at - timedelta(hours=1, seconds=1),
                expires_at=reset.expires_at - timedelta(hours=1, seconds=1),
            )
        )
    assert client.get(path).status_code == 404
    assert client.post(path, data={"password": "too late for this", "confirm": "too late for this"}).status_code == 404
    assert passwords.verify(reload_user(owner.id).password_hash, PASSWORD)
