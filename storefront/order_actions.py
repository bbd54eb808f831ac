"""What staff do to one order besides refunding it (``storefront.refunds``): cancel it
without a refund (comps, fraud) and correct an attendee's name.

Each runs in one transaction under the order's row lock, writes its audit entry there,
and is idempotent: cancelling a cancelled order, or renaming to the name it has, changes
nothing and says so (a double click lands here).
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from . import inventory, orders, ticket_lifecycle
from .audit import Actor, record
from .database import write_transaction
from .errors import StorefrontError
from .extensions import db
from .models import Event, Order, OrderStatus, Ticket, TicketStatus
from .parsing import has_control_characters

NAME_LENGTH = 100  # the columns' length


class AttendeeNameInvalid(StorefrontError):
    def __init__(self, field: str):
        super().__init__(field)
        self.field = field

    def message(self) -> str:
        return _("A name is 1 to %(n)s characters, without line breaks or control characters.", n=NAME_LENGTH)


def _lock(order_id: int) -> Order:
    return db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def _organiser_of(order: Order) -> int:
    return db.session.execute(select(Event.organiser_id).where(Event.id == order.event_id)).scalar_one()


def cancel(order_id: int, put_back: bool, actor: Actor) -> bool:
    """Cancel the order without giving money back: its tickets that are not void become
    void, and with ``put_back`` return to stock. False if it was cancelled already."""
    with write_transaction():
        order = _lock(order_id)
        if order.status == OrderStatus.CANCELLED.value:
            return False
        before = order.status
        tickets = list(
            db.session.execute(
                select(Ticket).where(Ticket.order_id == order.id, Ticket.status != TicketStatus.VOID.value)
            ).scalars()
        )
        orders.move(order, OrderStatus.CANCELLED)
        voided = set(ticket_lifecycle.void_tickets([t.id for t in tickets]))
        if put_back:
            counts: dict = {}
            for t in tickets:
                if t.id in voided:
                    counts[t.ticket_type] = counts.get(t.ticket_type, 0) + 1
            inventory.put_back(counts)
        record(
            actor,
            "order.cancelled",
            "order",
            order.id,
            organiser_id=_organiser_of(order),
            event_id=order.event_id,
            before={"status": before},
            after={"status": OrderStatus.CANCELLED.value, "voided": len(voided), "put_back": put_back},
        )
    return True


def clean_name(raw: str | None, field: str) -> str:
    name = " ".join((raw or "").split()) if raw and not has_control_characters(raw) else ""
    if not 1 <= len(name) <= NAME_LENGTH:
        raise AttendeeNameInvalid(field)
    return name


def rename_attendee(order_id: int, ticket_code: str, first: str | None, last: str | None, actor: Actor) -> bool:
    """Correct the name on one ticket of the order; False if it already had that name."""
    first_name, last_name = clean_name(first, "first_name"), clean_name(last, "last_name")
    with write_transaction():
        order = _lock(order_id)
        ticket = db.session.execute(
            select(Ticket).where(Ticket.order_id == order.id, Ticket.code == ticket_code)
        ).scalar_one()
        old = {"first_name": ticket.attendee_first_name, "last_name": ticket.attendee_last_name}
        new = {"first_name": first_name, "last_name": last_name}
        if old == new:
            return False
        ticket.attendee_first_name, ticket.attendee_last_name = first_name, last_name
        record(
            actor,
            "ticket.renamed",
            "ticket",
            ticket.id,
            organiser_id=_organiser_of(order),
            event_id=order.event_id,
            before=old,
            after=new,
        )
    return True
