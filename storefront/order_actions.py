"""What staff do to one order besides refunding it (``storefront.refunds``): cancel it
without a refund (comps, fraud), correct an attendee's name, send its confirmation again.

Each runs in one transaction under the order's row lock, writes its audit entry there,
and is idempotent: cancelling a cancelled order, renaming to the name it has, or resending
the copy that was just resent, changes nothing and says so (a double click lands here).
"""

from __future__ import annotations

import math
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from . import inventory, limits, orders, outbox, ticket_lifecycle
from .audit import Actor, record
from .database import write_transaction
from .errors import StorefrontError, TooManyRequests
from .extensions import db
from .models import Event, MailKind, MailOutbox, Order, OrderStatus, Ticket, TicketStatus, utcnow
from .parsing import has_control_characters

NAME_LENGTH = 100  # the columns' length


class AttendeeNameInvalid(StorefrontError):
    def __init__(self, field: str):
        super().__init__(field)
        self.field = field

    def message(self) -> str:
        return _("A name is 1 to %(n)s characters, without line breaks or control characters.", n=NAME_LENGTH)


class NotResendable(StorefrontError):
    """The order is cancelled or refunded: its tickets are void, a confirmation would lie."""

    status = 409

    def message(self) -> str:
        return _("This order is cancelled or refunded: its tickets are void, so no confirmation is sent again.")


class FormOutOfDate(StorefrontError):
    """A confirm form's record of what it showed (the refunds committed, the resends made)
    is not a number: a forged or broken form."""

    def message(self) -> str:
        return _("This form is out of date: open the order again and start from there.")


RESEND_WINDOW = timedelta(hours=1)


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


def resend_confirmation(order_id: int, expect_resends: int, actor: Actor) -> int | None:
    """Send the order's confirmation (with its tickets) again, to the order's buyer address:
    one more row of the outbox, numbered ``expect_resends + 1`` (``expect_resends``: the
    number of resends the member's page showed), queued by the caller after the commit.
    Returns the row's id, or None when that copy was recorded already (the same form posted
    twice). Only for a paid or partly refunded order (``NotResendable``); at most
    ``RESEND_PER_ORDER_PER_HOUR`` copies an order an hour, counted from the rows, and
    ``LIMIT_RESEND_MAIL`` per member (``TooManyRequests``, nothing recorded)."""
    with write_transaction():
        order = _lock(order_id)
        if order.status not in outbox.CONFIRMED_STATUSES:
            raise NotResendable()
        resends = outbox.resends_of(order.id)
        if resends > expect_resends:
            return None  # the double click: this copy is on its way already
        _check_order_allowance(order.id)
        if actor.user_id is not None:
            limits.check_resend_mail(actor.user_id)
        mail_id = outbox.confirmation_resend_due(order.id, resends + 1)
        if mail_id is None:
            return None
        record(
            actor,
            "order.confirmation_resent",
            "order",
            order.id,
            organiser_id=_organiser_of(order),
            event_id=order.event_id,
            after={"resend": resends + 1, "to": order.buyer_email, "mail_id": mail_id},
        )
    return mail_id


def _check_order_allowance(order_id: int) -> None:
    """At most ``RESEND_PER_ORDER_PER_HOUR`` resends of one order in the last hour, read
    from the outbox under the order's lock: exact across processes, and kept even when the
    limiter's storage is down (a buyer's inbox matters more than a member's hurry)."""
    allowed = current_app.config["RESEND_PER_ORDER_PER_HOUR"]
    since = utcnow() - RESEND_WINDOW
    recent = db.session.execute(
        select(func.count(), func.min(MailOutbox.created_at)).where(
            MailOutbox.order_id == order_id,
            MailOutbox.kind == MailKind.ORDER_CONFIRMATION.value,
            MailOutbox.resend > 0,
            MailOutbox.created_at >= since,
        )
    ).one()
    if recent[0] >= allowed:
        retry_after = max(1, math.ceil((recent[1] + RESEND_WINDOW - utcnow()).total_seconds()))
        raise TooManyRequests(TooManyRequests.RESEND_ORDER, retry_after, allowed)
