"""Staff passwords: Argon2id hashes, and the policy a new password must meet.

Hashing follows OWASP's password storage cheat sheet: Argon2id with at least 19 MiB of
memory, 2 passes and 1 lane (``HASH_PARAMETERS``). A hash made with weaker parameters
is upgraded the next time its password is verified (``needs_rehash``).

The policy is OWASP ASVS 5.0 §6.2: at least 8 characters, up to 128 allowed, any
characters (spaces and emoji included), no composition rules, and refused when it is one
of the commonly used passwords of zxcvbn's frequency list (30,000 passwords from leaked
password sets, shipped offline in the ``zxcvbn`` package; 11,611 of them are 8 characters
or longer), compared without regard to case. It is also refused when it is the account's
own email address or its local part.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _

MIN_LENGTH = 8
MAX_LENGTH = 128

# OWASP's minimum for Argon2id: m=19 MiB, t=2, p=1.
HASH_PARAMETERS = {"memory_cost": 19 * 1024, "time_cost": 2, "parallelism": 1}

_hasher = PasswordHasher(**HASH_PARAMETERS)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """True when ``password`` is the one hashed (constant work either way)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """The hash was made with other parameters than today's: hash the password anew."""
    return _hasher.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_nothing(password: str) -> None:
    """Spend the time a real verification takes, for an email that has no account, so
    the answer's timing does not tell whether an account exists."""
    verify(_dummy_hash(), password)


@dataclass(frozen=True)
class PolicyViolation:
    """Why a new password is refused, in words for the person choosing it."""

    reason: str

    def message(self) -> str:
        if self.reason == "too_short":
            return _("Use at least %(num)d characters.", num=MIN_LENGTH)
        if self.reason == "too_long":
            return _("Use at most %(num)d characters.", num=MAX_LENGTH)
        if self.reason == "is_email":
            return _("Do not use your email address as your password.")
        return _(
            "This password is on a list of commonly used passwords that attackers try first. Choose another one; "
            "a few unrelated words make a strong password that is easy to remember."
        )


@cache
def _common_passwords() -> frozenset[str]:
    # Loaded on the first check only: the list is ~1.5 MB of Python and the shop never needs it.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p for p in FREQUENCY_LISTS["passwords"] if len(p) >= MIN_LENGTH)


def check_policy(password: str, email: str | None = None) -> PolicyViolation | None:
    """None when ``password`` may be used, else why not."""
    length = len(unicodedata.normalize("NFC", password))
    if length < MIN_LENGTH:
        return PolicyViolation("too_short")
    if length > MAX_LENGTH:
        return PolicyViolation("too_long")
    folded = password.casefold()
    if email:
        email = email.casefold()
        if folded in (email, email.partition("@")[0]):
            return PolicyViolation("is_email")
    if folded in _common_passwords():
        return PolicyViolation("common")
    return None
