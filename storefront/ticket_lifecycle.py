"""The one owner of ``Ticket.status``: valid, used, void.

valid → used        the door lets it in (``check_in.admit``)
used → valid        the door's undo (a mistaken scan, a guest who left before the doors)
valid → void        refunded or cancelled: it gets nobody in any more
used → void         refunded or cancelled after the guest came in: the money decides, so
                    a ticket refunded at the bar is void like any other (the check-in
                    rows still say it came in)
void                an end: a refund that fails later does not bring it back (the buyer
                    was told it is void; the organiser retries the refund)

Every change is a conditional UPDATE whose WHERE re-checks the status it moves from, so
two writers (a door scan and a refund, two doors) cannot both win; callers read the row
count (or the ids returned) to know whether they did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import update

from .extensions import db
from .models import Ticket, TicketStatus

S = TicketStatus

TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.VALID: frozenset({S.USED, S.VOID}),
    S.USED: frozenset({S.VALID, S.VOID}),
    S.VOID: frozenset(),
}


class IllegalTicketTransition(RuntimeError):
    def __init__(self, current: str, wanted: TicketStatus) -> None:
        super().__init__(f"a ticket cannot go from {current} to {wanted.value}")


def _move_where(condition, from_: Iterable[TicketStatus], to: TicketStatus, **values) -> list[int]:
    """Move the tickets matching ``condition`` and in one of ``from_`` to ``to``, in one
    conditional UPDATE; the ids moved. An illegal source is refused before writing."""
    sources = list(from_)
    for source in sources:
        if to not in TRANSITIONS[source]:
            raise IllegalTicketTransition(source.value, to)
    return list(
        db.session.execute(
            update(Ticket)
            .where(condition, Ticket.status.in_([s.value for s in sources]))
            .values(status=to.value, **values)
            .returning(Ticket.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )


def admit(ticket_id: int, now: datetime) -> bool:
    """valid → used: True for the one caller that changed it."""
    return len(_move_where(Ticket.id == ticket_id, [S.VALID], S.USED, checked_in_at=now)) == 1


def undo_admission(ticket_id: int) -> bool:
    """used → valid (the door's undo): True if it was used and is valid now."""
    return len(_move_where(Ticket.id == ticket_id, [S.USED], S.VALID, checked_in_at=None)) == 1


def void_tickets(ticket_ids: Iterable[int]) -> list[int]:
    """valid or used → void for these tickets; the ids that changed (void ones stay)."""
    ids = list(ticket_ids)
    if not ids:
        return []
    return _move_where(Ticket.id.in_(ids), [S.VALID, S.USED], S.VOID)


def void_valid_of_order(order_id: int) -> list[int]:
    """The order's valid tickets → void (all its money went back); the ids voided."""
    return _move_where(Ticket.order_id == order_id, [S.VALID], S.VOID)


def status_words() -> dict[str, str]:
    """Each status as the back office says it."""
    return {S.VALID: _("Valid"), S.USED: _("Used"), S.VOID: _("Void")}
