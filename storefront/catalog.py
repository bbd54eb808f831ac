"""Reading events and ticket types for the shop pages, and what state each is in."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload, selectinload

from . import inventory
from .extensions import db
from .models import Event, EventStatus, TicketType, utcnow


class SaleState(enum.StrEnum):
    ON_SALE = "on_sale"
    LOW = "low"  # on sale, "only N left"
    SOLD_OUT = "sold_out"
    NOT_YET = "not_yet"
    ENDED = "ended"


@dataclass(frozen=True)
class Availability:
    state: SaleState
    left: int
    opens_at: datetime | None = None

    @property
    def buyable(self) -> bool:
        return self.state in (SaleState.ON_SALE, SaleState.LOW)


class EventState(enum.StrEnum):
    """Where an event stands, as its organiser reads it in the events list."""

    DRAFT = "draft"
    CANCELLED = "cancelled"
    PAST = "past"
    NOT_YET = "not_yet"  # published, no ticket type on sale yet
    ON_SALE = "on_sale"
    SOLD_OUT = "sold_out"
    SALES_ENDED = "sales_ended"  # published, not started, no more sales


def event_state(event: Event, now: datetime | None = None) -> EventState:
    """The one place that decides an event's state, from its loaded ticket types (no query)."""
    now = now or utcnow()
    if event.status == EventStatus.CANCELLED.value:
        return EventState.CANCELLED
    if now >= (event.ends_at or event.starts_at):
        return EventState.PAST
    if event.status == EventStatus.DRAFT.value:
        return EventState.DRAFT
    states = {a.state for a in availabilities([tt for tt in event.ticket_types if not tt.hidden], 0, now).values()}
    if states & {SaleState.ON_SALE, SaleState.LOW}:
        return EventState.ON_SALE
    if SaleState.NOT_YET in states:
        return EventState.NOT_YET
    if SaleState.SOLD_OUT in states:
        return EventState.SOLD_OUT
    return EventState.SALES_ENDED


def upcoming_events(now: datetime | None = None) -> list[Event]:
    now = now or utcnow()
    return list(
        db.session.execute(
            select(Event)
            .where(Event.status == EventStatus.PUBLISHED.value, Event.starts_at > now)
            .order_by(Event.starts_at)
            .options(selectinload(Event.ticket_types))
        ).scalars()
    )


# Built once: the event page and every cart answer run it (bench/REPORT.md).
_PUBLISHED_EVENT = (
    select(Event)
    .where(Event.slug == bindparam("slug"), Event.status == EventStatus.PUBLISHED.value)
    .options(joinedload(Event.ticket_types), joinedload(Event.organiser))
)


def published_event(slug: str) -> Event | None:
    """The event with its ticket types: one query (a join), whatever their number.

    Joined rather than "select in" loading: the event page and every cart answer
    read this, and one round trip instead of two is measurably cheaper under load
    (bench/REPORT.md).
    """
    return db.session.execute(_PUBLISHED_EVENT, {"slug": slug}).unique().scalar_one_or_none()


def availability(tt: TicketType, left: int, low_threshold: int, now: datetime | None = None) -> Availability:
    now = now or utcnow()
    start = tt.sales_start or tt.event.sales_start
    end = tt.sales_end or tt.event.sales_end
    if start is not None and now < start:
        return Availability(SaleState.NOT_YET, left, opens_at=start)
    if (end is not None and now >= end) or now >= tt.event.starts_at:
        return Availability(SaleState.ENDED, left)
    if left <= 0:
        return Availability(SaleState.SOLD_OUT, 0)
    if left <= low_threshold:
        return Availability(SaleState.LOW, left)
    return Availability(SaleState.ON_SALE, left)


def availabilities(
    ticket_types: list[TicketType], low_threshold: int, now: datetime | None = None
) -> dict[int, Availability]:
    now = now or utcnow()
    left = inventory.left_for(ticket_types)
    return {tt.id: availability(tt, left[tt.id], low_threshold, now) for tt in ticket_types}


@dataclass(frozen=True)
class EventAvailability:
    """Where an event's sale stands for a buyer, from its visible ticket types: the
    events list's pill, and the event page's Add button (active only when buyable)."""

    state: SaleState
    left: int = 0  # tickets left across the types on sale (capped by the event's capacity)
    opens_at: datetime | None = None  # NOT_YET: the earliest opening

    @property
    def buyable(self) -> bool:
        return self.state in (SaleState.ON_SALE, SaleState.LOW)


def few_left(left: int, capacity: int, low_threshold: int) -> bool:
    """Few left for a whole event: at most ``low_threshold`` tickets, or at most a tenth
    of the capacity of the types on sale."""
    return left <= low_threshold or left * 10 <= capacity


def event_availability(
    event: Event, per_type: dict[int, Availability] | None, low_threshold: int, now: datetime | None = None
) -> EventAvailability | None:
    """The event's sale state from its loaded ticket types (no query); None when it shows
    no ticket type. ``per_type`` is ``availabilities(...)`` when the caller has it."""
    visible = on_sale_types(event)
    if not visible:
        return None
    per_type = per_type if per_type is not None else availabilities(visible, low_threshold, now)
    states = [(tt, per_type[tt.id]) for tt in visible]
    buyable = [(tt, a) for tt, a in states if a.buyable]
    if buyable:
        left = sum(a.left for _, a in buyable)
        capacity = sum(tt.capacity for tt, _ in buyable)
        if event.capacity is not None:
            left = min(left, max(0, event.capacity - event.sold - event.held))
            capacity = min(capacity, event.capacity)
        state = SaleState.LOW if few_left(left, capacity, low_threshold) else SaleState.ON_SALE
        return EventAvailability(state, left)
    opening = [a.opens_at for _, a in states if a.state == SaleState.NOT_YET]
    if opening:
        return EventAvailability(SaleState.NOT_YET, opens_at=min(opening))
    if any(a.state == SaleState.SOLD_OUT for _, a in states):
        return EventAvailability(SaleState.SOLD_OUT)
    return EventAvailability(SaleState.ENDED)


def on_sale_types(event: Event) -> list[TicketType]:
    """The ticket types buyers see (hidden ones are neither shown nor sold)."""
    return [tt for tt in event.ticket_types if not tt.hidden]


def lowest_price_minor(event: Event) -> int | None:
    prices = [tt.price_minor for tt in on_sale_types(event)]
    return min(prices) if prices else None
