"""Two-factor sign-in: TOTP codes from an authenticator app, and single-use recovery codes.

Invariants kept here:

* A secret is only used for signing in once a first code from the app confirmed it
  (``confirm``); until then the account signs in with its password alone.
* A TOTP code is accepted for the current 30-second step and one step either side (clock
  drift), and each step only once: ``users.totp_last_step`` moves forward with a guarded
  UPDATE, so a code seen over someone's shoulder (or replayed) does not work again.
* Ten recovery codes are made when two-factor sign-in is turned on (and on demand),
  shown once, stored as digests; each works once (guarded UPDATE of ``used_at``).
* Two-factor sign-in cannot be turned off while an organiser of the account requires it.

Each public function owns its transaction and writes its audit entry inside it.
"""

from __future__ import annotations

import time

import pyotp
import segno
from sqlalchemy import delete, select, update

from . import audit, passwords, tokens
from .audit import Actor
from .database import write_transaction
from .extensions import db
from .models import Organiser, utcnow
from .staff_errors import TwoFactorAlreadyOn, TwoFactorNotStarted, TwoFactorRequired, WrongCode, WrongPassword
from .staff_models import Membership, RecoveryCode, User

ISSUER = "Storefront"
RECOVERY_CODE_COUNT = 10
# Steps either side of now that are still accepted (30 s each).
VALID_WINDOW = 1


def provisioning_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG (no image request: the strict CSP stays)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#1b1b1b", light="#ffffff", omitsize=True)


def required_by(user_id: int) -> Organiser | None:
    """An organiser of the user's that requires two-factor sign-in, if any."""
    return db.session.execute(
        select(Organiser)
        .join(Membership, Membership.organiser_id == Organiser.id)
        .where(Membership.user_id == user_id, Organiser.require_two_factor.is_(True))
        .order_by(Organiser.id)
        .limit(1)
    ).scalar_one_or_none()


def must_enrol(user: User) -> bool:
    """The user has no second factor but an organiser of theirs requires one."""
    return not user.two_factor_enabled and required_by(user.id) is not None


def start(user_id: int, actor: Actor) -> None:
    """A new secret for the app to scan; not used for signing in until confirmed."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if user.two_factor_enabled:
            raise TwoFactorAlreadyOn()
        user.totp_secret = pyotp.random_base32()
        user.totp_last_step = None
        user.updated_at = utcnow()
        audit.record(actor, "two_factor_setup_started", "user", user.id)


def confirm(user_id: int, code: str, actor: Actor) -> list[str]:
    """Turn two-factor sign-in on with a first code from the app; the new recovery codes."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if user.two_factor_enabled:
            raise TwoFactorAlreadyOn()
        if not user.totp_secret:
            raise TwoFactorNotStarted()
        step = _matching_step(user, code)
        if step is None:
            raise WrongCode()
        user.totp_last_step = step
        user.two_factor_enabled = True
        user.updated_at = utcnow()
        codes = _replace_recovery_codes(user.id)
        audit.record(actor, "two_factor_enabled", "user", user.id)
    return codes


def disable(user_id: int, password: str, actor: Actor) -> None:
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if not passwords.verify(user.password_hash, password):
            raise WrongPassword()
        organiser = required_by(user.id)
        if organiser is not None:
            raise TwoFactorRequired(organiser.name)
        user.two_factor_enabled = False
        user.totp_secret = None
        user.totp_last_step = None
        user.updated_at = utcnow()
        db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        audit.record(actor, "two_factor_disabled", "user", user.id)


def new_recovery_codes(user_id: int, password: str, actor: Actor) -> list[str]:
    """Ten fresh recovery codes; the old ones stop working."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if not passwords.verify(user.password_hash, password):
            raise WrongPassword()
        if not user.two_factor_enabled:
            raise TwoFactorNotStarted()
        codes = _replace_recovery_codes(user.id)
        audit.record(actor, "recovery_codes_replaced", "user", user.id)
    return codes


def _replace_recovery_codes(user_id: int) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [tokens.new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user_id, code_hash=tokens.digest(code)) for code in codes)
    return codes


def unused_recovery_codes(user_id: int) -> int:
    return len(
        db.session.execute(
            select(RecoveryCode.id).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        ).all()
    )


def _matching_step(user: User, code: str, now: float | None = None) -> int | None:
    """The time step whose code this is, if it is within the window and newer than the last one used."""
    code = "".join(code.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now if now is not None else time.time())
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue
        if pyotp.utils.strings_equal(code, totp.generate_otp(step)):
            return step
    return None


def verify_second_factor(user_id: int, code: str, actor: Actor) -> str | None:
    """Check a code given at sign-in: a TOTP code, or else a recovery code (used up).
    Returns "totp" or "recovery_code" when it is good; None (audited) when not."""
    user = db.session.get(User, user_id)
    if user is None or not user.two_factor_enabled:
        return None
    step = _matching_step(user, code)
    if step is not None:
        with write_transaction():
            taken = db.session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    (User.totp_last_step.is_(None)) | (User.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
        if taken == 1:
            return "totp"
    elif _use_recovery_code(user_id, code):
        return "recovery_code"
    with write_transaction():
        audit.record(actor, "two_factor_failed", "user", user_id)
    return None


def _use_recovery_code(user_id: int, raw: str) -> bool:
    digest = tokens.digest(tokens.normalise_recovery_code(raw))
    with write_transaction():
        used = db.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == digest,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
    return used == 1
