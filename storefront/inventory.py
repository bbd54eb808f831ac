"""Hold, release and sell stock: the only code that changes the stock counters.

Every change is one conditional UPDATE per row, inside the caller's transaction,
never a read followed by a write::

    UPDATE ticket_types SET held = held + :n
     WHERE id = :id AND sold + held + :n <= capacity

The database evaluates the condition against the latest committed row while it
holds that row's lock, so two buyers racing for the last ticket cannot both pass,
whatever process or host they run on. A row count of 0 means there is not enough.

Rows are always taken in one order (ticket types by id, then events by id), so two
transactions holding several rows cannot wait on each other in a cycle. Callers
lock their cart row before calling in, which keeps the order cart → ticket type →
event everywhere. Ticket types come first because that is where a flash sale runs
short: a buyer who finds the type sold out never locks the event row, which every
successful buyer of the event needs.

Capacity itself changes here too (the back office lowering or raising it), by the same
kind of statement: ``SET capacity = :c WHERE id = :id AND sold + held <= :c``. A buyer
holding the row's last tickets and an organiser lowering its capacity are serialised on
the row lock, and whichever comes second sees the other's commit: the capacity never
goes below what is sold and held, and no hold passes a capacity lowered before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from sqlalchemy import Integer, bindparam, or_, select, update

from .errors import SoldOut
from .event_errors import CapacityBelowTaken
from .extensions import db
from .models import Event, TicketType


def _by_event(quantities: Mapping[TicketType, int]) -> dict[int, int]:
    per_event: dict[int, int] = defaultdict(int)
    for tt, n in quantities.items():
        per_event[tt.event_id] += n
    return per_event


# The two holds, built once: on the hot path (every add to cart) building the
# expressions and their cache keys anew cost more than running them.
_HOLD_EVENT = (
    update(Event)
    .where(
        Event.id == bindparam("event_id"),
        or_(Event.capacity.is_(None), Event.sold + Event.held + bindparam("n", type_=Integer) <= Event.capacity),
    )
    .values(held=Event.held + bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)
_HOLD_TICKET_TYPE = (
    update(TicketType)
    .where(
        TicketType.id == bindparam("ticket_type_id"),
        TicketType.sold + TicketType.held + bindparam("n", type_=Integer) <= TicketType.capacity,
    )
    .values(held=TicketType.held + bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)


def hold(quantities: Mapping[TicketType, int]) -> None:
    """Hold ``n`` more of each ticket type, or raise ``SoldOut`` for the first that does not fit.

    Must run inside a write transaction; on ``SoldOut`` the caller rolls it back,
    which undoes the rows already taken.
    """
    quantities = {tt: n for tt, n in quantities.items() if n}
    if any(n < 0 for n in quantities.values()):
        raise ValueError("hold() takes positive quantities; use release()")
    session = db.session
    for tt in sorted(quantities, key=lambda t: t.id):
        taken = session.execute(_HOLD_TICKET_TYPE, {"ticket_type_id": tt.id, "n": quantities[tt]}).rowcount
        if taken != 1:
            raise SoldOut(tt.name, left=ticket_type_left(tt.id), ticket_type_id=tt.id, event_id=tt.event_id)
    for event_id, n in sorted(_by_event(quantities).items()):
        taken = session.execute(_HOLD_EVENT, {"event_id": event_id, "n": n}).rowcount
        if taken != 1:
            name = next(tt.event.title for tt in quantities if tt.event_id == event_id)
            raise SoldOut(name, left=event_left(event_id), event_id=event_id)


def shortage(quantities: Mapping[TicketType, int]) -> SoldOut | None:
    """What ``hold`` would refuse, judged from the rows as loaded (no query), checked
    in ``hold``'s order; None if they show enough.

    Only a refusal may be decided from a read: it is the answer the buyer would have
    had a moment earlier. A success is always the conditional UPDATE's, in ``hold``.
    """
    for tt in sorted(quantities, key=lambda t: t.id):
        left = tt.capacity - tt.sold - tt.held
        if left < quantities[tt]:
            return SoldOut(tt.name, left=max(0, left), ticket_type_id=tt.id, event_id=tt.event_id)
    for event_id, n in sorted(_by_event(quantities).items()):
        event = next(tt.event for tt in quantities if tt.event_id == event_id)
        if event.capacity is not None and event.capacity - event.sold - event.held < n:
            return SoldOut(event.title, left=max(0, event.capacity - event.sold - event.held), event_id=event_id)
    return None


def release(quantities: Mapping[TicketType, int]) -> None:
    """Give back ``n`` held tickets of each ticket type (and of its event)."""
    quantities = {tt: n for tt, n in quantities.items() if n}
    if any(n < 0 for n in quantities.values()):
        raise ValueError("release() takes positive quantities")
    session = db.session
    for tt in sorted(quantities, key=lambda t: t.id):
        session.execute(
            update(TicketType)
            .where(TicketType.id == tt.id)
            .values(held=TicketType.held - quantities[tt])
            .execution_options(synchronize_session=False)
        )
    for event_id, n in sorted(_by_event(quantities).items()):
        session.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(held=Event.held - n)
            .execution_options(synchronize_session=False)
        )


_SELL_TICKET_TYPE = (
    update(TicketType)
    .where(TicketType.id == bindparam("ticket_type_id"), TicketType.held >= bindparam("n", type_=Integer))
    .values(held=TicketType.held - bindparam("n", type_=Integer), sold=TicketType.sold + bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)
_SELL_EVENT = (
    update(Event)
    .where(Event.id == bindparam("event_id"), Event.held >= bindparam("n", type_=Integer))
    .values(held=Event.held - bindparam("n", type_=Integer), sold=Event.sold + bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)


class NotHeld(RuntimeError):
    """``sell`` was asked to sell more than is held: a bug above, never a buyer's doing."""


def sell(quantities: Mapping[TicketType, int]) -> None:
    """Turn ``n`` held tickets of each ticket type (and of its event) into sold ones.

    The caller holds them: its cart's hold, or a ``hold`` it just made in the same
    transaction (a late payment). The conditional UPDATE refuses to sell what is not
    held, so ``sold`` can only grow out of stock that was within capacity already;
    ``sold + held`` does not change. Same lock order as ``hold``.
    """
    _move_each(quantities, "sell", _SELL_TICKET_TYPE, _SELL_EVENT, NotHeld, "held")


def _move_each(quantities, name: str, per_type, per_event, refused: type[Exception], counter: str) -> None:
    """Run a conditional UPDATE per ticket type, then per event, in ``hold``'s lock order;
    ``refused`` when one finds fewer than ``n`` in ``counter`` (the caller rolls back)."""
    quantities = {tt: n for tt, n in quantities.items() if n}
    if any(n < 0 for n in quantities.values()):
        raise ValueError(f"{name}() takes positive quantities")
    session = db.session
    for tt in sorted(quantities, key=lambda t: t.id):
        if session.execute(per_type, {"ticket_type_id": tt.id, "n": quantities[tt]}).rowcount != 1:
            raise refused(f"ticket type {tt.id}: fewer than {quantities[tt]} {counter}")
    for event_id, n in sorted(_by_event(quantities).items()):
        if session.execute(per_event, {"event_id": event_id, "n": n}).rowcount != 1:
            raise refused(f"event {event_id}: fewer than {n} {counter}")


_TICKET_TYPE_LEFT = (
    select(TicketType.capacity - TicketType.sold - TicketType.held, Event.capacity - Event.sold - Event.held)
    .join(Event, Event.id == TicketType.event_id)
    .where(TicketType.id == bindparam("ticket_type_id"))
)


def ticket_type_left(ticket_type_id: int) -> int:
    """Tickets of this type a buyer could still hold now (its own and its event's limit)."""
    row = db.session.execute(_TICKET_TYPE_LEFT, {"ticket_type_id": ticket_type_id}).one()
    return max(0, min(x for x in row if x is not None))


def event_left(event_id: int) -> int:
    left = db.session.execute(select(Event.capacity - Event.sold - Event.held).where(Event.id == event_id)).scalar_one()
    return max(0, left) if left is not None else 2**31


def left_for(ticket_types: Iterable[TicketType]) -> dict[int, int]:
    """Tickets left per ticket type from already-loaded rows (no query)."""
    result = {}
    for tt in ticket_types:
        left = tt.capacity - tt.sold - tt.held
        ev = tt.event
        if ev.capacity is not None:
            left = min(left, ev.capacity - ev.sold - ev.held)
        result[tt.id] = max(0, left)
    return result


def set_ticket_type_capacity(ticket_type_id: int, capacity: int) -> None:
    """Make the ticket type's capacity ``capacity``, or raise ``CapacityBelowTaken`` if
    more than that is sold and held at this moment. Inside the caller's transaction."""
    if capacity < 0:
        raise ValueError("a capacity is not negative")
    changed = db.session.execute(
        update(TicketType)
        .where(TicketType.id == ticket_type_id, TicketType.sold + TicketType.held <= capacity)
        .values(capacity=capacity)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        taken = db.session.execute(
            select(TicketType.sold + TicketType.held).where(TicketType.id == ticket_type_id)
        ).scalar_one()
        raise CapacityBelowTaken(taken, field="capacity")


def set_event_capacity(event_id: int, capacity: int | None) -> None:
    """The event-wide capacity (None: no limit over its ticket types), as
    ``set_ticket_type_capacity``."""
    if capacity is not None and capacity < 0:
        raise ValueError("a capacity is not negative")
    condition = [Event.id == event_id]
    if capacity is not None:
        condition.append(Event.sold + Event.held <= capacity)
    changed = db.session.execute(
        update(Event).where(*condition).values(capacity=capacity).execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        taken = db.session.execute(select(Event.sold + Event.held).where(Event.id == event_id)).scalar_one()
        raise CapacityBelowTaken(taken, field="capacity")


_PUT_BACK_TICKET_TYPE = (
    update(TicketType)
    .where(TicketType.id == bindparam("ticket_type_id"), TicketType.sold >= bindparam("n", type_=Integer))
    .values(sold=TicketType.sold - bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)
_PUT_BACK_EVENT = (
    update(Event)
    .where(Event.id == bindparam("event_id"), Event.sold >= bindparam("n", type_=Integer))
    .values(sold=Event.sold - bindparam("n", type_=Integer))
    .execution_options(synchronize_session=False)
)


class NotSold(RuntimeError):
    """``put_back`` was asked to return more than is sold: a bug above."""


def put_back(quantities: Mapping[TicketType, int]) -> None:
    """Return ``n`` sold tickets of each ticket type (and of its event) to stock: a
    refunded or cancelled ticket back on sale. One conditional UPDATE per row, in
    ``hold``'s lock order, never below zero (``NotSold``, the caller rolls back): a buyer
    racing for the freed place is serialised on the row lock with it, so ``sold + held``
    stays within capacity at every commit, for the type and the event."""
    _move_each(quantities, "put_back", _PUT_BACK_TICKET_TYPE, _PUT_BACK_EVENT, NotSold, "sold")
