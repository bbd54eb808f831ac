"""Strict parsing of what a request brings: numbers, ids, tokens, redirect targets, text.

Python and Werkzeug are generous where a shop must not be: ``str.isdigit()`` and
``int()`` take "²", "١" or "１" as digits, and Werkzeug's ``<int:…>`` converter matches
any Unicode digit. Here a number is ASCII digits only, an id fits the database's
column, and a redirect target is a plain path on this site. Anything else is refused
by the caller before anything changes.
"""

from __future__ import annotations

import re
import unicodedata

import email_validator
from flask import Flask
from werkzeug.routing import BaseConverter, ValidationError

# Ids are Integer columns: int4 on PostgreSQL. A larger id names nothing we hold.
MAX_DB_ID = 2**31 - 1

_ASCII_DIGITS = re.compile(r"[0-9]+")
# What a local redirect target may contain: a path (and query) of printable ASCII,
# without the backslash browsers treat as a slash and without any whitespace or
# control character (browsers drop tabs and newlines, so "/\t/evil" becomes "//evil").
_LOCAL_TARGET = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
MAX_TARGET_LENGTH = 2000
# Stripe's ids: a prefix, an underscore, base-62 characters (``cs_test_a1…``, ``evt_…``);
# our columns hold 255 characters.
_STRIPE_ID = re.compile(r"[a-z]+_[A-Za-z0-9_]{1,250}")


def is_ascii_digits(raw: str | None) -> bool:
    """True for a non-empty string of the digits 0-9 and nothing else."""
    return raw is not None and _ASCII_DIGITS.fullmatch(raw) is not None


def ascii_int(raw: str | None, *, max_digits: int) -> int | None:
    """``raw`` as a non-negative int if it is 1..``max_digits`` ASCII digits, else None."""
    if raw is None or len(raw) > max_digits or not is_ascii_digits(raw):
        return None
    return int(raw)


def db_id(raw: str | None) -> int | None:
    """An id as the database can hold it (1..``MAX_DB_ID``), else None."""
    value = ascii_int(raw, max_digits=len(str(MAX_DB_ID)))
    return value if value is not None and 1 <= value <= MAX_DB_ID else None


def stripe_id(raw: object, prefix: str = "") -> str | None:
    """``raw`` if it is a string shaped like a Stripe id (starting with ``prefix``), else None."""
    if not isinstance(raw, str) or not raw.startswith(prefix) or not _STRIPE_ID.fullmatch(raw):
        return None
    return raw


def local_redirect_target(raw: str | None) -> str | None:
    """``raw`` if it is a safe place on this site to send the browser back to (a path
    starting with one ``/``, printable ASCII only), else None: the caller uses its
    default. The one function that decides this."""
    if not raw or len(raw) > MAX_TARGET_LENGTH or not _LOCAL_TARGET.fullmatch(raw):
        return None
    return raw


def plain_email(raw: str | None) -> str | None:
    """One plain address (``name@example.com``) in its ASCII form, else None.

    Nothing else: no display name (``x <evil@attacker.example>``), no list
    (``a@example.com,root``), no quoting, no IP literal, no non-ASCII mailbox name
    (few mail servers deliver it). The domain is not looked up (no DNS here).
    """
    if not raw:
        return None
    try:
        checked = email_validator.validate_email(
            raw, check_deliverability=False, allow_smtputf8=False, allow_display_name=False
        )
    except email_validator.EmailNotValidError:
        return None
    return checked.ascii_email


def has_control_characters(text: str) -> bool:
    """True if ``text`` holds a control character (NUL, CR, LF, tab, DEL, C1…): nothing
    a person types into a name field, and NUL is refused by PostgreSQL."""
    return any(unicodedata.category(char) == "Cc" for char in text)


# --- URL converters -------------------------------------------------------------------------------


class IdConverter(BaseConverter):
    """``<id:name>``: ASCII digits naming a row id the database can hold; anything else
    does not match the route (404)."""

    regex = r"[0-9]{1,10}"
    part_isolating = True

    def to_python(self, value: str) -> int:
        parsed = db_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: int) -> str:
        return str(int(value))


class TokenConverter(BaseConverter):
    """``<token:name>``: a URL-safe random token (``secrets.token_urlsafe``), at most 64 characters."""

    regex = r"[A-Za-z0-9_-]{1,64}"
    part_isolating = True


class SlugConverter(BaseConverter):
    """``<slug:name>``: an event's slug (letters, digits, ``-`` and ``_``), at most 120 characters."""

    regex = r"[A-Za-z0-9_-]{1,120}"
    part_isolating = True


def init_app(app: Flask) -> None:
    app.url_map.converters.update(id=IdConverter, token=TokenConverter, slug=SlugConverter)
