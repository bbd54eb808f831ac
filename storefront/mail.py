"""Mail to buyers: build the messages and deliver them. (Staff mail, sent as soon as it
is asked for, uses ``staff_message`` and ``deliver``.)

Two messages: the order confirmation (after fulfilment made an order; the tickets' PDF
and the event's calendar entry attached) and, when fulfilment had to refund a late
payment because the stock was gone, a short notice that the payment is refunded. And,
sent when a buyer asks ("Lost your tickets?"), the links to every order of an address.
When the first two are due, and that each goes out once, is ``storefront.outbox``'s
business: a row per mail, sent by a job (``storefront.jobs``), which calls the builders
here and ``deliver``.

Delivery: without ``MAIL_SERVER`` each message is written to ``MAIL_OUTBOX``
(``instance/outbox/<timestamp>-<name>.eml``, through a temporary file and a rename,
so a reader never sees half a message); with it, by SMTP.

Mails to buyers are written in the language of their checkout (``Order.locale``, copied
from ``PaymentAttempt.locale``), not the request's: a webhook's request carries Stripe's
Accept-Language, and a job has no request at all.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from flask import current_app, render_template
from flask_babel import force_locale, gettext
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from . import parsing, ticket_calendar, ticket_pdf
from .extensions import db
from .links import public_url
from .models import CancellationOrder, Event, Order, OrderStatus, PaymentAttempt, Refund, Ticket, TicketType

log = logging.getLogger(__name__)

# Which orders get a confirmation.
CONFIRMED_STATUSES = (OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)


# --- building the messages ----------------------------------------------------------------------


def build_order_confirmation(order_id: int) -> tuple[EmailMessage, str]:
    """The order's confirmation, ready for ``deliver``, and its name in the outbox folder
    (sent by ``storefront.outbox``, which gives it the outbox row's Message-ID)."""
    return _order_confirmation(order_id)


def build_refund_notice(attempt_id: int) -> tuple[EmailMessage, str]:
    """The late payment's refund notice; see ``build_order_confirmation``."""
    return _refund_notice(attempt_id)


def build_event_cancelled(order_id: int) -> tuple[EmailMessage, str]:
    """The order's event is cancelled and what it paid is refunded; see ``build_order_confirmation``."""
    db.session.rollback()
    order = db.session.get(Order, order_id)
    event = db.session.get(Event, order.event_id)
    refund_minor = db.session.execute(
        select(Refund.amount_minor)
        .join(CancellationOrder, CancellationOrder.refund_id == Refund.id)
        .where(CancellationOrder.order_id == order.id)
    ).scalar_one_or_none()
    with force_locale(order.locale):
        # What this cancellation refunds: all of it, or what an earlier partial refund left.
        context = {
            "order": order,
            "event": event,
            "refund_minor": refund_minor,
            "events_url": public_url("shop.events"),
        }
        message = _message(
            to=order.buyer_email,
            subject=gettext("%(title)s is cancelled", title=event.title),
            text=render_template("mail/event_cancelled.txt", **context),
            html=render_template("mail/event_cancelled.html", **context),
        )
    return message, f"event-cancelled-order{order.id}"


def _order_confirmation(order_id: int) -> tuple[EmailMessage, str]:
    """The confirmation: the organiser, the event, each ticket with its code, what to bring,
    the order's link; the tickets' PDF and the event's calendar entry attached."""
    db.session.rollback()  # read what is committed now
    order = db.session.execute(
        select(Order)
        .where(Order.id == order_id)
        .options(
            selectinload(Order.tickets).selectinload(Ticket.ticket_type),
            selectinload(Order.event).selectinload(Event.organiser),
        )
    ).scalar_one()
    with force_locale(order.locale):
        pdf = _tickets_pdf(order)
        context = {
            "order": order,
            "event": order.event,
            "organiser": order.event.organiser,
            "order_url": public_url("shop.order", token=order.access_token),
            "pdf_name": ticket_pdf.filename(order) if pdf is not None else None,
        }
        message = _message(
            to=order.buyer_email,
            subject=gettext("Your tickets for %(title)s (order %(code)s)", title=order.event.title, code=order.code),
            text=render_template("mail/order_confirmation.txt", **context),
            html=render_template("mail/order_confirmation.html", **context),
        )
        if pdf is not None:
            message.add_attachment(pdf, maintype="application", subtype="pdf", filename=ticket_pdf.filename(order))
        message.add_attachment(
            ticket_calendar.event_ics(order), maintype="text", subtype="calendar", filename=ticket_calendar.FILENAME
        )
    message["X-Storefront-Order"] = order.code
    return message, order.code


def _tickets_pdf(order: Order) -> bytes | None:
    """The tickets' PDF, or None if it cannot be made (a font missing): the mail goes out
    without it rather than not at all, as the order's link shows the same QR codes."""
    try:
        return ticket_pdf.order_pdf(order)
    except Exception:
        log.exception("order %s: its tickets' PDF could not be made; the mail goes without it", order.code)
        return None


def send_order_links(address: str, locale: str | None = None) -> bool:
    """Mail ``address`` (lower case) a link to each of its orders ("Lost your tickets?"),
    in ``locale`` (the language of the page that asked; default: the newest order's).
    Nothing is sent to an address without orders. True when a mail was sent; raises if
    delivery fails (the caller logs it: the buyer can ask again)."""
    db.session.rollback()
    orders = list(
        db.session.execute(
            select(Order)
            .where(func.lower(Order.buyer_email) == address)
            .options(selectinload(Order.event))
            .order_by(Order.created_at.desc(), Order.id.desc())
        ).scalars()
    )
    if not orders:
        log.info("lost tickets: no orders for the address asked about; nothing sent")
        return False
    with force_locale(locale or orders[0].locale):
        context = {
            "orders": orders,
            "links": {order.id: public_url("shop.order", token=order.access_token) for order in orders},
            "lost_url": public_url("shop.lost_tickets"),
        }
        message = _message(
            to=orders[0].buyer_email,
            subject=gettext("Your orders at %(shop)s", shop=_shop_name()),
            text=render_template("mail/order_links.txt", **context),
            html=render_template("mail/order_links.html", **context),
        )
    deliver(message, f"order-links-{orders[0].code}")
    log.info("lost tickets: links to %d orders sent", len(orders))
    return True


def _shop_name() -> str:
    return parseaddr(current_app.config["MAIL_FROM"])[0] or "Storefront"


def _refund_notice(attempt_id: int) -> tuple[EmailMessage, str]:
    import json

    db.session.rollback()
    attempt = db.session.get(PaymentAttempt, attempt_id)
    lines = json.loads(attempt.lines)
    types = {
        tt.id: tt
        for tt in db.session.execute(
            select(TicketType).where(TicketType.id.in_([line["ticket_type_id"] for line in lines]))
        ).scalars()
    }
    event = db.session.get(Event, next(iter(types.values())).event_id)
    with force_locale(attempt.locale):
        context = {"attempt": attempt, "event": event, "events_url": public_url("shop.events")}
        message = _message(
            to=attempt.buyer_email,
            subject=gettext("Your payment for %(title)s is refunded", title=event.title),
            text=render_template("mail/refund_notice.txt", **context),
            html=render_template("mail/refund_notice.html", **context),
        )
    return message, f"refund-attempt{attempt.id}"


class InvalidRecipient(ValueError):
    """A message may only go to one plain address; this is not one."""


def _message(*, to: str, subject: str, text: str, html: str) -> EmailMessage:
    # Checkout accepts nothing else, but rows written before it checked, or an address
    # from Stripe, must not make a message for two recipients, or for someone else.
    recipient = parsing.plain_email(to)
    if recipient is None:
        raise InvalidRecipient(f"not one plain address: {to!r}")
    message = EmailMessage()
    sender = current_app.config["MAIL_FROM"]
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # Quoted-printable, not 8bit: any SMTP server carries it, 8BITMIME or not.
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html")
    return message


def staff_message(*, to: str, subject: str, text: str, html: str) -> EmailMessage:
    """A mail to a staff member (an invitation, a password reset link), ready for ``deliver``."""
    return _message(to=to, subject=subject, text=text, html=html)


# --- delivery -------------------------------------------------------------------------------------


def deliver(message: EmailMessage, name: str, *, at: datetime | None = None) -> None:
    """By SMTP when ``MAIL_SERVER`` is set, else into the outbox folder. Raises on failure.
    ``at``: the time in the folder's file name (default now); the same ``at`` and ``name``
    replace the file, so delivering one mail again leaves one file."""
    config = current_app.config
    if config.get("MAIL_SERVER"):
        with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT"]) as smtp:
            if config.get("MAIL_USE_TLS"):
                # smtplib's own default context checks no certificate: ask for the checks.
                smtp.starttls(context=ssl.create_default_context())
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
            smtp.send_message(message)
        return
    write_to_outbox(message, name, Path(config["MAIL_OUTBOX"]), at=at)


def write_to_outbox(message: EmailMessage, name: str, outbox: Path, *, at: datetime | None = None) -> Path:
    """``<outbox>/<UTC timestamp>-<name>.eml``, written to a temporary file in the same
    folder and renamed into place (atomic: a reader sees the whole file or none)."""
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = outbox / f"{stamp}-{name}.eml"
    fd, temp = tempfile.mkstemp(dir=outbox, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(message.as_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
