"""Typed SQLAlchemy 2.0 models.

Times are stored as naive UTC (``UTCDateTime``) on every backend and come back as
aware UTC datetimes; each event carries the IANA timezone it is shown in. Money is
an integer in the currency's minor unit as Stripe counts it (``storefront.money``;
columns named ``*_minor``). The stock counters (``held``, ``sold``) are changed by
``storefront.inventory`` only, and CHECK constraints refuse any write that would
put them past capacity, whatever the code above them does.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from . import money
from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A DateTime kept as naive UTC in the database and aware UTC in Python."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class EventStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


class CartStatus(enum.StrEnum):
    ACTIVE = "active"
    CHECKING_OUT = "checking_out"
    CONVERTED = "converted"
    EXPIRED = "expired"


class Organiser(db.Model):
    __tablename__ = "organisers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # Members must sign in with a second factor (TOTP); set by an owner.
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where buyers can write to the organiser (the shop may show it).
    contact_email: Mapped[str | None] = mapped_column(String(254))

    events: Mapped[list[Event]] = relationship(back_populates="organiser")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("held >= 0 AND sold >= 0", name="counters_not_negative"),
        CheckConstraint("capacity IS NULL OR sold + held <= capacity", name="within_capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organiser_id: Mapped[int] = mapped_column(ForeignKey("organisers.id"), index=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    venue: Mapped[str] = mapped_column(String(300), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # None: the event is past once it starts.
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    timezone: Mapped[str] = mapped_column(String(64))  # IANA name, e.g. "Europe/Paris"
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, upper case, one Stripe accepts
    status: Mapped[str] = mapped_column(String(20), default=EventStatus.DRAFT.value)
    sales_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sales_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optional venue-wide limit over all ticket types; counters kept like a ticket type's.
    capacity: Mapped[int | None] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    # The random name of its cover image (``storefront.cover_images``), never the uploaded one.
    cover_image: Mapped[str | None] = mapped_column(String(64))

    organiser: Mapped[Organiser] = relationship(back_populates="events")
    ticket_types: Mapped[list[TicketType]] = relationship(
        back_populates="event", order_by="(TicketType.position, TicketType.id)"
    )

    @validates("currency")
    def _currency_stripe_accepts(self, _key: str, code: str) -> str:
        # Every event is made with a currency Stripe can charge: UnsupportedCurrency else.
        return money.stripe_currency(code)


class TicketType(db.Model):
    __tablename__ = "ticket_types"
    __table_args__ = (
        CheckConstraint("held >= 0 AND sold >= 0 AND capacity >= 0", name="counters_not_negative"),
        CheckConstraint("sold + held <= capacity", name="within_capacity"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("max_per_order >= 1", name="max_per_order_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price_minor: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    max_per_order: Mapped[int] = mapped_column(Integer, default=10)
    # Each bound falls back to the event's when unset.
    sales_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sales_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Off the event page and out of new carts; a type with sales is hidden, never deleted.
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    event: Mapped[Event] = relationship(back_populates="ticket_types")


class Cart(db.Model):
    """A browser's cart. While active and not past ``expires_at``, its items are held."""

    __tablename__ = "carts"
    __table_args__ = (
        # The sweep looks for active carts past their time.
        Index("ix_carts_status_expires_at", "status", "expires_at"),
        # The payments dashboard's funnel counts an event's carts of a period (storefront.reports).
        Index("ix_carts_event_id_created_at", "event_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # The event whose page created the cart (its first ticket's); a cart holds one event's
    # tickets at a time. None for carts older than migration 0015 that held nothing.
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(20), default=CartStatus.ACTIVE.value)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", order_by="CartItem.id", cascade="all, delete-orphan"
    )


class CartItem(db.Model):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("cart_id", "ticket_type_id", name="uq_cart_items_cart_ticket_type"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), index=True)
    ticket_type_id: Mapped[int] = mapped_column(ForeignKey("ticket_types.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)

    cart: Mapped[Cart] = relationship(back_populates="items")
    ticket_type: Mapped[TicketType] = relationship()


class AttemptStatus(enum.StrEnum):
    """A Checkout Session attempt, from our side.

    creating: recorded before Stripe was asked (so a crash in between is found by
    reconciliation); open: the buyer can pay; processing: completed, a bank debit
    still settling; paid: an order exists; expired / failed: ended without money;
    refunding / refunded: paid, but no tickets could be given, so the money goes back;
    amount_mismatch: Stripe says the session was paid another amount or currency than
    the attempt asked for: no order, the hold kept, left for a person.
    """

    CREATING = "creating"
    OPEN = "open"
    PROCESSING = "processing"
    PAID = "paid"
    EXPIRED = "expired"
    FAILED = "failed"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    AMOUNT_MISMATCH = "amount_mismatch"


# Attempts whose buyer may still pay: the partial index above and its query (live_sales).
IN_FLIGHT_CONDITION = "status IN ('creating', 'open', 'processing')"


class OrderStatus(enum.StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    CANCELLED = "cancelled"


class RefundStatus(enum.StrEnum):
    """A refund, one per refund object at Stripe (``storefront.refunds`` owns it).

    requested: recorded, Stripe not asked yet or its answer not seen (asked again with the
    same idempotency key until it answers); pending: Stripe is returning the money;
    succeeded: returned; failed: it did not go back (a retry is a new refund)."""

    REQUESTED = "requested"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TicketStatus(enum.StrEnum):
    VALID = "valid"
    USED = "used"
    VOID = "void"


class PaymentAttempt(db.Model):
    """One Checkout Session (or one try at creating it). Every attempt is kept."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        # The back office's attempts without an order, newest first (storefront.order_search).
        Index("ix_payment_attempts_event_id_created_at_id", "event_id", "created_at", "id"),
        Index("ix_payment_attempts_created_at_id", "created_at", "id"),
        # The payments dashboard counts attempts by outcome from this index alone (storefront.reports).
        Index(
            "ix_payment_attempts_event_id_created_at_outcome",
            "event_id",
            "created_at",
            "status",
            "error_code",
            "decline_code",
        ),
        # The live on-sale view's payments in flight (storefront.live_sales): only the
        # attempts still open are in it, so it stays small however many an event has had.
        Index(
            "ix_payment_attempts_in_flight",
            "event_id",
            "status",
            postgresql_where=text(IN_FLIGHT_CONDITION),
            sqlite_where=text(IN_FLIGHT_CONDITION),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id"), index=True)
    # The event its cart's tickets are of (set by checkout; migration 0012 filled in the
    # older ones from their carts; None for a cart that was empty by then).
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # The lines paid for, with attendee names:
    # [{ticket_type_id, name, quantity, unit_price_minor, attendees: [[first, last]]}]
    lines: Mapped[str] = mapped_column(Text)
    buyer_email: Mapped[str] = mapped_column(String(254))
    amount_minor: Mapped[int] = mapped_column(Integer)  # what Stripe was asked to charge
    currency: Mapped[str] = mapped_column(String(3))
    # amount_mismatch: what the paid session says was charged (amount_total, currency).
    paid_amount_minor: Mapped[int | None] = mapped_column(Integer)
    paid_currency: Mapped[str | None] = mapped_column(String(3))
    # Set by migration 0004 only: the total the shop showed the buyer, where it was not
    # what it asked Stripe for (zero- and three-decimal currencies, before minor units).
    displayed_amount_minor: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=AttemptStatus.CREATING.value)
    # The language the buyer checked out in ("en", "fr"): the order made from it keeps it.
    locale: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    session_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(100))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    refund_reason: Mapped[str | None] = mapped_column(String(100))
    raw: Mapped[str | None] = mapped_column(Text)  # the last Stripe object seen, as JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    cart: Mapped[Cart] = relationship()


class AttemptEventKind(enum.StrEnum):
    """What one row of an attempt's timeline records: a move of its status (written by
    ``storefront.attempts`` in the move's transaction), or one failed try inside its
    session (a decline, a failed 3-D Secure step, a failed bank debit), which leaves the
    status as it was (written by ``storefront.stripe_events``)."""

    MOVED = "moved"
    TRY_FAILED = "try_failed"


class AttemptEvent(db.Model):
    """One line of a payment attempt's timeline; append-only (triggers, migration 0012)."""

    __tablename__ = "attempt_events"
    __table_args__ = (Index("ix_attempt_events_attempt_id_id", "attempt_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    # MOVED: from (None when one UPDATE moved rows out of several statuses) and to.
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    error_type: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(100))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)

    attempt: Mapped[PaymentAttempt] = relationship()


class Order(db.Model):
    """Created by ``storefront.fulfilment`` only, one per paid Checkout Session."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_minor >= 0 AND refunded_minor >= 0", name="amounts_not_negative"),
        # The back office's order list, newest first, per event and across events
        # (storefront.order_search; its expression indexes are in migration 0012 only).
        Index("ix_orders_event_id_created_at_id", "event_id", "created_at", "id"),
        Index("ix_orders_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    access_token: Mapped[str] = mapped_column(String(64), unique=True)
    # NULL for free orders (no Stripe); several NULLs are allowed by UNIQUE on both backends.
    stripe_checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    buyer_email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PAID.value)
    total_minor: Mapped[int] = mapped_column(Integer)
    refunded_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    # The language of its checkout: its mails and its tickets' PDF are written in it.
    locale: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[Event] = relationship()
    tickets: Mapped[list[Ticket]] = relationship(back_populates="order", order_by="Ticket.id")


class Refund(db.Model):
    """Money given back for an order: who asked, why, and what Stripe made of it."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    # Who asked: a staff member (requested_by_user_id), or "Stripe" for one made there.
    requested_by: Mapped[str] = mapped_column(String(254))
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.REQUESTED.value)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(100))  # Stripe's, or ours when Stripe refused
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    order: Mapped[Order] = relationship()


class EventCancellation(db.Model):
    """The run that refunds an event's paid orders once it is cancelled (``storefront.cancellations``):
    one per event; the counts are written when it finishes (live ones are computed)."""

    __tablename__ = "event_cancellations"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    started_by: Mapped[str] = mapped_column(String(254))
    started_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    refunded_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)


class ReconcileRun(db.Model):
    """One run of ``storefront.reconcile`` (the command, the periodic job or a manager's
    button): global, as it looks at the whole shop's Stripe account."""

    __tablename__ = "reconcile_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_by: Mapped[str] = mapped_column(String(254))  # "cli", "job", or a staff email
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_count: Mapped[int] = mapped_column(Integer, default=0)
    fixed_count: Mapped[int] = mapped_column(Integer, default=0)
    found_count: Mapped[int] = mapped_column(Integer, default=0)
    closed_count: Mapped[int] = mapped_column(Integer, default=0)


class ReconcileItem(db.Model):
    """One mismatch reconcile found, for a person: the same (kind, Stripe id) found again is
    this row again; ``storefront.reconcile`` owns ``status`` (open -> closed when its cause
    went away, or dismissed / fulfilled / refunded by a person)."""

    __tablename__ = "reconcile_items"
    __table_args__ = (UniqueConstraint("kind", "stripe_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    stripe_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id"))
    stripe_status: Mapped[str] = mapped_column(String(80), default="")
    stripe_amount_minor: Mapped[int | None] = mapped_column(Integer)
    stripe_currency: Mapped[str | None] = mapped_column(String(3))
    ours: Mapped[str] = mapped_column(Text, default="")  # what we have, in words
    first_run_id: Mapped[int] = mapped_column(ForeignKey("reconcile_runs.id"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("reconcile_runs.id"))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(Text, default="")

    event: Mapped[Event | None] = relationship()
    attempt: Mapped[PaymentAttempt | None] = relationship()


class CancellationOrder(db.Model):
    """One order dealt with by a cancellation run: written in the transaction that records
    its refund, so a run started again never refunds it twice. ``refund_id`` is the latest
    refund (a retry replaces it); NULL for an order that took no money."""

    __tablename__ = "cancellation_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    cancellation_id: Mapped[int] = mapped_column(ForeignKey("event_cancellations.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (CheckConstraint("price_minor >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    ticket_type_id: Mapped[int] = mapped_column(ForeignKey("ticket_types.id"), index=True)
    attendee_first_name: Mapped[str] = mapped_column(String(100))
    attendee_last_name: Mapped[str] = mapped_column(String(100))
    price_minor: Mapped[int] = mapped_column(Integer)
    secret: Mapped[str] = mapped_column(String(64), unique=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # short, human-readable (tickets.py)
    status: Mapped[str] = mapped_column(String(20), default=TicketStatus.VALID.value)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="tickets")
    ticket_type: Mapped[TicketType] = relationship()


class MailKind(enum.StrEnum):
    ORDER_CONFIRMATION = "order_confirmation"
    REFUND_NOTICE = "refund_notice"  # a late payment refunded for want of stock
    EVENT_CANCELLED = "event_cancelled"  # the order's event is cancelled, its money refunded


class MailStatus(enum.StrEnum):
    """A mail of the outbox (``storefront.outbox`` alone writes it).

    pending: to be sent once ``due_at`` is reached; sending: a sender claimed it until
    ``claimed_until`` (a sender that died leaves it so, and it is taken again after);
    sent; failed: given up after ``MAIL_MAX_ATTEMPTS`` tries or refused for good (an
    address that is not one), for a person; skipped: no longer to be sent (the order was
    refunded or cancelled before its confirmation went out).
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class MailOutbox(db.Model):
    """A mail a buyer is due, recorded in the transaction that made it due (the order's,
    the refund's), so a paid order never lacks its confirmation. At most one of each kind
    per order or attempt, and per ``resend``: 0 is the mail itself, 1, 2, … each copy a
    member asked for again (``order_actions.resend_confirmation``), so the constraint
    still makes a double click on Resend one row."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        UniqueConstraint("order_id", "kind", "resend", name="uq_mail_outbox_order_id_kind_resend"),
        UniqueConstraint("attempt_id", "kind", name="uq_mail_outbox_attempt_id_kind"),
        Index("ix_mail_outbox_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    resend: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("payment_attempts.id"))
    status: Mapped[str] = mapped_column(String(20), default=MailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The same on every copy of this mail, so that a copy sent twice (a sender died
    # between the server's acceptance and marking it sent) is one mail to a mail client.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobLease(db.Model):
    """Who runs a periodic job now, until when (``storefront.jobs``): taken by one
    conditional UPDATE, so one job never runs twice at once across workers and hosts;
    a worker that died lets its lease run out."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEvent(db.Model):
    """Every verified Stripe event, by its id: the log that makes replay and audit possible."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)


# --- the payments dashboard's rollup (storefront.report_rollup) ----------------------------------
# Counts per event and quarter of an hour of UTC (``bucket``: seconds since 1970 // 900;
# every zone's offset is a whole number of quarter hours, so a bucket lies in one local
# hour and day of any zone), rebuilt from the raw tables by ``report_rollup.rebuild``.


class ReportAttempts(db.Model):
    """Payment attempts created in the bucket, by outcome (codes may be NULL, hence the id)."""

    __tablename__ = "report_attempts"
    __table_args__ = (Index("ix_report_attempts_event_id_bucket", "event_id", "bucket"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    bucket: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer)


class ReportTickets(db.Model):
    """Tickets issued by the orders created in the bucket, per ticket type."""

    __tablename__ = "report_tickets"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_type_id: Mapped[int] = mapped_column(ForeignKey("ticket_types.id"), primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer)


class ReportMoney(db.Model):
    """Per currency: the orders created in the bucket and their total; the refunds that
    succeeded, created in the bucket, and their amount."""

    __tablename__ = "report_money"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    gross_minor: Mapped[int] = mapped_column(Integer)
    refunds: Mapped[int] = mapped_column(Integer)
    refunded_minor: Mapped[int] = mapped_column(Integer)


class ReportCarts(db.Model):
    """Carts created on the event's pages in the bucket."""

    __tablename__ = "report_carts"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    carts: Mapped[int] = mapped_column(Integer)


class ReportAttemptsDaily(db.Model):
    """``report_attempts`` summed per UTC day (``day``: bucket // 96), for the figures that
    are not per time bucket: a period's whole UTC days read one row per outcome and day."""

    __tablename__ = "report_attempts_daily"
    __table_args__ = (Index("ix_report_attempts_daily_event_id_day", "event_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    day: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(100))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer)


class ReportMoneyDaily(db.Model):
    """``report_money`` summed per UTC day."""

    __tablename__ = "report_money_daily"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    gross_minor: Mapped[int] = mapped_column(Integer)
    refunds: Mapped[int] = mapped_column(Integer)
    refunded_minor: Mapped[int] = mapped_column(Integer)


class ReportCartsDaily(db.Model):
    """``report_carts`` summed per UTC day."""

    __tablename__ = "report_carts_daily"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    carts: Mapped[int] = mapped_column(Integer)


class ReportRollupState(db.Model):
    """One row (id 1): the rollup holds every bucket before ``rolled_up_until`` (a
    bucket boundary); the dashboard reads the raw tables from there on. None: no rollup."""

    __tablename__ = "report_rollup_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    rolled_up_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rebuilt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The back office's tables live in their own module; importing it here puts them in the
# same metadata (migrations, the schema test) whichever module is imported first.
from . import staff_models  # noqa: E402,F401
