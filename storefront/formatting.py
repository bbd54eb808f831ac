"""Money and dates as a buyer reads them, for the buyer's locale and the event's
currency and timezone: the template filters ``money`` (``storefront.money``) and
``event_time`` (Babel); and ``ticket_code``, a ticket's code as a person reads it
(``storefront.tickets``)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time, get_timezone_location
from flask import Flask
from flask_babel import get_locale

from . import money as amounts
from .tickets import format_ticket_code

# Both filters are pure functions of their arguments and the locale, and Babel's
# formatting is slow next to the rest of a page: every page shows the same few
# prices and dates, so the answers are memoized (bounded) per locale.
_MEMO_SIZE = 4096


def money(amount_minor: int, currency: str) -> str:
    """An amount in minor units to "€12.50" / "12,50 €" / "¥12,000" for the buyer's locale."""
    return _money(amount_minor, currency, get_locale())


@lru_cache(maxsize=_MEMO_SIZE)
def _money(amount_minor: int, currency: str, locale) -> str:
    return amounts.format_amount(amount_minor, currency, locale)


def event_time(when: datetime, tz: str, style: str = "long") -> str:
    """A UTC instant shown in the event's own timezone, with the zone named:
    "Sunday, December 13, 2026 · 9:00 PM Central European Standard Time", or in
    short "Dec 13, 2026 · 9:00 PM · Paris"."""
    return _event_time(when, tz, style, get_locale())


@lru_cache(maxsize=_MEMO_SIZE)
def _event_time(when: datetime, tz: str, style: str, locale) -> str:
    local = when.astimezone(ZoneInfo(tz))
    if style == "clock":
        # The time of day alone ("9:05 PM"), where the page names the zone once.
        return format_time(local, "short", locale=locale)
    if style == "short":
        # Offsets like "+0100" say little; the zone's city ("Paris", "New York") says where.
        date = format_date(local, "medium", locale=locale)
        zone = "· " + get_timezone_location(local.tzinfo, locale=locale, return_city=True)
    else:
        date = format_date(local, "full", locale=locale)
        zone = format_datetime(local, "zzzz", locale=locale)
    return f"{date} · {format_time(local, 'short', locale=locale)} {zone}"


def init_app(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(event_time, "event_time")
    app.add_template_filter(format_ticket_code, "ticket_code")
