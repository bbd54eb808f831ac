"""A buyer's tickets: the QR codes on the order and success pages, the PDF and the calendar
file, read back with the tools a person's phone or printer would use (the QR decoded from
pixels, the PDF's text, the calendar parsed). SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from storefront import ticket_qr
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, OrderStatus, Ticket, TicketStatus
from storefront.tickets import format_ticket_code

from .factories import make_event, make_order, reload_order
from .ticket_support import NAMES, calendar_event, decode_qr_png, pdf_pages


def paris_event(**fields) -> Event:
    """Saturday 13 March 2027, 20:30 in Paris (19:30 UTC), at a venue with a non-ASCII name."""
    event = make_event(title="Nuit de l’Orgue", ticket_types=[{"name": "Parterre", "price_minor": 3500}], **fields)
    with write_transaction():
        db.session.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(starts_at=datetime(2027, 3, 13, 19, 30, tzinfo=UTC), venue="Église Saint-Eustache, Paris")
        )
    db.session.rollback()
    return db.session.get(Event, event.id)


def test_a_tickets_qr_code_reads_back_as_its_secret():
    secret = "kP3_x-" + "A" * 26
    assert decode_qr_png(ticket_qr.qr_png(secret)) == [secret]
    svg = str(ticket_qr.qr_svg(secret))
    assert svg.startswith("<svg") and "<script" not in svg and "http" not in svg.replace("http://www.w3.org", "")


def test_the_order_page_shows_a_qr_code_per_valid_ticket_with_its_attendee_type_and_code(client):
    event = paris_event()
    order = make_order(event, NAMES)
    with write_transaction():
        db.session.execute(
            update(Ticket).where(Ticket.id == order.tickets[2].id).values(status=TicketStatus.VOID.value)
        )
    order = reload_order(order.id)
    page = client.get(f"/orders/{order.access_token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    cards = re.findall(r'<section class="ticket-card ticket-card-(\w+)".*?</section>', html, re.S)
    assert cards == ["valid", "valid", "void"]
    assert html.count("<svg") == 2  # none for the void ticket
    for ticket in order.tickets:
        assert f"{ticket.attendee_first_name} {ticket.attendee_last_name}" in html
        assert format_ticket_code(ticket.code) in html
    assert html.count("Parterre") >= 3
    assert "Refunded: this ticket is no longer valid." in html
    # The page never prints a secret as text: only the QR code carries it.
    for ticket in order.tickets:
        assert ticket.secret not in html
    assert page.headers["Cache-Control"] == "no-store"


def test_the_pdf_has_a_page_per_ticket_with_everything_the_door_and_the_attendee_need(client):
    event = paris_event()
    order = make_order(event, NAMES)
    answer = client.get(f"/orders/{order.access_token}/tickets.pdf")
    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="tickets-{order.code}.pdf"'
    assert answer.headers["Cache-Control"] == "no-store"
    pages = pdf_pages(answer.data)
    assert len(pages) == 3
    for (text, codes), ticket in zip(pages, order.tickets, strict=True):
        flat = " ".join(text.split())
        assert ticket.attendee_first_name in flat and ticket.attendee_last_name in flat
        assert "Nuit de l’Orgue" in flat and "Église Saint-Eustache, Paris" in flat
        # 19:30 UTC is 20:30 in Paris, in winter time: the zone is named.
        assert "Saturday, March 13, 2027" in flat and "8:30" in flat and "Central European Standard Time" in flat
        assert "Parterre" in flat and order.code in flat and format_ticket_code(ticket.code) in flat
        assert "Test Organiser" in flat
        assert codes == [ticket.secret]


def test_a_void_tickets_pdf_page_says_so_and_carries_no_qr_code(client):
    order = make_order(
        paris_event(), [("Ada", "Lovelace")], status=OrderStatus.REFUNDED.value, ticket_status=TicketStatus.VOID.value
    )
    [(text, codes)] = pdf_pages(client.get(f"/orders/{order.access_token}/tickets.pdf").data)
    assert codes == [] and "VOID" in text


def test_the_calendar_file_has_the_event_in_its_own_timezone(client):
    event = paris_event()
    order = make_order(event, [("Ada", "Lovelace")])
    answer = client.get(f"/orders/{order.access_token}/event.ics")
    assert answer.status_code == 200 and answer.mimetype == "text/calendar"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="event.ics"'
    raw = answer.get_data(as_text=True)
    assert "DTSTART;TZID=Europe/Paris:20270313T203000" in raw
    calendar, entry = calendar_event(answer.data)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    start = entry.decoded("DTSTART")
    assert start == datetime(2027, 3, 13, 19, 30, tzinfo=UTC) and str(start.tzinfo) == "Europe/Paris"
    assert str(entry["SUMMARY"]) == "Nuit de l’Orgue"
    assert str(entry["LOCATION"]) == "Église Saint-Eustache, Paris"
    assert order.code in str(entry["DESCRIPTION"])
    # Calendars get shared: no order link (it opens the tickets) and no ticket code in it.
    assert order.access_token not in raw and order.tickets[0].code not in raw
    assert str(entry["UID"]) == f"event-{event.id}@127.0.0.1"


@pytest.mark.parametrize("path", ["", "/tickets.pdf", "/event.ics"])
def test_another_token_finds_no_order(client, path):
    make_order(paris_event())
    assert client.get(f"/orders/{'x' * 43}{path}").status_code == 404


@pytest.mark.app_config(LIMIT_TICKET_DOWNLOADS="20 per minute")
def test_forty_fast_downloads_get_twenty_pdfs_and_then_429(client):
    order = make_order(paris_event())
    answers = [client.get(f"/orders/{order.access_token}/tickets.pdf") for _ in range(40)]
    assert [a.status_code for a in answers] == [200] * 20 + [429] * 20
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert "Too many requests" in answers[-1].get_data(as_text=True)
    # The order page itself is not limited, and another client still downloads.
    assert client.get(f"/orders/{order.access_token}").status_code == 200
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert other.get(f"/orders/{order.access_token}/tickets.pdf").status_code == 200


def test_an_event_starting_in_summer_time_is_named_so(client):
    event = paris_event()
    with write_transaction():
        db.session.execute(
            update(Event).where(Event.id == event.id).values(starts_at=datetime(2027, 7, 1, 18, 0, tzinfo=UTC))
        )
    order = make_order(event)
    [(text, _codes)] = pdf_pages(client.get(f"/orders/{order.access_token}/tickets.pdf").data)
    assert "8:00" in text and "Central European Summer Time" in " ".join(text.split())
    raw = client.get(f"/orders/{order.access_token}/event.ics").get_data(as_text=True)
    assert "DTSTART;TZID=Europe/Paris:20270701T200000" in raw


def test_the_event_page_draws_no_qr_code(client):
    event = paris_event()
    make_order(event, [("Ada", "Lovelace")])
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "<svg" not in page.split("</header>", 1)[1]
