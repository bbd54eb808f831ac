"""Staff accounts: creating them, checking a password, changing and resetting it.

Invariants kept here:

* An email is stored normalised (``normalise_email``), so one person has one account.
* Checking a password costs the same whether or not the account exists (a dummy hash is
  verified for an unknown email), and the caller gets the same answer either way.
* A password is hashed with today's parameters when it is set, and re-hashed when it is
  next verified after the parameters changed.
* Every change of password (by the user or through a reset link) gives the account a new
  ``session_version``: every session signed in before it ends (``User.get_id``).
* A reset link is good once, for ``RESET_VALID_FOR``; using one (or changing the password)
  ends every other reset link of the account.

Each public function owns its transaction and writes its audit entry inside it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update

from . import audit, languages, passwords, tokens
from .audit import Actor
from .database import write_transaction
from .extensions import db
from .models import utcnow
from .staff_errors import EmailTaken, InvalidStaffEmail, WeakPassword, WrongPassword
from .staff_models import PasswordReset, User

log = logging.getLogger(__name__)

RESET_VALID_FOR = timedelta(hours=1)


def normalise_email(raw: str | None) -> str:
    """One plain address (no display name, no list), lower-cased; else ``InvalidStaffEmail``."""
    raw = (raw or "").strip()
    if not raw or len(raw) > 254:
        raise InvalidStaffEmail()
    try:
        valid = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidStaffEmail() from None
    return valid.normalized.lower()


def new_session_version() -> str:
    return secrets.token_hex(8)


def require_acceptable_password(password: str, email: str) -> None:
    violation = passwords.check_policy(password, email)
    if violation is not None:
        raise WeakPassword(violation)


def find_by_email(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def new_user(email: str, password: str) -> User:
    """A User (not yet added to the session) with a checked, hashed password; inside a transaction."""
    require_acceptable_password(password, email)
    if db.session.execute(select(User.id).where(User.email == email)).first():
        raise EmailTaken()
    now = utcnow()
    return User(
        email=email,
        password_hash=passwords.hash_password(password),
        session_version=new_session_version(),
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )


def create_user(email: str, password: str, actor: Actor) -> User:
    """A new staff account (no organiser yet)."""
    email = normalise_email(email)
    with write_transaction():
        user = new_user(email, password)
        db.session.add(user)
        db.session.flush()
        audit.record(actor, "account_created", "user", user.id, after={"email": email})
    return user


# --- signing in -------------------------------------------------------------------------


def check_password(raw_email: str | None, password: str, client_address: str | None) -> User | None:
    """The account when ``password`` is its password, else None (also for an unknown or
    invalid email, after the same work). A failure is written to the audit log."""
    try:
        email = normalise_email(raw_email)
    except InvalidStaffEmail:
        email = None
    user = find_by_email(email) if email else None
    if user is None:
        passwords.verify_nothing(password)
        _record_failure(None, email or (raw_email or "")[:254], client_address)
        return None
    if not passwords.verify(user.password_hash, password):
        _record_failure(user, user.email, client_address)
        return None
    if passwords.needs_rehash(user.password_hash):
        with write_transaction():
            db.session.execute(
                update(User).where(User.id == user.id).values(password_hash=passwords.hash_password(password))
            )
        user = db.session.get(User, user.id)
    return user


def _record_failure(user: User | None, name: str, client_address: str | None) -> None:
    with write_transaction():
        audit.record(
            Actor(user.id if user else None, name or "?", client_address),
            "sign_in_failed",
            "user",
            user.id if user else None,
        )


def record_sign_in(user_id: int, actor: Actor, *, method: str) -> None:
    """The person is now signed in (password, and a second factor if it is on)."""
    with write_transaction():
        db.session.execute(update(User).where(User.id == user_id).values(last_sign_in_at=utcnow()))
        audit.record(actor, "signed_in", "user", user_id, after={"method": method})


def record_sign_out(user_id: int, actor: Actor) -> None:
    with write_transaction():
        audit.record(actor, "signed_out", "user", user_id)


def load_session_user(session_id: str) -> User | None:
    """The user a session's id (``User.get_id``) names, if its session version is still current."""
    user_id, _sep, version = session_id.partition(":")
    if not user_id.isascii() or not user_id.isdigit() or len(user_id) > 18 or not version:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not secrets.compare_digest(user.session_version, version):
        return None
    return user


# --- changing and resetting the password -------------------------------------------------


def change_password(user_id: int, current: str, new: str, actor: Actor) -> User:
    """Set a new password after checking the current one; every other session ends."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if not passwords.verify(user.password_hash, current):
            raise WrongPassword()
        _set_password(user, new, actor, "password_changed")
    return db.session.get(User, user_id)


def _set_password(user: User, new: str, actor: Actor, action: str) -> None:
    require_acceptable_password(new, user.email)
    now = utcnow()
    user.password_hash = passwords.hash_password(new)
    user.session_version = new_session_version()
    user.password_changed_at = now
    user.updated_at = now
    # Reset links sent before this change must not undo it.
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(actor, action, "user", user.id)


def send_password_reset(raw_email: str | None, client_address: str | None) -> None:
    """Mail a reset link if an account has this email; the caller answers the same either way.

    A failed delivery is logged and not shown: telling the person would tell whether the
    account exists."""
    try:
        email = normalise_email(raw_email)
    except InvalidStaffEmail:
        return
    user = find_by_email(email)
    if user is None:
        return
    token = tokens.new_token()
    with write_transaction():
        now = utcnow()
        db.session.add(
            PasswordReset(
                user_id=user.id, token_hash=tokens.digest(token), created_at=now, expires_at=now + RESET_VALID_FOR
            )
        )
        audit.record(Actor(user.id, user.email, client_address), "password_reset_requested", "user", user.id)
    try:
        _mail_reset_link(user.email, token)
    except Exception:
        log.exception("user %s: the password reset mail could not be sent", user.id)


def _mail_reset_link(email: str, token: str) -> None:
    from . import mail

    with force_locale(languages.of_page()):
        context = {
            "reset_url": mail.public_url("admin.reset_password", token=token),
            "valid_minutes": int(RESET_VALID_FOR.total_seconds() // 60),
        }
        message = mail.staff_message(
            to=email,
            subject=_("Reset your Storefront password"),
            text=render_template("mail/password_reset.txt", **context),
            html=render_template("mail/password_reset.html", **context),
        )
    mail.deliver(message, "password-reset")


def valid_reset(token: str) -> PasswordReset | None:
    """The reset link's row while it can still be used."""
    return tokens.usable(PasswordReset, token)


def reset_password(token: str, new: str, client_address: str | None) -> User:
    """Use a reset link: set the new password, end every session and every other link.
    The person then signs in (with their second factor, if it is on)."""
    with write_transaction():
        reset = tokens.take(PasswordReset, token)
        user = db.session.get(User, reset.user_id, with_for_update=True)
        _set_password(user, new, Actor(user.id, user.email, client_address), "password_reset")
    return db.session.get(User, reset.user_id)
