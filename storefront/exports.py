"""Per-event CSV exports: orders, attendees (the door list), payment attempts and refunds.

Each kind is a header and a generator of rows over one streamed query (``_streamed``): the
columns it needs, joins done in SQL, read through a server-side cursor in chunks as Core
rows, never ORM objects (no identity map, no lazy loads), so a large event never sits in
memory. Times in the event's timezone (named in the header), amounts in the currency's
major unit with the currency in its own column."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import Select, select

from . import attempts, audit, check_in, failure_reasons, money
from .database import write_transaction
from .extensions import db
from .models import Event, Order, PaymentAttempt, Refund, Ticket, TicketType
from .tickets import format_ticket_code

CHUNK = 500

Export = tuple[list[str], Iterator[list[object]]]


def _when(value, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _created(event: Event) -> str:
    return _("Created (%(zone)s)", zone=event.timezone)


def _streamed(query: Select) -> Iterator:
    """The query's rows in chunks of ``CHUNK`` through a server-side cursor (``yield_per``:
    ``stream_results`` and a bounded buffer), on a connection of its own in one read-only
    transaction (reads elsewhere are autocommit, where PostgreSQL allows no cursor): a
    consistent snapshot of the event however long the download takes. Core rows: an ORM
    session would build every row's objects before the first (its loader fetches all rows
    unless told ``yield_per`` itself) and keep them in its identity map."""
    options = {"yield_per": CHUNK}
    if db.engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with db.engine.connect().execution_options(**options) as connection, connection.begin():
        # Closed explicitly, so a download given up halfway closes its server-side cursor too.
        with connection.execute(query) as result:
            yield from result


def orders(event: Event) -> Export:
    zone = ZoneInfo(event.timezone)
    header = [
        _("Order"),
        _created(event),
        _("Buyer email"),
        _("Status"),
        _("Total"),
        _("Refunded"),
        _("Currency"),
    ]
    query = (
        select(
            Order.code,
            Order.created_at,
            Order.buyer_email,
            Order.status,
            Order.total_minor,
            Order.refunded_minor,
            Order.currency,
        )
        .where(Order.event_id == event.id)
        .order_by(Order.id)
    )

    def rows() -> Iterator[list[object]]:
        for row in _streamed(query):
            yield [
                row.code,
                _when(row.created_at, zone),
                row.buyer_email,
                row.status,
                money.to_major(row.total_minor, row.currency),
                money.to_major(row.refunded_minor, row.currency),
                row.currency,
            ]

    return header, rows()


def attendees(event: Event) -> Export:
    """The door list with the buyer: one row per ticket, in the order they were sold."""
    zone = ZoneInfo(event.timezone)
    header = [
        _("Ticket code"),
        _("First name"),
        _("Last name"),
        _("Ticket type"),
        _("Status"),
        _("Checked in (%(zone)s)", zone=event.timezone),
        _("Order"),
        _("Buyer email"),
    ]
    query = (
        select(
            Ticket.code,
            Ticket.attendee_first_name,
            Ticket.attendee_last_name,
            TicketType.name.label("ticket_type"),
            Ticket.status,
            Ticket.checked_in_at,
            Order.code.label("order_code"),
            Order.status.label("order_status"),
            Order.buyer_email,
        )
        .join(Order, Order.id == Ticket.order_id)
        .join(TicketType, TicketType.id == Ticket.ticket_type_id)
        .where(Order.event_id == event.id)
        .order_by(Ticket.id)
    )

    def rows() -> Iterator[list[object]]:
        words = check_in.door_status_words()
        for row in _streamed(query):
            yield [
                format_ticket_code(row.code),
                row.attendee_first_name,
                row.attendee_last_name,
                row.ticket_type,
                words[check_in.door_status_of(row.status, row.order_status)],
                _when(row.checked_in_at, zone),
                row.order_code,
                row.buyer_email,
            ]

    return header, rows()


def payment_attempts(event: Event) -> Export:
    """Every payment attempt of the event, with or without an order, oldest first."""
    zone = ZoneInfo(event.timezone)
    header = [
        _created(event),
        _("Status"),
        _("Failure"),
        _("Stripe error code"),
        _("Stripe decline code"),
        _("Stripe Checkout Session"),
        _("Stripe PaymentIntent"),
        _("Stripe charge"),
        _("Amount"),
        _("Currency"),
        _("Buyer email"),
        _("Order"),
    ]
    query = (
        select(
            PaymentAttempt.created_at,
            PaymentAttempt.status,
            PaymentAttempt.error_code,
            PaymentAttempt.decline_code,
            PaymentAttempt.error_message,
            PaymentAttempt.stripe_checkout_session_id,
            PaymentAttempt.stripe_payment_intent_id,
            PaymentAttempt.stripe_charge_id,
            PaymentAttempt.amount_minor,
            PaymentAttempt.currency,
            PaymentAttempt.buyer_email,
            Order.code.label("order_code"),
        )
        # A cart becomes at most one order (fulfilment); its attempts all belong to it.
        .outerjoin(Order, Order.cart_id == PaymentAttempt.cart_id)
        .where(PaymentAttempt.event_id == event.id)
        .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
    )

    def rows() -> Iterator[list[object]]:
        words = attempts.status_words()
        for row in _streamed(query):
            failure = failure_reasons.explain(row.error_code, row.decline_code, row.error_message)
            yield [
                _when(row.created_at, zone),
                words.get(row.status, row.status),
                failure.words if failure else "",
                row.error_code,
                row.decline_code,
                row.stripe_checkout_session_id,
                row.stripe_payment_intent_id,
                row.stripe_charge_id,
                money.to_major(row.amount_minor, row.currency),
                row.currency,
                row.buyer_email,
                row.order_code,
            ]

    return header, rows()


def refunds(event: Event) -> Export:
    zone = ZoneInfo(event.timezone)
    header = [
        _created(event),
        _("Order"),
        _("Amount"),
        _("Currency"),
        _("Status"),
        _("Reason"),
        _("Asked by"),
        _("Stripe refund"),
    ]
    query = (
        select(
            Refund.created_at,
            Order.code.label("order_code"),
            Refund.amount_minor,
            Refund.currency,
            Refund.status,
            Refund.failure_reason,
            Refund.reason,
            Refund.requested_by,
            Refund.stripe_refund_id,
        )
        .join(Order, Order.id == Refund.order_id)
        .where(Order.event_id == event.id)
        .order_by(Refund.id)
    )

    def rows() -> Iterator[list[object]]:
        for row in _streamed(query):
            yield [
                _when(row.created_at, zone),
                row.order_code,
                money.to_major(row.amount_minor, row.currency),
                row.currency,
                f"{row.status} ({row.failure_reason})" if row.failure_reason else row.status,
                row.reason,
                row.requested_by,
                row.stripe_refund_id,
            ]

    return header, rows()


KINDS: dict[str, Callable[[Event], Export]] = {
    "orders": orders,
    "attendees": attendees,
    "attempts": payment_attempts,
    "refunds": refunds,
}


def labels() -> dict[str, str]:
    """Each kind as the event page links it (named apart from the page's other links)."""
    return {
        "orders": _("Orders (CSV)"),
        "attendees": _("Attendees, the door list (CSV)"),
        "attempts": _("Payment attempts (CSV)"),
        "refunds": _("Refunds (CSV)"),
    }


def record(event: Event, kind: str, actor) -> None:
    with write_transaction():
        audit.record(
            actor,
            "event_exported",
            "event",
            event.id,
            organiser_id=event.organiser_id,
            event_id=event.id,
            after={"kind": kind},
        )
