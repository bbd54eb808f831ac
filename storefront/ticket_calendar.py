"""An event as a calendar entry (``.ics``, RFC 5545, written by icalendar): the buyer's
order page offers it, and the confirmation mail carries it.

The start is written in the event's own timezone (``DTSTART;TZID=Europe/Paris:…``) with
that zone's rules in a ``VTIMEZONE``, so a calendar shows the right hour wherever it is and
across a change of daylight saving time. Events have a start and no end here, so the
entry has none either (a calendar then shows it at its start). Its ``UID`` is the
event's, so adding it again (a second order, a download after the mail) updates the
one entry. It carries no ticket code and no order link: calendars are often shared.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from icalendar import Calendar
from icalendar import Event as CalendarEvent

from .links import public_url
from .models import Order

FILENAME = "event.ics"


def event_ics(order: Order) -> bytes:
    """The calendar file of ``order``'s event (its event and organiser loaded)."""
    event = order.event
    host = urlsplit(current_app.config["PUBLIC_BASE_URL"]).hostname or "localhost"
    entry = CalendarEvent()
    entry.add("uid", f"event-{event.id}@{host}")
    entry.add("dtstamp", datetime.now(UTC))
    entry.add("dtstart", event.starts_at.astimezone(ZoneInfo(event.timezone)))
    entry.add("summary", event.title)
    if event.venue:
        entry.add("location", event.venue)
    count = len(order.tickets)
    entry.add(
        "description",
        "\n".join(
            [
                _("Organised by %(name)s.", name=event.organiser.name),
                ngettext(
                    "Your order %(code)s: %(num)d ticket.",
                    "Your order %(code)s: %(num)d tickets.",
                    count,
                    code=order.code,
                ),
                _("Your tickets are in your confirmation mail."),
            ]
        ),
    )
    entry.add("url", public_url("shop.event", slug=event.slug))
    calendar = Calendar()
    calendar.add("prodid", "-//Storefront//Tickets//EN")
    calendar.add("version", "2.0")
    calendar.add_component(entry)
    calendar.add_missing_timezones()
    return calendar.to_ical()
