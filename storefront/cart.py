"""The buyer's cart and its reservation.

A cart is found by a random token kept in the browser's session cookie. While it is
``active`` and ``expires_at`` lies ahead, its items are held stock. Each change
starts by locking the cart row with a guarded UPDATE
(``... WHERE status = 'active' AND expires_at > now``): a cart whose time ran out
can no longer be changed, only released, and its release happens exactly once
because it is itself a guarded UPDATE of the status.

Holding more tickets restarts the hold timer; lowering or removing does not.

Each change is a small command (``AddTickets``, ``SetQuantity``, ``RemoveLine``,
``EmptyCart``, ``ReleaseIfLapsed``) that runs inside one transaction;
``storefront.cart_changes.change_cart`` runs it and owns the retry policy.

The token is replaced when checkout starts (``storefront.checkout``) and when the
cart becomes an order (``convert``): a cookie planted in a buyer's browser before
then no longer reaches the cart, its payment or its order.
"""

from __future__ import annotations

import contextvars
import math
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from flask import current_app
from sqlalchemy import Exists, Integer, bindparam, exists, insert, select, update
from sqlalchemy.orm import joinedload, selectinload

from . import catalog, inventory, parsing
from .allowance import Allowance
from .database import write_transaction
from .errors import (
    CartCheckingOut,
    CartHoldsOtherEvent,
    CartLapsed,
    EventNotFound,
    InvalidQuantity,
    LineNotFound,
    NothingChosen,
    NotOnSaleYet,
    OverCartLimit,
    OverPerOrderLimit,
    QuantityBelowOne,
    SalesEnded,
    SoldOut,
    TicketTypeOfOtherEvent,
    UnknownTicketType,
)
from .extensions import db
from .models import AttemptEvent, AttemptStatus, Cart, CartItem, CartStatus, Event, PaymentAttempt, TicketType, utcnow

# Above this a quantity is not a typo worth a limit message, it is bad input.
MAX_SANE_QUANTITY = 10_000


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hold_duration() -> timedelta:
    return timedelta(minutes=current_app.config["HOLD_MINUTES"])


@dataclass(frozen=True)
class CartView:
    """What a page needs to show a cart: its lines and whether they are still held."""

    cart: Cart | None
    lapsed: bool

    @property
    def items(self) -> list[CartItem]:
        return [] if self.cart is None or self.lapsed else list(self.cart.items)

    @property
    def count(self) -> int:
        return sum(item.quantity for item in self.items)

    @property
    def total_minor(self) -> int:
        return sum(item.quantity * item.ticket_type.price_minor for item in self.items)

    @property
    def currency(self) -> str | None:
        items = self.items
        return items[0].ticket_type.event.currency if items else None

    @property
    def event(self) -> Event | None:
        items = self.items
        return items[0].ticket_type.event if items else None

    @property
    def expires_at(self) -> datetime | None:
        return self.cart.expires_at if self.items else None

    @property
    def paying(self) -> bool:
        """The buyer went to payment: the hold grew to the payment page's lifetime."""
        return self.cart is not None and not self.lapsed and self.cart.status == CartStatus.CHECKING_OUT.value

    @property
    def minutes_while_paying(self) -> int:
        from .checkout import hold_minutes_while_paying

        return hold_minutes_while_paying()

    @cached_property
    def debit_failed(self) -> bool:
        """The hold ended because the bank refused the debit, not because time ran out."""
        if self.cart is None or self.cart.status != CartStatus.EXPIRED.value:
            return False
        return db.session.execute(
            select(
                select(PaymentAttempt.id)
                .join(AttemptEvent, AttemptEvent.attempt_id == PaymentAttempt.id)
                .where(
                    PaymentAttempt.cart_id == self.cart.id,
                    PaymentAttempt.status == AttemptStatus.FAILED.value,
                    AttemptEvent.to_status == AttemptStatus.PROCESSING.value,
                )
                .exists()
            )
        ).scalar_one()

    def seconds_left(self, now: datetime | None = None) -> int:
        if self.expires_at is None:
            return 0
        # Rounded up, so the page's countdown never ends before the hold does.
        return max(0, math.ceil((self.expires_at - (now or utcnow())).total_seconds()))


# The statements of the hot path (event page, add to cart), built once: building
# them and their cache keys anew each time cost more than running them (bench/REPORT.md).
_LINES_WITH_EVENT = joinedload(Cart.items).joinedload(CartItem.ticket_type).joinedload(TicketType.event)
_CART_TO_VIEW = select(Cart).where(Cart.token == bindparam("token")).options(_LINES_WITH_EVENT)
# The same with every ticket type of the cart's event: a cart change answers the cart
# and that event's availability, from this one query.
_CART_AND_EVENT_TO_VIEW = (
    select(Cart).where(Cart.token == bindparam("token")).options(_LINES_WITH_EVENT.joinedload(Event.ticket_types))
)


def view_cart(token: str | None, now: datetime | None = None, *, with_event_ticket_types: bool = False) -> CartView:
    """Read the cart for display (no writes); with all ticket types of its event loaded
    too (``cart.event.ticket_types``) when asked."""
    if not token:
        return CartView(None, False)
    now = now or utcnow()
    # One query (joined), whatever the number of lines.
    statement = _CART_AND_EVENT_TO_VIEW if with_event_ticket_types else _CART_TO_VIEW
    cart = db.session.execute(statement, {"token": token}).unique().scalar_one_or_none()
    if cart is None or cart.status == CartStatus.CONVERTED.value:
        return CartView(None, False)
    # A cart being paid for still holds its tickets (until its Checkout Session expires).
    lapsed = cart.status == CartStatus.EXPIRED.value or (
        cart.status in _HOLDING and cart.expires_at <= now and bool(cart.items)
    )
    return CartView(cart, lapsed)


_HOLDING = (CartStatus.ACTIVE.value, CartStatus.CHECKING_OUT.value)


def parse_quantity(raw: str | None, *, allow_zero: bool) -> int:
    """A quantity typed by a buyer, as an int, or ``InvalidQuantity``."""
    if raw is None or not raw.strip():
        if allow_zero:
            return 0
        raise InvalidQuantity(raw)
    n = parsing.ascii_int(raw.strip(), max_digits=6)
    if n == 0 and not allow_zero:
        raise QuantityBelowOne(raw)
    if n is None or n > MAX_SANE_QUANTITY:
        raise InvalidQuantity(raw)
    return n


# --- the changes of a cart ----------------------------------------------------------
#
# Each change is a small command: built from the buyer's input (bad input is refused
# here, before any transaction), then ``apply``-ed inside one write transaction by
# ``storefront.cart_changes.change_cart``, which owns the retry policy. ``apply``
# raises a ``StorefrontError`` and its transaction is rolled back if the change
# cannot be made whole.


class CartChange:
    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> str | bool | None:
        raise NotImplementedError


_payment_closed_assumed: contextvars.ContextVar[bool] = contextvars.ContextVar("payment_closed", default=False)


@contextmanager
def as_if_payment_closed() -> Iterator[None]:
    """Inside it, a cart being paid for can be changed as if its payment were closed
    (for a rehearsal: ``cart_changes`` learns what a change would refuse before it
    closes anything at Stripe)."""
    token = _payment_closed_assumed.set(True)
    try:
        yield
    finally:
        _payment_closed_assumed.reset(token)


@dataclass(frozen=True)
class AddTickets(CartChange):
    """Hold more tickets of one event: ``{ticket_type_id: n}``. Applied, returns the
    token of the cart now holding them: the same one, or a new cart's if there was
    none or the old one lapsed."""

    event_slug: str
    quantities: Mapping[int, int]

    def __post_init__(self) -> None:
        wanted = {tt_id: n for tt_id, n in self.quantities.items() if n}
        if any(n < 0 or n > MAX_SANE_QUANTITY for n in wanted.values()):
            raise InvalidQuantity()
        if not wanted:
            raise NothingChosen()
        object.__setattr__(self, "quantities", wanted)  # without the lines of 0

    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> str:
        return _add(token, self.event_slug, self.quantities, now, allowance)


@dataclass(frozen=True)
class SetQuantity(CartChange):
    """Change one line to ``quantity`` (at least 1; removing is ``RemoveLine``)."""

    line_id: int
    quantity: int

    def __post_init__(self) -> None:
        if self.quantity == 0:
            raise QuantityBelowOne("0")
        if self.quantity < 1 or self.quantity > MAX_SANE_QUANTITY:
            raise InvalidQuantity(str(self.quantity))

    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> None:
        _set(token, self.line_id, self.quantity, now, allowance)


@dataclass(frozen=True)
class RemoveLine(CartChange):
    line_id: int

    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> None:
        item = _line_of(_lock_live_cart(token, now, extend=False), self.line_id)
        inventory.release({item.ticket_type: item.quantity})
        db.session.delete(item)


@dataclass(frozen=True)
class EmptyCart(CartChange):
    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> None:
        items = items_of(_lock_live_cart(token, now, extend=False).id)
        inventory.release({item.ticket_type: item.quantity for item in items})
        for item in items:
            db.session.delete(item)


@dataclass(frozen=True)
class ReleaseIfLapsed(CartChange):
    """The countdown's end: give the tickets back if the hold really lapsed. Applied,
    returns whether this call released them (idempotent)."""

    def apply(self, token: str | None, now: datetime, allowance: Allowance) -> bool:
        return _release_if_lapsed(token, now)


def release_if_lapsed(token: str | None, now: datetime | None = None) -> bool:
    """``ReleaseIfLapsed`` in a transaction of its own (a lapsed cart's release after
    the change that found it lapsed was rolled back)."""
    if not token:
        return False
    with write_transaction(durable=False):
        return _release_if_lapsed(token, now or utcnow())


def _release_if_lapsed(token: str | None, now: datetime) -> bool:
    if not token:
        return False
    cart_id = db.session.execute(select(Cart.id).where(Cart.token == token)).scalar_one_or_none()
    return cart_id is not None and _expire(cart_id, now)


# Carts whose hold lapsed, oldest first; narrowed to those holding some ticket types
# or some event when a buyer ran short (built once: the sold-out path runs them).
_LAPSED = (
    select(Cart.id)
    .where(Cart.status == CartStatus.ACTIVE.value, Cart.expires_at <= bindparam("now"))
    .order_by(Cart.expires_at)
    .limit(bindparam("limit"))
)
_LAPSED_HOLDING_TYPES = _LAPSED.where(
    Cart.id.in_(
        select(CartItem.cart_id).where(CartItem.ticket_type_id.in_(bindparam("ticket_type_ids", expanding=True)))
    )
)
_LAPSED_HOLDING_EVENT = _LAPSED.where(
    Cart.id.in_(
        select(CartItem.cart_id)
        .join(TicketType, TicketType.id == CartItem.ticket_type_id)
        .where(TicketType.event_id == bindparam("event_id"))
    )
)


def release_lapsed_holds(
    now: datetime | None = None,
    *,
    ticket_type_ids: list[int] | None = None,
    event_id: int | None = None,
    limit: int = 500,
) -> int:
    """Release carts whose hold lapsed (the sweep). Returns how many were released.

    Narrowed to carts holding the given ticket types or event when called lazily on
    a shortage. One short transaction per cart, so a sweep never blocks buyers long.
    """
    now = now or utcnow()
    params = {"now": now, "limit": limit}
    if ticket_type_ids is not None:
        query, params["ticket_type_ids"] = _LAPSED_HOLDING_TYPES, ticket_type_ids
    elif event_id is not None:
        query, params["event_id"] = _LAPSED_HOLDING_EVENT, event_id
    else:
        query = _LAPSED
    cart_ids = list(db.session.execute(query, params).scalars())
    if not cart_ids:
        # Nothing lapsed (or another sweep got there first): the read goes on, so the
        # answer that follows reads on this connection and transaction.
        return 0
    db.session.rollback()
    released = 0
    for cart_id in cart_ids:
        with write_transaction(durable=False):
            released += _expire(cart_id, now)
    return released


# --- inside the change's transaction ----------------------------------------------------


def _lapsed_holders(*where) -> Exists:
    return exists().where(
        CartItem.cart_id == Cart.id, Cart.status == CartStatus.ACTIVE.value, Cart.expires_at <= bindparam("now"), *where
    )


# Asked in the transaction that ran short (one query, so refusing a buyer stays cheap):
# do lapsed carts hold this ticket type or event, and how many are left now?
_SHORT_OF_TYPE = (
    select(
        _lapsed_holders(CartItem.ticket_type_id == bindparam("ticket_type_id")),
        TicketType.capacity - TicketType.sold - TicketType.held,
        Event.capacity - Event.sold - Event.held,
    )
    .join(Event, Event.id == TicketType.event_id)
    .where(TicketType.id == bindparam("ticket_type_id"))
)
_SHORT_OF_EVENT = select(
    _lapsed_holders(
        CartItem.ticket_type_id.in_(select(TicketType.id).where(TicketType.event_id == bindparam("event_id")))
    ),
    Event.capacity - Event.sold - Event.held,
).where(Event.id == bindparam("event_id"))


def lapsed_holds_may_help(short: SoldOut, now: datetime) -> bool:
    """Lapsed carts hold what ran short, or more is left than when the hold failed:
    another buyer released stock in between, typically the very lapsed cart this
    buyer would have found. Without the second test, every buyer but the one whose
    sweep won would be told "sold out" while the tickets were back on sale."""
    if short.ticket_type_id is not None:
        lapsed, *lefts = db.session.execute(_SHORT_OF_TYPE, {"ticket_type_id": short.ticket_type_id, "now": now}).one()
    elif short.event_id is not None:
        lapsed, *lefts = db.session.execute(_SHORT_OF_EVENT, {"event_id": short.event_id, "now": now}).one()
    else:
        return False
    return bool(lapsed) or min(x for x in lefts if x is not None) > short.left


def _add(token: str | None, event_slug: str, wanted: Mapping[int, int], now: datetime, allowance: Allowance) -> str:
    # The event with its ticket types in one query (the event page's own); ``tt.event``
    # is then found in the session without a query.
    event = catalog.published_event(event_slug)
    if event is None:
        raise EventNotFound()
    of_event = {tt.id: tt for tt in event.ticket_types if not tt.hidden}
    for tt_id in wanted:
        if tt_id not in of_event:  # bad input (or a hidden type): say which kind
            if any(tt.id == tt_id for tt in event.ticket_types):
                raise UnknownTicketType()
            exists = db.session.execute(select(TicketType.id).where(TicketType.id == tt_id)).first()
            raise TicketTypeOfOtherEvent() if exists else UnknownTicketType()
    types = {tt_id: of_event[tt_id] for tt_id in wanted}
    for tt in types.values():
        _check_sales_open(tt, now)
    # Most buyers of a flash sale end here, without locking or writing anything.
    short = inventory.shortage({types[tt_id]: n for tt_id, n in wanted.items()})
    if short is not None:
        raise short

    cart = _live_cart_or_lapsed_released(token, now)
    items = {} if cart is None else {item.ticket_type_id: item for item in items_of(cart.id)}
    other = next((item for item in items.values() if item.ticket_type.event_id != event.id), None)
    if other is not None:
        raise CartHoldsOtherEvent(other.ticket_type.event.title)

    for tt_id, n in wanted.items():
        tt = types[tt_id]
        current = items[tt_id].quantity if tt_id in items else 0
        if current + n > tt.max_per_order:
            raise OverPerOrderLimit(tt.name, tt.max_per_order)
    limit = current_app.config["MAX_TICKETS_PER_CART"]
    if sum(item.quantity for item in items.values()) + sum(wanted.values()) > limit:
        raise OverCartLimit(limit)
    # Asked only now, so a refusal for want of stock or of a valid quantity costs the
    # buyer nothing of their allowance. What was counted stays counted if the change
    # fails after all (a moving window cannot give it back): a hold that a race the
    # rows above did not show leaves short, or tickets counted before the new cart is
    # refused. The tickets are asked first: a client that ran through them is told so.
    allowance.hold(event.id, sum(wanted.values()))
    if cart is None:
        allowance.start_cart()

    # The cart's own rows first, the stock rows last: a ticket type's row stays locked
    # from its UPDATE to the COMMIT, and every other buyer of that type waits for
    # whatever runs in between.
    if cart is None:
        # Nobody else can see a new cart before it is committed, and it is rolled back
        # with the rest if the stock is gone.
        token = new_token()
        cart_id = db.session.execute(
            insert(Cart.__table__)
            .values(
                token=token,
                event_id=event.id,
                status=CartStatus.ACTIVE.value,
                expires_at=now + hold_duration(),
                created_at=now,
                updated_at=now,
            )
            .returning(Cart.__table__.c.id)
        ).scalar_one()
    else:
        token, cart_id = cart.token, cart.id
    new_lines = []
    for tt_id, n in wanted.items():
        if tt_id in items:
            db.session.execute(_GROW_LINE, {"line_id": items[tt_id].id, "n": n})
        else:
            new_lines.append({"cart_id": cart_id, "ticket_type_id": tt_id, "quantity": n})
    if new_lines:
        # Core inserts: the ORM's unit of work cost more than the rest of the hold.
        db.session.execute(insert(CartItem.__table__), new_lines)
    inventory.hold({types[tt_id]: n for tt_id, n in wanted.items()})
    return token


_GROW_LINE = (
    update(CartItem.__table__)
    .where(CartItem.__table__.c.id == bindparam("line_id"))
    .values(quantity=CartItem.__table__.c.quantity + bindparam("n", type_=Integer))
)


def _set(token: str | None, line_id: int, quantity: int, now: datetime, allowance: Allowance) -> None:
    # Lock without extending first: only a real increase restarts the timer.
    cart = _lock_live_cart(token, now, extend=False)
    item = _line_of(cart, line_id)
    tt = item.ticket_type
    delta = quantity - item.quantity
    if delta > 0:
        _check_sales_open(tt, now)
        if quantity > tt.max_per_order:
            raise OverPerOrderLimit(tt.name, tt.max_per_order)
        limit = current_app.config["MAX_TICKETS_PER_CART"]
        if sum(i.quantity for i in items_of(cart.id)) + delta > limit:
            raise OverCartLimit(limit)
        allowance.hold(tt.event_id, delta)
        inventory.hold({tt: delta})
        _extend(cart.id, now)
    elif delta < 0:
        inventory.release({tt: -delta})
    item.quantity = quantity


def _check_sales_open(tt: TicketType, now: datetime) -> None:
    start = tt.sales_start or tt.event.sales_start
    end = tt.sales_end or tt.event.sales_end
    if start is not None and now < start:
        raise NotOnSaleYet(tt.name, start, tt.event.timezone)
    if (end is not None and now >= end) or now >= tt.event.starts_at:
        raise SalesEnded(tt.name)


def _lock_live_cart(token: str | None, now: datetime, *, extend: bool) -> Cart:
    """Lock the buyer's cart if it still holds tickets' time; raise ``CartCheckingOut``
    if it is being paid for (unless ``as_if_payment_closed``), ``CartLapsed`` if its time
    ran out, ``LineNotFound`` if there is no such live cart."""
    if token:
        values = {"updated_at": now}
        if extend:
            values["expires_at"] = now + hold_duration()
        changeable = _HOLDING if _payment_closed_assumed.get() else (CartStatus.ACTIVE.value,)
        locked = db.session.execute(
            update(Cart)
            .where(Cart.token == token, Cart.status.in_(changeable), Cart.expires_at > now)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if locked == 1:
            return db.session.execute(select(Cart).where(Cart.token == token)).scalar_one()
        status = db.session.execute(select(Cart.status).where(Cart.token == token)).scalar_one_or_none()
        if status == CartStatus.CHECKING_OUT.value and status not in changeable:
            raise CartCheckingOut()
        if status in (*_HOLDING, CartStatus.EXPIRED.value):
            raise CartLapsed()
    raise LineNotFound()


def _live_cart_or_lapsed_released(token: str | None, now: datetime) -> Cart | None:
    """The buyer's cart, locked and its timer restarted; None if there is none to add
    to (never was, converted, or lapsed: a lapsed one is released here)."""
    try:
        return _lock_live_cart(token, now, extend=True)
    except LineNotFound:
        return None
    except CartLapsed:
        old_id = db.session.execute(select(Cart.id).where(Cart.token == token)).scalar_one()
        _expire(old_id, now)
        return None


def _extend(cart_id: int, now: datetime) -> None:
    db.session.execute(
        update(Cart)
        .where(Cart.id == cart_id)
        .values(expires_at=now + hold_duration())
        .execution_options(synchronize_session=False)
    )


def items_of(cart_id: int) -> list[CartItem]:
    return list(
        db.session.execute(
            select(CartItem)
            .where(CartItem.cart_id == cart_id)
            .options(selectinload(CartItem.ticket_type).selectinload(TicketType.event))
            .order_by(CartItem.id)
        ).scalars()
    )


def _line_of(cart: Cart, line_id: int) -> CartItem:
    item = db.session.execute(
        select(CartItem)
        .where(CartItem.id == line_id, CartItem.cart_id == cart.id)
        .options(selectinload(CartItem.ticket_type).selectinload(TicketType.event))
    ).scalar_one_or_none()
    if item is None:
        raise LineNotFound()
    return item


def _expire(cart_id: int, now: datetime) -> bool:
    """Mark a lapsed cart expired and give its stock back, once. True if this call did it."""
    expired = db.session.execute(
        update(Cart)
        .where(Cart.id == cart_id, Cart.status == CartStatus.ACTIVE.value, Cart.expires_at <= now)
        .values(status=CartStatus.EXPIRED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if expired != 1:
        return False
    items = items_of(cart_id)
    inventory.release({item.ticket_type: item.quantity for item in items})
    return True


# --- for checkout and fulfilment (inside their transactions) ---------------------------------


def release_checking_out(cart_id: int, now: datetime) -> bool:
    """A cart whose payment ended without money (session expired, bank debit failed):
    mark it expired and give its stock back, once. True if this call did it."""
    released = db.session.execute(
        update(Cart)
        .where(Cart.id == cart_id, Cart.status == CartStatus.CHECKING_OUT.value)
        .values(status=CartStatus.EXPIRED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        return False
    items = items_of(cart_id)
    inventory.release({item.ticket_type: item.quantity for item in items})
    return True


def convert(cart_id: int, now: datetime) -> None:
    """The cart became an order: mark it converted, and give it a token nobody holds,
    so the cookie that shopped with it no longer reaches it. (The success page knows
    the paying browser by the Checkout Session it started: ``checkout.payment_state``.)"""
    db.session.execute(
        update(Cart)
        .where(Cart.id == cart_id)
        .values(status=CartStatus.CONVERTED.value, token=new_token(), updated_at=now)
        .execution_options(synchronize_session=False)
    )


def lock_cart_row(cart_id: int, now: datetime) -> str | None:
    """Lock a cart's row (first, as every stock change does) whatever its status;
    returns the status, None if there is no such cart."""
    db.session.execute(
        update(Cart).where(Cart.id == cart_id).values(updated_at=now).execution_options(synchronize_session=False)
    )
    return db.session.execute(select(Cart.status).where(Cart.id == cart_id)).scalar_one_or_none()
