"""The order confirmation a buyer gets: parsed back as a mail client would, both parts,
the tickets' PDF (its text, non-Latin names included, and its QR codes) and the calendar
file attached. SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, update

from storefront import outbox
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Order, Organiser
from storefront.tickets import format_ticket_code

from .admin_support import mail_dir, mails_to  # noqa: F401 (mail_dir: fixture)
from .checkout_support import add
from .factories import make_event, make_order, reload_order
from .jobs_support import running_jobs
from .sandbox_support import wait_until
from .ticket_support import NAMES, calendar_event, pdf_pages


def _organiser_writes_from(address: str) -> None:
    with write_transaction():
        db.session.execute(update(Organiser).where(Organiser.slug == "test-org").values(contact_email=address))


def _confirmation_due(order_id: int) -> int:
    """What fulfilment records with an order (``make_order`` makes one as it would)."""
    with write_transaction():
        return outbox.confirmation_due(order_id)


def _attachments(message) -> dict[str, tuple[str, bytes]]:
    return {part.get_filename(): (part.get_content_type(), part.get_content()) for part in message.iter_attachments()}


def test_a_free_checkout_mails_the_tickets_with_their_pdf_and_calendar_entry(app, client, mail_dir):
    event = make_event(title="Open Rehearsal", ticket_types=[{"name": "Free entry", "price_minor": 0}])
    _organiser_writes_from("hello@orchestra.example")
    add(client, event, {event.ticket_types[0].id: 3})
    form = {"email": "zoe@example.com"}
    for n, (first, last) in enumerate(NAMES, start=1):
        form[f"first-{n}"], form[f"last-{n}"] = first, last
    with running_jobs(app):  # the confirmation goes through the outbox, sent by a job
        assert client.post("/checkout", data=form).status_code == 303
        order = reload_order(db.session.execute(select(Order.id)).scalar_one())
        [message] = wait_until(lambda: mails_to(app, "zoe@example.com"), what="the confirmation")
    assert message["Subject"] == f"Your tickets for Open Rehearsal (order {order.code})"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    order_url = f"http://127.0.0.1:5000/orders/{order.access_token}"
    for part in (text, html):
        assert "Test Organiser" in part and "Open Rehearsal" in part
        assert "What to bring" in part and "printed or on your phone" in part
        assert order_url in part and "hello@orchestra.example" in part
        for ticket in order.tickets:
            assert ticket.attendee_first_name in part and ticket.attendee_last_name in part
            assert format_ticket_code(ticket.code) in part
    assert f'href="{order_url}"' in html
    # No secret in the mail's words: only the PDF's QR codes carry them.
    for ticket in order.tickets:
        assert ticket.secret not in text and ticket.secret not in html

    files = _attachments(message)
    assert set(files) == {f"tickets-{order.code}.pdf", "event.ics"}
    kind, pdf = files[f"tickets-{order.code}.pdf"]
    assert kind == "application/pdf"
    pages = pdf_pages(pdf)
    assert len(pages) == 3
    for (page_text, codes), ticket in zip(pages, order.tickets, strict=True):
        assert ticket.attendee_first_name in page_text and ticket.attendee_last_name in page_text
        assert format_ticket_code(ticket.code) in page_text and order.code in page_text
        assert codes == [ticket.secret]
    assert "李" in pages[1][0] and "小龍" in pages[1][0] and "Ἀριστοτέλης" in pages[2][0] and "Ødegård" in pages[0][0]

    kind, ics = files["event.ics"]
    assert kind == "text/calendar"
    _calendar, entry = calendar_event(ics)
    assert str(entry["SUMMARY"]) == "Open Rehearsal" and entry.decoded("DTSTART") == event.starts_at.replace(
        microsecond=0
    )


def test_a_paid_orders_mail_names_prices_and_is_sent_once(app, mail_dir):
    event = make_event(title="Harbour Jazz", currency="USD", timezone="America/New_York")
    order = make_order(event, [("Grace", "Hopper"), ("Ada", "Lovelace")], email="grace@example.com")
    mail_id = _confirmation_due(order.id)
    assert outbox.send(mail_id) == "sent"
    assert outbox.send(mail_id) == "not_mine"  # sent once
    [message] = mails_to(app, "grace@example.com")
    text = message.get_body(("plain",)).get_content()
    assert "$25.00" in text and "$50.00" in text and "Eastern" in text
    assert "Questions about the event?" not in text  # the organiser gave no address
    assert len(pdf_pages(_attachments(message)[f"tickets-{order.code}.pdf"][1])) == 2


def test_without_its_font_the_mail_goes_out_without_the_pdf(app, mail_dir, tmp_path):
    app.config["TICKET_PDF_FONT"] = str(tmp_path / "no-such-font.ttf")
    order = make_order(make_event(title="Harbour Jazz"), [("Grace", "Hopper")], email="grace@example.com")
    assert outbox.send(_confirmation_due(order.id)) == "sent"
    [message] = mails_to(app, "grace@example.com")
    assert set(_attachments(message)) == {"event.ics"}
    assert "are on your order's page" in message.get_body(("plain",)).get_content()
