"""The back office's reading side of orders: the order list (per event and across an
organiser's events), an order's page (its attempts' timeline, its audit history), and
the attempts that never became an order. Read only: nothing here writes.

Lists are newest first and paged by keyset on (created_at, id), never by OFFSET: a page
is "the N rows older than this one" (or newer), so a deep page costs what the first
does and a page stays the same while new orders arrive. The cursor is the row at the
page's edge, written ``<microseconds since the epoch>-<id>``; one that does not parse is
ignored with a message (``Problem``), as are an unknown status, ticket type or reason
and a date that is not one.

Search is by order code (or a ticket's code), by e-mail prefix, or by attendee-name
prefix ("ada", "lovelace", "ada love", "lovelace a"), with case and accents folded the
same way in SQL and in Python (``fold``). PostgreSQL answers each from an index of
migration 0012 (``ix_orders_buyer_email_lower``, ``ix_tickets_attendee_*_folded``,
``ix_orders_event_id_created_at_id``, ``ix_orders_created_at_id``).

Dates of the filters are days in the event's timezone for one event's list; across
events, in UTC (an organiser has no timezone of its own, and its events may have many),
which the form says.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, cast, exists, func, literal, or_, select, tuple_, union
from sqlalchemy.orm import selectinload

from . import failure_reasons, local_time, teams
from .extensions import db
from .failure_reasons import Reason
from .models import (
    AttemptEvent,
    AttemptStatus,
    Event,
    Order,
    OrderStatus,
    PaymentAttempt,
    Ticket,
    TicketType,
)
from .staff_models import AuditEntry, Membership
from .tickets import normalise_ticket_code

PAGE_SIZE = 25
MAX_QUERY = 100

# Accents folded by search, the same in SQL (translate) and Python; migration 0012's
# indexes are built on exactly this expression (a test compares the two).
FOLD_FROM = (
    "ÀÁÂÃÄÅĀĂĄÇĆČĎÈÉÊËĒĖĘĚÌÍÎÏĪĮŁÑŃŇÒÓÔÕÖØŌŐŔŘŚŠŞŤÙÚÛÜŪŮŰŲÝŸŹŻŽ"
    "àáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőŕřśšşťùúûüūůűųýÿźżž"
)
FOLD_TO = (
    "AAAAAAAAACCCDEEEEEEEEIIIIIILNNNOOOOOOOORRSSSTUUUUUUUUYYZZZ"
    "aaaaaaaaacccdeeeeeeeeiiiiiilnnnoooooooorrssstuuuuuuuuyyzzz"
)
_FOLD_TABLE = str.maketrans(FOLD_FROM, FOLD_TO)


def fold(expression):
    """The SQL of a text folded for search: accents off, then lower case."""
    return func.lower(func.translate(expression, FOLD_FROM, FOLD_TO))


def fold_text(text: str) -> str:
    return text.translate(_FOLD_TABLE).lower()


def _like_prefix(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


class Problem(enum.StrEnum):
    """A parameter that was ignored, for the page to say so."""

    STATUS = "status"
    TICKET_TYPE = "ticket_type"
    DATE_FROM = "from"
    DATE_TO = "to"
    CURSOR = "cursor"
    REASON = "reason"
    QUERY = "q"


# --- the cursor ---------------------------------------------------------------------------------

_CURSOR = re.compile(r"^([0-9]{1,17})-([0-9]{1,12})$")  # ASCII digits only (\d takes any script's)


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: int

    def encode(self) -> str:
        delta = self.created_at - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}-{self.id}"

    @classmethod
    def decode(cls, raw: str | None) -> Cursor | None:
        match = _CURSOR.match(raw or "")
        if match is None:
            return None
        micros, row_id = int(match.group(1)), int(match.group(2))
        try:
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
        except OverflowError:
            return None
        if when.year > 9000 or row_id > 2**31 - 1:
            return None
        return cls(when, row_id)

    @classmethod
    def of(cls, row) -> Cursor:
        return cls(row.created_at, row.id)


@dataclass
class Paging:
    """Which page: the rows older than ``before``, newer than ``after``, or the newest."""

    before: Cursor | None = None
    after: Cursor | None = None


@dataclass
class Page:
    rows: list
    newer: Cursor | None  # the cursor of a "Newer" link (after=), None on the newest page
    older: Cursor | None  # the cursor of an "Older" link (before=), None on the oldest page


def _keyset(query, model, paging: Paging, limit: int):
    created, ident = model.created_at, model.id
    if paging.after is not None:
        c = paging.after
        rows = list(
            db.session.execute(
                query.where(tuple_(created, ident) > tuple_(literal(c.created_at, created.type), literal(c.id)))
                .order_by(created.asc(), ident.asc())
                .limit(limit + 1)
            ).scalars()
        )
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        return Page(rows, Cursor.of(rows[0]) if more and rows else None, Cursor.of(rows[-1]) if rows else c)
    if paging.before is not None:
        c = paging.before
        # A row comparison, so PostgreSQL seeks the (…, created_at, id) index to the cursor
        # instead of filtering every newer row (SQLite has row values since 3.15).
        query = query.where(tuple_(created, ident) < tuple_(literal(c.created_at, created.type), literal(c.id)))
    rows = list(db.session.execute(query.order_by(created.desc(), ident.desc()).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    newer = None
    if paging.before is not None:
        newer = Cursor.of(rows[0]) if rows else paging.before
    return Page(rows, newer, Cursor.of(rows[-1]) if more else None)


def paging_from(args) -> tuple[Paging, list[Problem]]:
    problems: list[Problem] = []
    paging = Paging()
    for name in ("before", "after"):
        raw = args.get(name)
        if raw is None or raw == "":
            continue
        cursor = Cursor.decode(raw)
        if cursor is None:
            problems.append(Problem.CURSOR)
            continue
        setattr(paging, name, cursor)
    if paging.before is not None and paging.after is not None:
        problems.append(Problem.CURSOR)
        paging = Paging()
    return paging, problems


# --- the order list -----------------------------------------------------------------------------


@dataclass
class OrderFilters:
    q: str = ""
    status: OrderStatus | None = None
    ticket_type_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    problems: list[Problem] = field(default_factory=list)

    def as_args(self) -> dict[str, str]:
        """The filters as URL parameters (for the pages' links), without the empty ones."""
        values = {
            "q": self.q,
            "status": self.status.value if self.status else "",
            "ticket_type": str(self.ticket_type_id) if self.ticket_type_id else "",
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        return {k: v for k, v in values.items() if v}


def _date(raw: str | None) -> date | None:
    if not raw or len(raw) != 10 or not raw.isascii():
        raise ValueError(raw)
    return date.fromisoformat(raw)


def filters_from(args, ticket_types: list[TicketType] | None = None) -> OrderFilters:
    """The list's filters from the query string: what does not parse is left out and
    named in ``problems``. ``ticket_types``: the event's (the per-event list only)."""
    filters = OrderFilters()
    q = " ".join((args.get("q") or "").split())
    if len(q) > MAX_QUERY:
        filters.problems.append(Problem.QUERY)
        q = q[:MAX_QUERY]
    filters.q = q
    raw_status = args.get("status") or ""
    if raw_status:
        try:
            filters.status = OrderStatus(raw_status)
        except ValueError:
            filters.problems.append(Problem.STATUS)
    raw_type = args.get("ticket_type") or ""
    if raw_type and ticket_types is not None:
        ids = {str(tt.id): tt.id for tt in ticket_types}
        if raw_type in ids:
            filters.ticket_type_id = ids[raw_type]
        else:
            filters.problems.append(Problem.TICKET_TYPE)
    for name, problem in (("from", Problem.DATE_FROM), ("to", Problem.DATE_TO)):
        raw = args.get(name) or ""
        if not raw:
            continue
        try:
            value = _date(raw)
        except ValueError:
            filters.problems.append(problem)
            continue
        setattr(filters, "date_from" if name == "from" else "date_to", value)
    return filters


def _search_order_ids(q: str):
    """The ids of orders the text finds: by order or ticket code, e-mail prefix, or name prefix."""
    selects = []
    compact = "".join(ch for ch in q.upper() if ch not in " -")
    if compact.isalnum() and len(compact) <= 16:
        selects.append(select(Order.id).where(Order.code == compact))
        ticket_code = normalise_ticket_code(q)
        if ticket_code:
            selects.append(select(Ticket.order_id).where(Ticket.code == ticket_code))
    selects.append(select(Order.id).where(func.lower(Order.buyer_email).like(_like_prefix(q.lower()), escape="\\")))
    needle = _like_prefix(fold_text(q))
    first_last = Ticket.attendee_first_name + literal(" ") + Ticket.attendee_last_name
    last_first = Ticket.attendee_last_name + literal(" ") + Ticket.attendee_first_name
    selects.append(select(Ticket.order_id).where(fold(first_last).like(needle, escape="\\")))
    selects.append(select(Ticket.order_id).where(fold(last_first).like(needle, escape="\\")))
    return union(*selects)


def visible_event_ids(membership: Membership):
    """The ids of the member's events that they may see (a subquery)."""
    query = select(Event.id).where(Event.organiser_id == membership.organiser_id)
    if not teams.sees_all_events(membership):
        query = query.where(Event.id.in_(teams._limited_event_ids(membership.id)))
    return query


def orders(
    membership: Membership,
    filters: OrderFilters,
    paging: Paging,
    *,
    event: Event | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """A page of orders: of ``event``, or of every event of the organiser the member may see."""
    query = select(Order).options(
        selectinload(Order.tickets).selectinload(Ticket.ticket_type), selectinload(Order.event)
    )
    if event is not None:
        query = query.where(Order.event_id == event.id)
        timezone = event.timezone
    else:
        query = query.where(Order.event_id.in_(visible_event_ids(membership)))
        timezone = "UTC"
    if filters.status is not None:
        query = query.where(Order.status == filters.status.value)
    if filters.ticket_type_id is not None:
        query = query.where(
            exists().where(Ticket.order_id == Order.id, Ticket.ticket_type_id == filters.ticket_type_id)
        )
    if filters.date_from is not None:
        query = query.where(Order.created_at >= local_time.day_start(filters.date_from, timezone))
    if filters.date_to is not None:
        query = query.where(Order.created_at < local_time.day_start(filters.date_to + timedelta(days=1), timezone))
    if filters.q:
        query = query.where(Order.id.in_(_search_order_ids(filters.q)))
    return _keyset(query, Order, paging, limit)


# --- an order's page ----------------------------------------------------------------------------


def order_of_event(event_id: int, code: str) -> Order | None:
    """The event's order with this code (as stored), with its tickets and their types."""
    if not (code.isascii() and code.isalnum()) or len(code) > 16:
        return None
    return db.session.execute(
        select(Order)
        .where(Order.event_id == event_id, Order.code == code)
        .options(selectinload(Order.tickets).selectinload(Ticket.ticket_type), selectinload(Order.event))
    ).scalar_one_or_none()


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "started", "moved", "try_failed"
    to_status: str | None
    payment_intent_id: str | None
    failure: failure_reasons.Failure | None
    message: str | None


@dataclass(frozen=True)
class AttemptTimeline:
    attempt: PaymentAttempt
    entries: list[TimelineEntry]

    @property
    def failure(self) -> failure_reasons.Failure | None:
        return failure_reasons.of_attempt(self.attempt)


def timelines(cart_id: int) -> list[AttemptTimeline]:
    """Every payment attempt of the cart, oldest first, each with its timeline: when it
    started, then each move of its status and each failed try (``attempt_events``). An
    attempt older than that table shows its start and its present status only."""
    found = list(
        db.session.execute(
            select(PaymentAttempt)
            .where(PaymentAttempt.cart_id == cart_id)
            .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
        ).scalars()
    )
    events: dict[int, list[AttemptEvent]] = {a.id: [] for a in found}
    if found:
        for row in db.session.execute(
            select(AttemptEvent)
            .where(AttemptEvent.attempt_id.in_(list(events)))
            .order_by(AttemptEvent.attempt_id, AttemptEvent.id)
        ).scalars():
            events[row.attempt_id].append(row)
    result = []
    for attempt in found:
        entries = [TimelineEntry(attempt.created_at, "started", None, None, None, None)]
        rows = events[attempt.id]
        for row in rows:
            entries.append(
                TimelineEntry(
                    row.created_at,
                    row.kind,
                    row.to_status,
                    row.stripe_payment_intent_id,
                    failure_reasons.explain(row.error_code, row.decline_code, row.error_message),
                    row.error_message,
                )
            )
        if not rows and attempt.status != AttemptStatus.CREATING.value:
            entries.append(
                TimelineEntry(
                    attempt.updated_at,
                    "moved",
                    attempt.status,
                    attempt.stripe_payment_intent_id,
                    failure_reasons.of_attempt(attempt),
                    attempt.error_message,
                )
            )
        result.append(AttemptTimeline(attempt, entries))
    return result


def audit_history(order: Order) -> list[AuditEntry]:
    """The audit entries about this order, its tickets or its refunds, oldest first."""
    from .models import Refund

    ticket_ids = [str(t.id) for t in order.tickets]
    refund_ids = select(cast(Refund.id, AuditEntry.object_id.type)).where(Refund.order_id == order.id)
    return list(
        db.session.execute(
            select(AuditEntry)
            .where(
                AuditEntry.organiser_id == order.event.organiser_id,
                or_(
                    and_(AuditEntry.object_type == "order", AuditEntry.object_id == str(order.id)),
                    and_(AuditEntry.object_type == "ticket", AuditEntry.object_id.in_(ticket_ids or ["-"])),
                    and_(AuditEntry.object_type == "refund", AuditEntry.object_id.in_(refund_ids)),
                ),
            )
            .order_by(AuditEntry.id)
        ).scalars()
    )


# --- attempts without an order ------------------------------------------------------------------

# Statuses an attempt without an order can have (paid ones have their order).
UNORDERED_STATUSES = tuple(s for s in AttemptStatus if s != AttemptStatus.PAID)


@dataclass
class AttemptFilters:
    status: AttemptStatus | None = None
    reason: Reason | None = None
    problems: list[Problem] = field(default_factory=list)

    def as_args(self) -> dict[str, str]:
        values = {
            "status": self.status.value if self.status else "",
            "reason": self.reason.value if self.reason else "",
        }
        return {k: v for k, v in values.items() if v}


def attempt_filters_from(args) -> AttemptFilters:
    filters = AttemptFilters()
    raw_status, raw_reason = args.get("status") or "", args.get("reason") or ""
    if raw_status:
        try:
            filters.status = AttemptStatus(raw_status)
        except ValueError:
            filters.problems.append(Problem.STATUS)
    if raw_reason:
        try:
            filters.reason = Reason(raw_reason)
        except ValueError:
            filters.problems.append(Problem.REASON)
    return filters


def reason_condition(reason: Reason):
    """The SQL of "the attempt's last failure counts under ``reason``", the same decision
    as ``failure_reasons.explain`` (a test holds them together)."""
    code, decline = PaymentAttempt.error_code, PaymentAttempt.decline_code
    known_declines = failure_reasons.known_decline_codes()
    known_codes = failure_reasons.known_codes()
    decline_unknown = or_(decline.is_(None), decline.not_in(known_declines))
    code_unknown = or_(code.is_(None), code.not_in(known_codes))
    cases = [
        decline.in_(failure_reasons.decline_codes_of(reason)),
        and_(decline_unknown, code.in_(failure_reasons.codes_of(reason))),
    ]
    if reason == Reason.CARD_DECLINED:
        cases.append(and_(decline_unknown, code_unknown, or_(code == "card_declined", decline.is_not(None))))
    if reason == Reason.OTHER:
        cases.append(and_(decline.is_(None), code.is_not(None), code.not_in([*known_codes, "card_declined"])))
    return or_(*cases)


def attempts_without_order(event_id: int, filters: AttemptFilters, paging: Paging, *, limit: int = PAGE_SIZE) -> Page:
    """A page of the event's payment attempts whose cart has no order (declined, abandoned,
    expired, or still open), newest first, from ``ix_payment_attempts_event_id_created_at_id``.
    (A paid attempt always has its order, so it is left out before looking for one.)"""
    query = select(PaymentAttempt).where(
        PaymentAttempt.event_id == event_id,
        PaymentAttempt.status != AttemptStatus.PAID.value,
        ~exists().where(Order.cart_id == PaymentAttempt.cart_id),
    )
    if filters.status is not None:
        query = query.where(PaymentAttempt.status == filters.status.value)
    if filters.reason is not None:
        query = query.where(reason_condition(filters.reason))
    return _keyset(query, PaymentAttempt, paging, limit)
