"""Throttling guesses at the back office's door: passwords, second-factor codes, reset mails.

Counted with ``storefront.limits`` in a moving window, each attempt both per account
(the email typed, normalised, or the account waiting for its code) and per client
address, so that neither many accounts from one address nor many addresses at one
account get more tries. Wrong passwords and wrong codes count; right ones do not. Reset
mails count each time they are asked for (a mail box must not be flooded).

Once a limit is reached the request is answered 429 with ``Retry-After`` before anything
is checked: a right password then is refused too (or guessing would go on), and nothing
is written (no audit entry either). The price is that someone guessing at an account
keeps its owner out for the window; the owner can still reset the password by mail.
"""

from __future__ import annotations

import math
import time
from functools import cache

from flask import current_app, render_template
from limits import RateLimitItem, parse
from limits.errors import StorageError

from .. import accounts
from ..limits import client_key, limiter
from ..staff_errors import InvalidStaffEmail

SIGN_IN = "staff-sign-in"
CODES = "staff-code"
RESET = "staff-reset"


@cache
def _item(text: str) -> RateLimitItem:
    return parse(text)


def _account_key(raw_email: str | None) -> str:
    try:
        return accounts.normalise_email(raw_email)
    except InvalidStaffEmail:
        return (raw_email or "").strip().lower()[:254]


def _limits(kind: str, account: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
    config = current_app.config
    per_account, per_address = {
        SIGN_IN: ("LIMIT_STAFF_SIGN_IN_ACCOUNT", "LIMIT_STAFF_SIGN_IN_ADDRESS"),
        CODES: ("LIMIT_STAFF_CODES_ACCOUNT", "LIMIT_STAFF_SIGN_IN_ADDRESS"),
        RESET: ("LIMIT_STAFF_RESET_ACCOUNT", "LIMIT_STAFF_RESET_ADDRESS"),
    }[kind]
    return [
        (_item(config[per_account]), (kind, "account", account)),
        (_item(config[per_address]), (kind, "address", client_key())),
    ]


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def retry_after(kind: str, account: str) -> int | None:
    """Seconds to wait when a limit of ``kind`` is reached for this account or address, else None."""
    if not _enabled():
        return None
    strategy = limiter.limiter
    try:
        for item, keys in _limits(kind, account):
            if not strategy.test(item, *keys):
                reset, _remaining = strategy.get_window_stats(item, *keys)
                return max(1, math.ceil(reset - time.time()))
    except StorageError:
        return None
    return None


def count(kind: str, account: str) -> None:
    """One more attempt (a failed one, or a reset mail) against this account and address."""
    if not _enabled():
        return
    try:
        for item, keys in _limits(kind, account):
            limiter.limiter.hit(item, *keys)
    except StorageError:
        pass


def too_many(seconds: int):
    minutes = max(1, math.ceil(seconds / 60))
    response = current_app.make_response((render_template("admin/error.html", code=429, minutes=minutes), 429))
    response.headers["Retry-After"] = str(seconds)
    return response


def sign_in_key(raw_email: str | None) -> str:
    return _account_key(raw_email)
