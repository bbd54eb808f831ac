"""A ticket's identity: the secret its QR code carries, and the short code a person reads.

The secret (192 bits, URL-safe) is what the door checks; whoever has it holds the ticket,
so it is never shown as text and is replaced when an organiser reissues the ticket. The
code (10 characters of an alphabet without look-alikes, about 46 bits) names the ticket on
paper, on the phone and in the door's typed search; it is shown grouped as ``ACDE-FGHJK``
and accepted with or without the dash, in either case.

An organiser can reissue a ticket (``reissue``): a new secret and a new code, so the old
QR code and the old code stop working at the door.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from . import audit
from .audit import Actor
from .database import write_transaction
from .extensions import db
from .models import Event, Order, Ticket, TicketStatus
from .staff_errors import TicketNotFound, TicketNotReissuable
from .tokens import HUMAN_ALPHABET, human_code

TICKET_CODE_LENGTH = 10
TICKET_CODE_GROUP = 5


def new_ticket_secret() -> str:
    return secrets.token_urlsafe(24)


def new_ticket_code() -> str:
    return human_code(TICKET_CODE_LENGTH)


def format_ticket_code(code: str) -> str:
    return f"{code[:TICKET_CODE_GROUP]}-{code[TICKET_CODE_GROUP:]}"


def normalise_ticket_code(raw: str) -> str | None:
    """What a person typed as a ticket code, as it is stored; None if it cannot be one."""
    compact = "".join(ch for ch in raw.strip().upper() if ch not in " -")
    if len(compact) != TICKET_CODE_LENGTH or any(ch not in HUMAN_ALPHABET for ch in compact):
        return None
    return compact


# --- finding and reissuing a ticket (the back office) ----------------------------------------


def ticket_of_event(event_id: int, raw_code: str | None) -> Ticket | None:
    """The ticket of this event with this code (as a person typed it), with its order and
    type; None when there is none, or the text cannot be a code."""
    code = normalise_ticket_code(raw_code or "")
    if code is None:
        return None
    return db.session.execute(
        select(Ticket)
        .join(Order, Order.id == Ticket.order_id)
        .where(Ticket.code == code, Order.event_id == event_id)
        .options(selectinload(Ticket.order), selectinload(Ticket.ticket_type))
    ).scalar_one_or_none()


def reissue(event_id: int, code: str, actor: Actor) -> Ticket:
    """Give the ticket a new secret and a new code: its old QR code and code stop working
    at once (the door looks tickets up by them). For a ticket that was forwarded or leaked.

    One guarded UPDATE (``WHERE`` the secret is still the one read, and the ticket valid),
    so two reissues at once give one new secret each in turn, never a lost one; the audit
    entry (codes only: a secret is never written down) is in the same transaction."""
    with write_transaction():
        ticket = ticket_of_event(event_id, code)
        if ticket is None:
            raise TicketNotFound()
        if ticket.status != TicketStatus.VALID.value:
            raise TicketNotReissuable(ticket.status)
        event = db.session.get(Event, event_id)
        new_code = new_ticket_code()
        changed = db.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.secret == ticket.secret, Ticket.status == TicketStatus.VALID.value)
            .values(secret=new_ticket_secret(), code=new_code)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:
            raise TicketNotReissuable(TicketStatus.VALID.value, changed_meanwhile=True)
        audit.record(
            actor,
            "ticket_reissued",
            "ticket",
            ticket.id,
            organiser_id=event.organiser_id,
            event_id=event_id,
            before={"code": format_ticket_code(ticket.code)},
            after={"code": format_ticket_code(new_code)},
        )
        ticket_id = ticket.id
    db.session.expire_all()
    return db.session.get(Ticket, ticket_id)
