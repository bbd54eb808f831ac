"""Building test data through the models, committed like real data."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import (
    Cart,
    CartItem,
    CartStatus,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    Organiser,
    Ticket,
    TicketStatus,
    TicketType,
    utcnow,
)

_seq = itertools.count(1)


def make_event(
    *,
    ticket_types: list[dict] | None = None,
    status: str = EventStatus.PUBLISHED.value,
    capacity: int | None = None,
    starts_in: timedelta = timedelta(days=30),
    timezone: str = "Europe/Paris",
    currency: str = "EUR",
    sales_start: datetime | None = None,
    sales_end: datetime | None = None,
    title: str | None = None,
) -> Event:
    """An event with ticket types (default: one "Standard" at 25.00, capacity 100)."""
    n = next(_seq)
    with write_transaction():
        org = db.session.execute(select(Organiser).where(Organiser.slug == "test-org")).scalar_one_or_none()
        if org is None:
            org = Organiser(name="Test Organiser", slug="test-org")
            db.session.add(org)
        event = Event(
            organiser=org,
            slug=f"event-{n}",
            title=title or f"Event {n}",
            description="A test event.",
            venue="Test Hall",
            starts_at=utcnow() + starts_in,
            timezone=timezone,
            currency=currency,
            status=status,
            capacity=capacity,
            sales_start=sales_start,
            sales_end=sales_end,
        )
        specs = ticket_types if ticket_types is not None else [{"name": "Standard"}]
        for i, spec in enumerate(specs):
            fields = {"name": f"Type {i}", "price_minor": 2500, "capacity": 100, "max_per_order": 10, "position": i}
            fields.update(spec)
            event.ticket_types.append(TicketType(**fields))
        db.session.add(event)
    return reload_event(event.id)


def reload_event(event_id: int) -> Event:
    db.session.rollback()
    return db.session.get(Event, event_id)


def ticket_type(tt_id: int) -> TicketType:
    """The ticket type as committed now (fresh counters)."""
    db.session.rollback()
    return db.session.get(TicketType, tt_id)


def cart_by_token(token: str) -> Cart:
    db.session.rollback()
    return db.session.execute(select(Cart).where(Cart.token == token)).scalar_one()


def cart_by_id(cart_id: int) -> Cart:
    """A cart by id: its token is replaced at checkout and when it becomes an order."""
    db.session.rollback()
    return db.session.get(Cart, cart_id)


def held_in_live_carts(tt_id: int) -> int:
    """What the carts say is held of a ticket type: the counter must equal it."""
    db.session.rollback()
    return db.session.execute(
        select(func.coalesce(func.sum(CartItem.quantity), 0))
        .join(Cart, Cart.id == CartItem.cart_id)
        .where(CartItem.ticket_type_id == tt_id, Cart.status == CartStatus.ACTIVE.value)
    ).scalar_one()


def lapse(token: str, ago: timedelta = timedelta(seconds=1)) -> None:
    """Move a cart's hold into the past, as if its time had run out."""
    from sqlalchemy import update

    with write_transaction():
        db.session.execute(update(Cart).where(Cart.token == token).values(expires_at=utcnow() - ago))


def make_order(
    event: Event,
    attendees: list[tuple[str, str]] | None = None,
    *,
    ticket_type_id: int | None = None,
    status: str = OrderStatus.PAID.value,
    ticket_status: str = TicketStatus.VALID.value,
    email: str = "buyer@example.com",
) -> Order:
    """A paid order of ``event`` with one ticket per attendee (default: Ada Lovelace), of
    its first ticket type unless told, made as fulfilment makes them (a converted cart,
    the ticket's secret and code from ``storefront.tickets``); the counters are not moved."""
    from storefront.fulfilment import new_order_code
    from storefront.tickets import new_ticket_code, new_ticket_secret

    attendees = attendees if attendees is not None else [("Ada", "Lovelace")]
    with write_transaction():
        event = db.session.get(Event, event.id)
        tt_id = ticket_type_id or event.ticket_types[0].id
        price = db.session.get(TicketType, tt_id).price_minor
        now = utcnow()
        cart = Cart(token=f"order-cart-{next(_seq)}", status=CartStatus.CONVERTED.value, expires_at=now)
        db.session.add(cart)
        db.session.flush()
        order = Order(
            code=new_order_code(),
            access_token=f"access-{next(_seq)}-{new_ticket_secret()}",
            cart_id=cart.id,
            event_id=event.id,
            buyer_email=email,
            status=status,
            total_minor=price * len(attendees),
            currency=event.currency,
            created_at=now,
        )
        for first, last in attendees:
            order.tickets.append(
                Ticket(
                    ticket_type_id=tt_id,
                    attendee_first_name=first,
                    attendee_last_name=last,
                    price_minor=price,
                    secret=new_ticket_secret(),
                    code=new_ticket_code(),
                    status=ticket_status,
                )
            )
        db.session.add(order)
        db.session.flush()
        order_id = order.id
    return reload_order(order_id)


def reload_order(order_id: int) -> Order:
    """The order read back afresh with its tickets, their types, its event and organiser."""
    db.session.rollback()
    return db.session.execute(
        select(Order)
        .where(Order.id == order_id)
        .options(
            selectinload(Order.tickets).selectinload(Ticket.ticket_type),
            selectinload(Order.event).selectinload(Event.organiser),
        )
    ).scalar_one()
