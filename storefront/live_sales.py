"""The live on-sale view of one event: tickets held and sold, sales per minute, payments
in flight, read often (every few seconds, by every organiser watching) during the very
minutes the shop is busiest.

So a reading must cost the shop little, and its cost must not grow with the event's past:

* held and sold come from the stock counters themselves (``TicketType.held`` / ``sold``,
  kept by ``inventory``): one indexed read of the event's ticket types, no count of carts
  or orders. The counter ``held`` still includes carts whose hold lapsed and that no sweep
  has released yet; those are subtracted, found through ``ix_carts_status_expires_at``
  (active carts past their time: few, as the sweep and every buyer who runs short
  release them).
* sales per minute read the orders of the last minutes only, through
  ``ix_orders_event_id_created_at_id``, and count each one's tickets through
  ``ix_tickets_order_id``.
* payments in flight read ``ix_payment_attempts_in_flight``, a partial index holding only
  the attempts still creating, open or processing: small whatever the event has had.

Four queries, each a range of an index. A reading is kept for ``LIVE_VIEW_CACHE_SECONDS``
per event in the process (it is a few numbers, read-only, and the same for every member who
may see the event), so N organisers watching cost about one reading per process per period.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, func, select

from .extensions import db
from .models import AttemptStatus, Cart, CartItem, CartStatus, Event, Order, PaymentAttempt, Ticket, TicketType, utcnow

MINUTES = 15
IN_FLIGHT = (AttemptStatus.CREATING, AttemptStatus.OPEN, AttemptStatus.PROCESSING)


@dataclass(frozen=True)
class TypeLine:
    id: int
    name: str
    capacity: int
    sold: int
    held: int  # live holds only: the counter less the lapsed holds not released yet
    lapsed: int  # held by carts whose time ran out, until they are released

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.sold - self.held - self.lapsed)


@dataclass(frozen=True)
class Minute:
    starts_at: datetime  # UTC, on the minute
    tickets: int
    orders: int


@dataclass(frozen=True)
class InFlight:
    status: str
    count: int
    amount_minor: int


@dataclass(frozen=True)
class LiveSales:
    """One reading of an event's sale, as of ``read_at``."""

    read_at: datetime
    types: tuple[TypeLine, ...]
    capacity: int
    minutes: tuple[Minute, ...]  # oldest first, the current (partial) minute last
    in_flight: tuple[InFlight, ...]  # one per status in IN_FLIGHT, zeros included

    @property
    def sold(self) -> int:
        return sum(t.sold for t in self.types)

    @property
    def held(self) -> int:
        return sum(t.held for t in self.types)

    @property
    def lapsed(self) -> int:
        return sum(t.lapsed for t in self.types)

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.sold - self.held - self.lapsed)

    @property
    def payments_in_flight(self) -> int:
        return sum(f.count for f in self.in_flight)

    @property
    def amount_in_flight_minor(self) -> int:
        return sum(f.amount_minor for f in self.in_flight)

    @property
    def busiest_minute(self) -> int:
        return max((m.tickets for m in self.minutes), default=0)


# Built once (they run every few seconds per watched event).
_TYPES = (
    select(TicketType.id, TicketType.name, TicketType.capacity, TicketType.sold, TicketType.held)
    .where(TicketType.event_id == bindparam("event_id"))
    .order_by(TicketType.position, TicketType.id)
)
_LAPSED = (
    select(CartItem.ticket_type_id, func.sum(CartItem.quantity))
    .join(Cart, Cart.id == CartItem.cart_id)
    .where(
        Cart.status == CartStatus.ACTIVE.value,
        Cart.expires_at <= bindparam("now"),
        CartItem.ticket_type_id.in_(bindparam("ticket_type_ids", expanding=True)),
    )
    .group_by(CartItem.ticket_type_id)
)
# Each recent order's tickets counted by its own lookup of ``ix_tickets_order_id`` (a
# correlated subquery): a join let PostgreSQL hash the event's whole tickets table when it
# was small, a cost that would grow with the sale's past.
_RECENT_ORDERS = select(
    Order.created_at,
    select(func.count(Ticket.id)).where(Ticket.order_id == Order.id).scalar_subquery(),
).where(Order.event_id == bindparam("event_id"), Order.created_at >= bindparam("since"))
_IN_FLIGHT = (
    select(PaymentAttempt.status, func.count(), func.coalesce(func.sum(PaymentAttempt.amount_minor), 0))
    .where(
        PaymentAttempt.event_id == bindparam("event_id"),
        PaymentAttempt.status.in_([s.value for s in IN_FLIGHT]),
    )
    .group_by(PaymentAttempt.status)
)


def read(event: Event, now: datetime | None = None) -> LiveSales:
    """The event's sale as it stands: four indexed queries, no write."""
    now = now or utcnow()
    session = db.session
    rows = session.execute(_TYPES, {"event_id": event.id}).all()
    lapsed: dict[int, int] = {}
    if rows:
        lapsed = {
            tt_id: int(n)
            for tt_id, n in session.execute(_LAPSED, {"now": now, "ticket_type_ids": [r.id for r in rows]}).all()
        }
    types = tuple(
        TypeLine(
            id=r.id,
            name=r.name,
            capacity=r.capacity,
            sold=r.sold,
            held=max(0, r.held - lapsed.get(r.id, 0)),
            lapsed=min(r.held, lapsed.get(r.id, 0)),
        )
        for r in rows
    )
    capacity = sum(t.capacity for t in types)
    if event.capacity is not None:
        capacity = min(capacity, event.capacity)

    this_minute = now.replace(second=0, microsecond=0)
    first = this_minute - timedelta(minutes=MINUTES - 1)
    tickets = dict.fromkeys(range(MINUTES), 0)
    orders = dict.fromkeys(range(MINUTES), 0)
    for created_at, n in session.execute(_RECENT_ORDERS, {"event_id": event.id, "since": first}).all():
        index = int((created_at - first).total_seconds() // 60)
        if 0 <= index < MINUTES:
            tickets[index] += n
            orders[index] += 1
    minutes = tuple(
        Minute(starts_at=first + timedelta(minutes=i), tickets=tickets[i], orders=orders[i]) for i in range(MINUTES)
    )

    found = {status: (n, int(amount)) for status, n, amount in session.execute(_IN_FLIGHT, {"event_id": event.id})}
    in_flight = tuple(InFlight(s.value, *found.get(s.value, (0, 0))) for s in IN_FLIGHT)
    return LiveSales(read_at=now, types=types, capacity=capacity, minutes=minutes, in_flight=in_flight)


class _Cache:
    """Readings per event id, each kept ``seconds``; in the process (one per app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[int, tuple[float, LiveSales]] = {}

    def get(self, event_id: int, seconds: float) -> LiveSales | None:
        with self._lock:
            kept = self._readings.get(event_id)
        if kept is None or time.monotonic() - kept[0] >= seconds:
            return None
        return kept[1]

    def put(self, event_id: int, reading: LiveSales) -> None:
        with self._lock:
            if len(self._readings) > 1000:  # events watched once and never again
                self._readings.clear()
            self._readings[event_id] = (time.monotonic(), reading)


def read_cached(event: Event) -> LiveSales:
    """``read``, or the reading of less than ``LIVE_VIEW_CACHE_SECONDS`` ago for this event.

    Watchers a couple of seconds apart see the same numbers; two requests that miss at once
    both read (no lock held across a query), which costs a reading, never a wrong answer."""
    seconds = float(current_app.config.get("LIVE_VIEW_CACHE_SECONDS", 0))
    if seconds <= 0:
        return read(event)
    cache = current_app.extensions.setdefault("live_sales_cache", _Cache())
    reading = cache.get(event.id, seconds)
    if reading is None:
        reading = read(event)
        cache.put(event.id, reading)
    return reading
