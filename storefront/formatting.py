"""Money and dates as a buyer reads them: Babel, the buyer's locale, the event's
currency and timezone."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time, get_timezone_location
from babel.numbers import format_currency
from flask import Flask
from flask_babel import get_locale


def money(cents: int, currency: str) -> str:
    """Integer cents to "€12.50" / "12,50 €" for the buyer's locale."""
    return format_currency(Decimal(cents) / 100, currency.upper(), locale=get_locale())


def event_time(when: datetime, tz: str, style: str = "long") -> str:
    """A UTC instant shown in the event's own timezone, with the zone named:
    "Sunday, December 13, 2026 · 9:00 PM Central European Standard Time", or in
    short "Dec 13, 2026 · 9:00 PM · Paris"."""
    local = when.astimezone(ZoneInfo(tz))
    locale = get_locale()
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
