"""Events as the back office makes and changes them; the one owner of an event's status.

An event's life (``TRANSITIONS``): made as a draft; published (on the shop) and back to
draft as often as wanted; cancelled from either, for good. Publishing needs a ticket
type buyers can see and a sales window that opens before it ends and before the event;
cancelling is refused while payments are in progress (one could complete after the
cancellation); an event with paid orders is cancelled and a cancellation run recorded in
the same transaction (``storefront.cancellations`` refunds them in the background).
Cancelling takes the event off the shop at once: no cart can add its tickets, and no
checkout of a cart holding them can start (``checkout``); holds already made lapse.

Invariants kept here:

* Every change first locks the event's ticket types' rows and then the event's
  (``locked_event``, found within the organiser, in the buyers' lock order): two changes
  of one event are serialised, and a buyer's hold (which updates the same rows) waits
  for a change of capacity or currency, or the change waits for the hold.
* The event-wide capacity changes through ``inventory.set_event_capacity`` only: never
  below what is sold and held.
* The currency changes only while nothing of the event is sold or held; the ticket
  types' prices keep their amount (25.00 EUR becomes 25.00 GBP), and a price the new
  currency cannot charge (12.50 to JPY) refuses the change.
* Every change writes its audit entry (fields before and after) in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from . import audit, cancellations, inventory, local_time, money
from .audit import Actor
from .catalog import EventState, event_state
from .database import write_transaction
from .errors import InvalidAmount
from .event_errors import (
    CannotCancel,
    CannotPublish,
    CurrencyLocked,
    EndsBeforeStart,
    EventLocked,
    EventSlugTaken,
    InvalidEventSlug,
    PriceNotInCurrency,
    SalesNeverOpen,
    SalesWindowInvalid,
)
from .extensions import db
from .models import (
    AttemptStatus,
    Cart,
    CartItem,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    PaymentAttempt,
    TicketType,
    utcnow,
)
from .staff_models import Membership

TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    EventStatus.DRAFT: frozenset({EventStatus.PUBLISHED, EventStatus.CANCELLED}),
    EventStatus.PUBLISHED: frozenset({EventStatus.DRAFT, EventStatus.CANCELLED}),
    EventStatus.CANCELLED: frozenset(),
}
SLUG_MAX = 120
# Taken by the back office's own pages (/admin/o/<organiser>/events/new).
RESERVED_SLUGS = frozenset({"new"})


def valid_slug(raw: str | None) -> str:
    slug = (raw or "").strip().lower()
    if not (2 <= len(slug) <= SLUG_MAX) or not slug[0].isascii() or not slug[0].isalnum():
        raise InvalidEventSlug()
    if any(not (c.isascii() and (c.isalnum() or c == "-")) for c in slug) or slug in RESERVED_SLUGS:
        raise InvalidEventSlug()
    return slug


@dataclass(frozen=True)
class EventFields:
    """An event as the form gives it: times as the venue's wall clock reads them."""

    title: str
    slug: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime | None
    timezone: str
    currency: str
    sales_start: datetime | None
    sales_end: datetime | None
    capacity: int | None

    def resolved(self) -> dict:
        """The columns' values: slug checked, times in UTC, the window checked."""
        tz = self.timezone
        values = {
            "title": " ".join(self.title.split()),
            "slug": valid_slug(self.slug),
            "description": self.description.strip(),
            "venue": " ".join(self.venue.split()),
            "timezone": tz,
            "currency": money.stripe_currency(self.currency),
            "starts_at": local_time.to_utc(self.starts_at, tz, "starts_at"),
            "ends_at": local_time.to_utc(self.ends_at, tz, "ends_at"),
            "sales_start": local_time.to_utc(self.sales_start, tz, "sales_start"),
            "sales_end": local_time.to_utc(self.sales_end, tz, "sales_end"),
        }
        if values["ends_at"] is not None and values["ends_at"] <= values["starts_at"]:
            raise EndsBeforeStart()
        check_sales_window(values["sales_start"], values["sales_end"], values["starts_at"])
        return values


def check_sales_window(start: datetime | None, end: datetime | None, event_starts: datetime) -> None:
    if start is not None and end is not None and end <= start:
        raise SalesWindowInvalid()
    if start is not None and start >= event_starts:
        raise SalesNeverOpen()


def _snapshot(event: Event) -> dict:
    return {
        "title": event.title,
        "slug": event.slug,
        "description": event.description,
        "venue": event.venue,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "timezone": event.timezone,
        "currency": event.currency,
        "sales_start": event.sales_start,
        "sales_end": event.sales_end,
        "capacity": event.capacity,
    }


def _changed(before: dict, after: dict) -> tuple[dict, dict]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _slug_free(slug: str, except_id: int | None = None) -> None:
    query = select(Event.id).where(Event.slug == slug)
    if except_id is not None:
        query = query.where(Event.id != except_id)
    if db.session.execute(query).first():
        raise EventSlugTaken()


def _flush_unique_slug() -> None:
    """Flush; a slug taken by a concurrent change between our check and now is the same refusal."""
    try:
        db.session.flush()
    except IntegrityError as error:
        if "slug" in str(error.orig).lower():
            raise EventSlugTaken() from None
        raise


def locked_event(organiser_id: int, event_id: int) -> Event:
    """The organiser's event, with its ticket types' rows and its own locked for the rest
    of the transaction: the types first, by id, then the event, the order in which a
    buyer's hold takes them (``inventory``), so the two never wait on each other in a cycle.

    FOR NO KEY UPDATE, not FOR UPDATE: a buyer's cart INSERT takes a KEY SHARE lock on the
    event's row (the ``carts.event_id`` foreign key) before its hold waits on the types'
    rows; FOR UPDATE would wait on that KEY SHARE while holding the types, a deadlock."""
    db.session.execute(
        select(TicketType.id)
        .join(Event, Event.id == TicketType.event_id)
        .where(Event.id == event_id, Event.organiser_id == organiser_id)
        .order_by(TicketType.id)
        .with_for_update(of=TicketType, key_share=True)
    ).all()
    event = db.session.execute(
        select(Event).where(Event.id == event_id, Event.organiser_id == organiser_id).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if event is None:
        raise LookupError(event_id)  # the view found it a moment ago in the same organiser
    return event


def _visible_to(membership: Membership | None, event_id: int) -> None:
    """A member limited to some events sees the events they make (pretix does the same)."""
    from . import teams
    from .staff_models import membership_events

    if membership is not None and not teams.sees_all_events(membership):
        db.session.execute(insert(membership_events).values(membership_id=membership.id, event_id=event_id))


def create_event(organiser_id: int, fields: EventFields, actor: Actor, membership: Membership | None = None) -> Event:
    """A new draft event of the organiser (no ticket types yet); ``membership``, the
    creator's, gets to see it if it is limited to some events."""
    values = fields.resolved()
    with write_transaction():
        _slug_free(values["slug"])
        event = Event(organiser_id=organiser_id, status=EventStatus.DRAFT.value, capacity=fields.capacity, **values)
        db.session.add(event)
        _flush_unique_slug()
        _visible_to(membership, event.id)
        audit.record(
            actor,
            "event_created",
            "event",
            event.id,
            organiser_id=organiser_id,
            event_id=event.id,
            after={**_snapshot(event), "status": event.status},
        )
        event_id = event.id
    return db.session.get(Event, event_id)


def update_event(organiser_id: int, event_id: int, fields: EventFields, actor: Actor) -> Event:
    """Change an event's fields (see the module docstring for capacity and currency)."""
    values = fields.resolved()
    with write_transaction():
        event = locked_event(organiser_id, event_id)
        if event.status == EventStatus.CANCELLED.value:
            raise EventLocked()
        before = _snapshot(event)
        if values["slug"] != event.slug:
            _slug_free(values["slug"], except_id=event.id)
        if values["currency"] != event.currency:
            _change_currency(event, values["currency"])
        if fields.capacity != event.capacity:
            inventory.set_event_capacity(event.id, fields.capacity)
        for name, value in values.items():
            if name != "currency":
                setattr(event, name, value)
        _flush_unique_slug()
        db.session.refresh(event)
        changed_before, changed_after = _changed(before, _snapshot(event))
        if changed_after:
            audit.record(
                actor,
                "event_changed",
                "event",
                event.id,
                organiser_id=organiser_id,
                event_id=event.id,
                before=changed_before,
                after=changed_after,
            )
    return db.session.get(Event, event_id)


def _change_currency(event: Event, currency: str) -> None:
    if event.sold or event.held:
        raise CurrencyLocked()
    for tt in event.ticket_types:
        if tt.sold or tt.held:
            raise CurrencyLocked()
        try:
            tt.price_minor = money.to_minor(money.to_major(tt.price_minor, event.currency), currency)
        except InvalidAmount:
            raise PriceNotInCurrency(tt.name, currency) from None
    event.currency = currency


def _transition(event: Event, to: EventStatus) -> None:
    if to not in TRANSITIONS[EventStatus(event.status)]:
        raise EventLocked()
    event.status = to.value


def publish(organiser_id: int, event_id: int, actor: Actor, now: datetime | None = None) -> Event:
    """Put a draft on the shop; refused without a visible ticket type or with a sales
    window that would never open (``CannotPublish``). Publishing a published event does nothing."""
    now = now or utcnow()
    with write_transaction():
        event = locked_event(organiser_id, event_id)
        status = EventStatus(event.status)
        if status == EventStatus.CANCELLED:
            raise CannotPublish(CannotPublish.CANCELLED)
        if status == EventStatus.PUBLISHED:
            return event
        visible = [tt for tt in event.ticket_types if not tt.hidden]
        if not visible:
            raise CannotPublish(CannotPublish.NO_TICKET_TYPES)
        if event.starts_at <= now:
            raise CannotPublish(CannotPublish.PAST)
        try:
            check_sales_window(event.sales_start, event.sales_end, event.starts_at)
            for tt in visible:
                check_sales_window(
                    tt.sales_start or event.sales_start, tt.sales_end or event.sales_end, event.starts_at
                )
        except (SalesWindowInvalid, SalesNeverOpen):
            raise CannotPublish(CannotPublish.SALES_WINDOW) from None
        _transition(event, EventStatus.PUBLISHED)
        _record_status(actor, event, status)
    return db.session.get(Event, event_id)


def unpublish(organiser_id: int, event_id: int, actor: Actor) -> Event:
    """Take a published event off the shop (a draft again). Carts holding its tickets
    keep them until their hold lapses, and payments already started complete."""
    with write_transaction():
        event = locked_event(organiser_id, event_id)
        status = EventStatus(event.status)
        if status == EventStatus.DRAFT:
            return event
        _transition(event, EventStatus.DRAFT)
        _record_status(actor, event, status)
    return db.session.get(Event, event_id)


def paid_orders(event_id: int) -> int:
    return db.session.execute(
        select(func.count(Order.id)).where(
            Order.event_id == event_id,
            Order.status.in_((OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)),
        )
    ).scalar_one()


_LIVE_PAYMENTS = (AttemptStatus.CREATING.value, AttemptStatus.OPEN.value, AttemptStatus.PROCESSING.value)


def payments_in_progress(event_id: int) -> int:
    """Payment attempts that may still take money for tickets of this event."""
    carts_of_event = (
        select(CartItem.cart_id)
        .join(TicketType, TicketType.id == CartItem.ticket_type_id)
        .where(TicketType.event_id == event_id)
    )
    return db.session.execute(
        select(func.count(PaymentAttempt.id))
        .join(Cart, Cart.id == PaymentAttempt.cart_id)
        .where(PaymentAttempt.status.in_(_LIVE_PAYMENTS), Cart.id.in_(carts_of_event))
    ).scalar_one()


def cancel(organiser_id: int, event_id: int, actor: Actor) -> Event:
    """Stop the event's sales for good (see the module docstring)."""
    with write_transaction():
        event = locked_event(organiser_id, event_id)
        status = EventStatus(event.status)
        if status == EventStatus.CANCELLED:
            raise CannotCancel(CannotCancel.CANCELLED)
        if count := payments_in_progress(event.id):
            raise CannotCancel(CannotCancel.PAYMENTS_IN_PROGRESS, count)
        _transition(event, EventStatus.CANCELLED)
        _record_status(actor, event, status)
        # Its paid orders are refunded by the cancellation run, recorded here with it.
        cancellations.begin(event, actor, utcnow())
    return db.session.get(Event, event_id)


def _record_status(actor: Actor, event: Event, before: EventStatus) -> None:
    action = {
        EventStatus.PUBLISHED: "event_published",
        EventStatus.DRAFT: "event_unpublished",
        EventStatus.CANCELLED: "event_cancelled",
    }[EventStatus(event.status)]
    audit.record(
        actor,
        action,
        "event",
        event.id,
        organiser_id=event.organiser_id,
        event_id=event.id,
        before={"status": before.value},
        after={"status": event.status},
    )


def _copy_slug(slug: str) -> str:
    base = f"{slug[: SLUG_MAX - 10]}-copy"
    taken = set(db.session.execute(select(Event.slug).where(Event.slug.like(f"{base}%"))).scalars())
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def duplicate(organiser_id: int, event_id: int, actor: Actor, membership: Membership | None = None) -> Event:
    """A draft copy of the event and its ticket types, with nothing sold or held (seen by
    ``membership``, as ``create_event``)."""
    with write_transaction():
        source = locked_event(organiser_id, event_id)
        copy = Event(
            organiser_id=organiser_id,
            status=EventStatus.DRAFT.value,
            slug=_copy_slug(source.slug),
            title=f"{source.title} (copy)"[:200],
            **{k: v for k, v in _snapshot(source).items() if k not in ("slug", "title")},
            cover_image=source.cover_image,
        )
        copy.ticket_types = [
            TicketType(
                name=tt.name,
                description=tt.description,
                price_minor=tt.price_minor,
                capacity=tt.capacity,
                max_per_order=tt.max_per_order,
                sales_start=tt.sales_start,
                sales_end=tt.sales_end,
                position=tt.position,
                hidden=tt.hidden,
            )
            for tt in source.ticket_types
        ]
        db.session.add(copy)
        _flush_unique_slug()
        _visible_to(membership, copy.id)
        audit.record(
            actor,
            "event_duplicated",
            "event",
            copy.id,
            organiser_id=organiser_id,
            event_id=copy.id,
            before={"copied_from": source.slug},
            after={**_snapshot(copy), "status": copy.status},
        )
        copy_id = copy.id
    return db.session.get(Event, copy_id)


def set_cover(organiser_id: int, event_id: int, name: str | None, actor: Actor) -> Event:
    """Give the event the stored cover ``name`` (``cover_images.store``), or none."""
    with write_transaction():
        event = locked_event(organiser_id, event_id)
        if event.status == EventStatus.CANCELLED.value:
            raise EventLocked()
        before = event.cover_image
        if before == name:
            return event
        event.cover_image = name
        audit.record(
            actor,
            "cover_changed" if name else "cover_removed",
            "event",
            event.id,
            organiser_id=organiser_id,
            event_id=event.id,
            before={"cover_image": before},
            after={"cover_image": name},
        )
    return db.session.get(Event, event_id)


# --- the events list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSummary:
    event: Event
    state: EventState
    sold: int
    held: int
    capacity: int
    revenue_minor: int


def summaries(membership: Membership, now: datetime | None = None) -> list[EventSummary]:
    """The events the member may see, soonest first, with their state and figures: three
    queries, whatever the number of events."""
    from . import teams

    return _summaries([e.id for e in teams.visible_events(membership)], now or utcnow())


def summary_of(event: Event, now: datetime | None = None) -> EventSummary:
    return _summaries([event.id], now or utcnow())[0]


def _summaries(ids: list[int], now: datetime) -> list[EventSummary]:
    if not ids:
        return []
    events = list(
        db.session.execute(
            select(Event)
            .where(Event.id.in_(ids))
            .order_by(Event.starts_at, Event.id)
            .options(selectinload(Event.ticket_types))
            .execution_options(populate_existing=True)
        ).scalars()
    )
    revenue = dict(
        db.session.execute(
            select(Order.event_id, func.sum(Order.total_minor - Order.refunded_minor))
            .where(Order.event_id.in_(ids), Order.status != OrderStatus.CANCELLED.value)
            .group_by(Order.event_id)
        ).all()
    )
    result = []
    for event in events:
        capacity = sum(tt.capacity for tt in event.ticket_types)
        if event.capacity is not None:
            capacity = min(capacity, event.capacity)
        result.append(
            EventSummary(
                event=event,
                state=event_state(event, now),
                sold=sum(tt.sold for tt in event.ticket_types),
                held=sum(tt.held for tt in event.ticket_types),
                capacity=capacity,
                revenue_minor=int(revenue.get(event.id) or 0),
            )
        )
    return result
