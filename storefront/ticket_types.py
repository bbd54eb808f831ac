"""Ticket types as the back office makes and changes them: create, edit, reorder, hide, delete.

Invariants kept here:

* Every change locks the event's ticket types and the event first
  (``events.locked_event``, within the organiser, in the buyers' lock order): changes
  of one event's types are serialised, and never deadlock with a buyer's hold.
* Capacity changes go through ``inventory.set_ticket_type_capacity``: one conditional
  UPDATE, never below what is sold and held at that moment.
* A ticket type with tickets sold or held is never deleted, only hidden: orders and
  carts name it. A hidden type is off the event page and out of new carts; carts that
  hold it already keep it and may pay for it.
* A price is in the event's currency's minor units (``money.to_minor``). A cart keeps no
  price of its own: a new price is what every cart shows from its next page on, and
  what checkout charges (``checkout`` refuses a Pay pressed on a form that showed the
  old total). A payment already open at Stripe keeps the price it was started with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from . import audit, inventory, local_time, money
from .audit import Actor
from .database import write_transaction
from .errors import InvalidAmount
from .event_errors import EventLocked, InvalidPrice, TicketTypeHasSales, TicketTypeNotFound
from .events import check_sales_window, locked_event
from .extensions import db
from .models import CartItem, Event, EventStatus, Ticket, TicketType

_PRICE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")


@dataclass(frozen=True)
class TicketTypeFields:
    name: str
    description: str
    price: str  # as typed, in the event's currency's major unit: "25", "12.50"
    capacity: int
    max_per_order: int
    sales_start: datetime | None  # wall clock in the event's timezone
    sales_end: datetime | None

    def resolved(self, event: Event) -> dict:
        # Digits with one decimal point (or comma, as French organisers write it); no
        # exponents, signs, spaces or other digits ("1e3", "-5", "١٢").
        typed = self.price.strip().replace(",", ".", 1)
        if not _PRICE.fullmatch(typed):
            raise InvalidPrice(event.currency)
        try:
            price_minor = money.to_minor(typed, event.currency)
        except InvalidAmount:
            raise InvalidPrice(event.currency) from None
        tz = event.timezone
        values = {
            "name": " ".join(self.name.split()),
            "description": " ".join(self.description.split()),
            "price_minor": price_minor,
            "max_per_order": self.max_per_order,
            "sales_start": local_time.to_utc(self.sales_start, tz, "sales_start"),
            "sales_end": local_time.to_utc(self.sales_end, tz, "sales_end"),
        }
        check_sales_window(
            values["sales_start"] or event.sales_start, values["sales_end"] or event.sales_end, event.starts_at
        )
        return values


def _event(organiser_id: int, event_id: int) -> Event:
    event = locked_event(organiser_id, event_id)
    if event.status == EventStatus.CANCELLED.value:
        raise EventLocked()
    return event


def _of_event(event: Event, ticket_type_id: int) -> TicketType:
    found = next((tt for tt in event.ticket_types if tt.id == ticket_type_id), None)
    if found is None:
        raise TicketTypeNotFound()
    return found


def find(event: Event, ticket_type_id: int) -> TicketType | None:
    """The event's ticket type with this id, or None (another event's is None too)."""
    return db.session.execute(
        select(TicketType).where(TicketType.id == ticket_type_id, TicketType.event_id == event.id)
    ).scalar_one_or_none()


def _snapshot(tt: TicketType) -> dict:
    return {
        "name": tt.name,
        "description": tt.description,
        "price_minor": tt.price_minor,
        "capacity": tt.capacity,
        "max_per_order": tt.max_per_order,
        "sales_start": tt.sales_start,
        "sales_end": tt.sales_end,
        "hidden": tt.hidden,
    }


def _record(actor: Actor, action: str, event: Event, tt: TicketType, before=None, after=None) -> None:
    audit.record(
        actor,
        action,
        "ticket_type",
        tt.id,
        organiser_id=event.organiser_id,
        event_id=event.id,
        before=before,
        after=after,
    )


def create(organiser_id: int, event_id: int, fields: TicketTypeFields, actor: Actor) -> TicketType:
    """A new ticket type, last in the event's order."""
    with write_transaction():
        event = _event(organiser_id, event_id)
        values = fields.resolved(event)
        last = db.session.execute(
            select(func.max(TicketType.position)).where(TicketType.event_id == event.id)
        ).scalar_one()
        tt = TicketType(event_id=event.id, capacity=fields.capacity, held=0, sold=0, position=(last or 0) + 1, **values)
        db.session.add(tt)
        db.session.flush()
        _record(actor, "ticket_type_created", event, tt, after={**_snapshot(tt), "position": tt.position})
        tt_id = tt.id
    return db.session.get(TicketType, tt_id)


def update(organiser_id: int, event_id: int, ticket_type_id: int, fields: TicketTypeFields, actor: Actor) -> TicketType:
    """Change a ticket type; its capacity never below what is sold and held (``CapacityBelowTaken``)."""
    with write_transaction():
        event = _event(organiser_id, event_id)
        tt = _of_event(event, ticket_type_id)
        before = _snapshot(tt)
        values = fields.resolved(event)
        if fields.capacity != tt.capacity:
            inventory.set_ticket_type_capacity(tt.id, fields.capacity)
            db.session.refresh(tt)
        for name, value in values.items():
            setattr(tt, name, value)
        db.session.flush()
        after = _snapshot(tt)
        changed = [k for k in after if before[k] != after[k]]
        if changed:
            _record(
                actor,
                "ticket_type_changed",
                event,
                tt,
                before={k: before[k] for k in changed},
                after={k: after[k] for k in changed},
            )
    return db.session.get(TicketType, ticket_type_id)


def move(organiser_id: int, event_id: int, ticket_type_id: int, direction: int, actor: Actor) -> list[TicketType]:
    """Move a ticket type one place up (``-1``) or down (``+1``) in the event's order;
    the event's types in their new order. At either end it stays where it is."""
    with write_transaction():
        event = _event(organiser_id, event_id)
        ordered = sorted(event.ticket_types, key=lambda t: (t.position, t.id))
        index = next((i for i, tt in enumerate(ordered) if tt.id == ticket_type_id), None)
        if index is None:
            raise TicketTypeNotFound()
        target = index + direction
        if 0 <= target < len(ordered):
            before = [tt.id for tt in ordered]
            ordered[index], ordered[target] = ordered[target], ordered[index]
            for position, tt in enumerate(ordered, start=1):
                tt.position = position
            audit.record(
                actor,
                "ticket_types_reordered",
                "event",
                event.id,
                organiser_id=event.organiser_id,
                event_id=event.id,
                before={"order": before},
                after={"order": [tt.id for tt in ordered]},
            )
        ids = [tt.id for tt in ordered]
    return [db.session.get(TicketType, tt_id) for tt_id in ids]


def set_hidden(organiser_id: int, event_id: int, ticket_type_id: int, hidden: bool, actor: Actor) -> TicketType:
    """Hide a ticket type from buyers (or show it again)."""
    with write_transaction():
        event = _event(organiser_id, event_id)
        tt = _of_event(event, ticket_type_id)
        if tt.hidden != hidden:
            tt.hidden = hidden
            action = "ticket_type_hidden" if hidden else "ticket_type_shown"
            _record(actor, action, event, tt, before={"hidden": not hidden}, after={"hidden": hidden})
    return db.session.get(TicketType, ticket_type_id)


def delete(organiser_id: int, event_id: int, ticket_type_id: int, actor: Actor) -> None:
    """Delete a ticket type nobody bought or holds (``TicketTypeHasSales`` otherwise: hide it)."""
    with write_transaction():
        event = _event(organiser_id, event_id)
        tt = _of_event(event, ticket_type_id)
        # Its row is locked (``locked_event``): no hold of it can start before the delete.
        ever_sold = db.session.execute(select(Ticket.id).where(Ticket.ticket_type_id == tt.id).limit(1)).first()
        in_carts = db.session.execute(select(CartItem.id).where(CartItem.ticket_type_id == tt.id).limit(1)).first()
        if tt.sold or tt.held or ever_sold or in_carts:
            raise TicketTypeHasSales()
        _record(actor, "ticket_type_deleted", event, tt, before=_snapshot(tt))
        event.ticket_types.remove(tt)
        db.session.delete(tt)
