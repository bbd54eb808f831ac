"""The payments dashboard's numbers, for a set of events and a period. Read only.

Every figure is one aggregate query (GROUP BY in the database), so the cost grows with
the number of groups, not of rows: attempts by (status, error code, decline code), money
by currency, tickets by (time bucket, ticket type). Python only names the few groups
(``failure_reasons.explain`` turns a code pair into a reason, the same decision as the
order timeline and the attempts filter) and fills the buckets that had no sale.

What counts, for a period [start, end) of UTC instants (days in the event's timezone,
converted by ``period_of``):

* an attempt (one Checkout Session) counts on the day it was created. It *succeeded* when
  Stripe took the money (paid, and the rare paid-but-refunded or paid-another-amount);
  it *did not pay* when it failed or expired; the others are still open. The success
  rate is succeeded / (succeeded + did not pay): open sessions are not decided yet.
* failures by reason: the attempts that did not pay, by their last failure Stripe
  reported; those with none are "abandoned" (the buyer left the payment page).
* gross: the orders created in the period; refunds: the refunds that succeeded in the
  period (of any order, so net is the money that stayed this period); each per currency,
  never added across currencies.
* sales: tickets issued by orders of the period, refunded ones included (refunds are in
  the money figures), per ticket type and time bucket (hours for a period of up to three
  days, days up to 92 days, else months), in the period's timezone.
* funnel: carts created on these events' pages (a cart emptied before checkout counts
  too: its buyer wanted tickets), checkouts started (attempts created), paid orders.

Where the counts come from: the whole UTC quarter hours of the period before the
rollup's watermark from its tables (``storefront.report_rollup``, a few rows per event
and quarter hour), the rest (a part quarter hour at either end, everything after the
watermark) from the raw tables by the same queries; they are added. A quarter hour lies
in one local hour of every zone, so the buckets fold exactly. Without a rollup (no
watermark) everything is raw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, cast, func, literal_column, select

from . import failure_reasons, local_time, report_rollup
from .database import read_snapshot
from .extensions import db
from .failure_reasons import Reason
from .models import (
    AttemptStatus,
    Cart,
    Event,
    Order,
    PaymentAttempt,
    Refund,
    RefundStatus,
    ReportAttempts,
    ReportAttemptsDaily,
    ReportCarts,
    ReportCartsDaily,
    ReportMoney,
    ReportMoneyDaily,
    ReportTickets,
    Ticket,
    TicketType,
)

SUCCEEDED = frozenset(
    {AttemptStatus.PAID, AttemptStatus.REFUNDING, AttemptStatus.REFUNDED, AttemptStatus.AMOUNT_MISMATCH}
)
NOT_PAID = frozenset({AttemptStatus.FAILED, AttemptStatus.EXPIRED})
MAX_DAYS = 3660  # a period longer than ten years is a typing mistake


class Granularity(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class BadPeriod(ValueError):
    """The period asked for is not one: ``field`` names the parameter, ``kind`` what is wrong."""

    def __init__(self, field: str, kind: str) -> None:
        super().__init__(f"{field}: {kind}")
        self.field = field
        self.kind = kind  # "not_a_date", "reversed", "too_long"


@dataclass(frozen=True)
class Period:
    """Local days ``first_day`` .. ``last_day`` (both included) in ``timezone``, as the
    UTC instants [start, end); all time when both are None."""

    timezone: str
    first_day: date | None = None
    last_day: date | None = None

    @property
    def start(self) -> datetime | None:
        return local_time.day_start(self.first_day, self.timezone) if self.first_day else None

    @property
    def end(self) -> datetime | None:
        return local_time.day_start(self.last_day + timedelta(days=1), self.timezone) if self.last_day else None

    @property
    def all_time(self) -> bool:
        return self.first_day is None and self.last_day is None


def parse_day(raw: str, field: str) -> date:
    if len(raw) != 10 or not raw.isascii():
        raise BadPeriod(field, "not_a_date")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadPeriod(field, "not_a_date") from None


def period_of(raw_from: str | None, raw_to: str | None, timezone: str, today: date) -> Period:
    """The period of the form's dates (YYYY-MM-DD, the last day included); one left empty
    is open on that side (from the first sale, or up to today). Raises ``BadPeriod``."""
    first = parse_day(raw_from, "from") if raw_from else None
    last = parse_day(raw_to, "to") if raw_to else None
    if first is None and last is None:
        return Period(timezone)
    if first is not None and last is not None and first > last:
        raise BadPeriod("to", "reversed")
    if first is not None and (last or today) - first > timedelta(days=MAX_DAYS):
        raise BadPeriod("from", "too_long")
    return Period(timezone, first, last)


def preset(name: str, timezone: str, today: date) -> Period:
    """ "7" / "30": the last 7 or 30 days, today included; anything else: all time."""
    if name in ("7", "30"):
        return Period(timezone, today - timedelta(days=int(name) - 1), today)
    return Period(timezone)


def timezone_of(event_ids) -> str:
    """The timezone the organiser's dashboard counts days in: its events' one when they
    share it, else UTC (an organiser has no timezone of its own)."""
    zones = list(
        db.session.execute(select(Event.timezone).where(Event.id.in_(event_ids)).distinct().limit(2)).scalars()
    )
    return zones[0] if len(zones) == 1 else "UTC"


# --- the figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonCount:
    reason: Reason | None  # None: abandoned, no failure reported
    count: int


@dataclass
class Attempts:
    total: int = 0
    succeeded: int = 0
    not_paid: int = 0
    open: int = 0
    reasons: list[ReasonCount] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        decided = self.succeeded + self.not_paid
        return self.succeeded / decided if decided else None


@dataclass(frozen=True)
class Money:
    currency: str
    orders: int
    gross_minor: int
    refunds: int
    refunded_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunded_minor

    @property
    def average_minor(self) -> int | None:
        # Rounded half up to the currency's minor unit (integers only, no float money).
        return (2 * self.gross_minor + self.orders) // (2 * self.orders) if self.orders else None


@dataclass(frozen=True)
class Series:
    ticket_type_id: int
    name: str
    counts: list[int]  # one per bucket

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass
class Sales:
    granularity: Granularity
    buckets: list[datetime]  # local (naive) starts, one per bucket
    series: list[Series]

    @property
    def totals(self) -> list[int]:
        return [sum(s.counts[i] for s in self.series) for i in range(len(self.buckets))]


@dataclass(frozen=True)
class Funnel:
    carts: int
    checkouts: int
    paid_orders: int


@dataclass
class Report:
    period: Period
    attempts: Attempts
    money: list[Money]
    sales: Sales
    funnel: Funnel


def _within(column, period: Period) -> list:
    conditions = []
    if period.start is not None:
        conditions.append(column >= period.start)
    if period.end is not None:
        conditions.append(column < period.end)
    return conditions


@dataclass(frozen=True)
class _Split:
    """Where a period's counts come from: the rollup's buckets [low, high) (None: from
    the first), and the raw tables over the pieces of the period outside them."""

    rolled: tuple[int | None, int] | None
    raw: list[tuple[datetime | None, datetime | None]]


def _split(period: Period, watermark: datetime | None) -> _Split:
    """The whole quarter hours of the period before the watermark from the rollup, the
    rest (a part quarter hour at either end, everything after the watermark) raw."""
    start, end = period.start, period.end
    if watermark is None:
        return _Split(None, [(start, end)])
    low = report_rollup.ceil(start) if start is not None else None
    high = min(report_rollup.floor(end), watermark) if end is not None else watermark
    if low is not None and high <= low:
        return _Split(None, [(start, end)])
    raw: list = []
    if start is not None and start < low:
        raw.append((start, low))
    if end is None or high < end:
        raw.append((high, end))
    return _Split((report_rollup.bucket_of(low) if low is not None else None, report_rollup.bucket_of(high)), raw)


def _in_range(column, start: datetime | None, end: datetime | None) -> list:
    return ([column >= start] if start is not None else []) + ([column < end] if end is not None else [])


def _buckets(column, rolled: tuple[int | None, int]) -> list:
    low, high = rolled
    return ([column >= low] if low is not None else []) + [column < high]


def _levels(rolled: tuple[int | None, int]):
    """For the figures not drawn over time: the whole UTC days of the rolled quarter hours
    [low, high) from the day rows (``(first, last)`` days, or None), and the quarter hours
    left at either end from the quarter rows. Yields (table kind, range)."""
    low, high = rolled
    first = -(-low // report_rollup.PER_DAY) if low is not None else None
    last = high // report_rollup.PER_DAY
    if first is not None and first >= last:
        yield "quarter", rolled
        return
    if low is not None and low < first * report_rollup.PER_DAY:
        yield "quarter", (low, first * report_rollup.PER_DAY)
    yield "day", (first, last)
    if last * report_rollup.PER_DAY < high:
        yield "quarter", (last * report_rollup.PER_DAY, high)


def attempts(event_ids, period: Period, watermark: datetime | None = None) -> Attempts:
    """Attempts created in the period, by outcome, and those that did not pay by reason."""
    pa = PaymentAttempt
    split = _split(period, watermark)
    rows = []
    for start, end in split.raw:
        rows += db.session.execute(
            select(pa.status, pa.error_code, pa.decline_code, func.count())
            .where(pa.event_id.in_(event_ids), *_in_range(pa.created_at, start, end))
            .group_by(pa.status, pa.error_code, pa.decline_code)
        ).all()
    for kind, piece in _levels(split.rolled) if split.rolled is not None else ():
        ra = ReportAttempts if kind == "quarter" else ReportAttemptsDaily
        rows += db.session.execute(
            select(ra.status, ra.error_code, ra.decline_code, func.sum(ra.attempts))
            .where(ra.event_id.in_(event_ids), *_buckets(ra.bucket if kind == "quarter" else ra.day, piece))
            .group_by(ra.status, ra.error_code, ra.decline_code)
        ).all()
    result = Attempts()
    reasons: dict[Reason | None, int] = {}
    for status, code, decline, n in rows:
        result.total += n
        if status in SUCCEEDED:
            result.succeeded += n
        elif status in NOT_PAID:
            result.not_paid += n
            failure = failure_reasons.explain(code, decline)
            reason = failure.reason if failure else None
            reasons[reason] = reasons.get(reason, 0) + n
        else:
            result.open += n
    order = {reason: i for i, reason in enumerate(Reason)}
    result.reasons = [
        ReasonCount(r, n) for r, n in sorted(reasons.items(), key=lambda item: order.get(item[0], len(order)))
    ]
    return result


def money(event_ids, period: Period, watermark: datetime | None = None) -> list[Money]:
    """Gross, refunds and net per currency (orders of the period, refunds that succeeded in it)."""
    split = _split(period, watermark)
    totals: dict[str, list[int]] = {}  # currency: [orders, gross, refunds, refunded]

    def add(currency: str, *figures) -> None:
        found = totals.setdefault(currency, [0, 0, 0, 0])
        for i, figure in enumerate(figures):
            found[i] += int(figure or 0)

    for start, end in split.raw:
        for currency, n, total in db.session.execute(
            select(Order.currency, func.count(), func.sum(Order.total_minor))
            .where(Order.event_id.in_(event_ids), *_in_range(Order.created_at, start, end))
            .group_by(Order.currency)
        ).all():
            add(currency, n, total)
        for currency, n, total in db.session.execute(
            select(Refund.currency, func.count(), func.sum(Refund.amount_minor))
            .join(Order, Order.id == Refund.order_id)
            .where(
                Order.event_id.in_(event_ids),
                Refund.status == RefundStatus.SUCCEEDED.value,
                *_in_range(Refund.created_at, start, end),
            )
            .group_by(Refund.currency)
        ).all():
            add(currency, 0, 0, n, total)
    for kind, piece in _levels(split.rolled) if split.rolled is not None else ():
        rm = ReportMoney if kind == "quarter" else ReportMoneyDaily
        for row in db.session.execute(
            select(
                rm.currency,
                func.sum(rm.orders),
                func.sum(rm.gross_minor),
                func.sum(rm.refunds),
                func.sum(rm.refunded_minor),
            )
            .where(rm.event_id.in_(event_ids), *_buckets(rm.bucket if kind == "quarter" else rm.day, piece))
            .group_by(rm.currency)
        ).all():
            add(*row)
    return [Money(c, *totals[c]) for c in sorted(totals)]


def granularity_of(start: datetime, end: datetime) -> Granularity:
    span = end - start
    if span <= timedelta(days=3):
        return Granularity.HOUR
    if span <= timedelta(days=92):
        return Granularity.DAY
    return Granularity.MONTH


def _truncate(local: datetime, granularity: Granularity) -> datetime:
    local = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    if granularity == Granularity.HOUR:
        return local
    local = local.replace(hour=0)
    return local.replace(day=1) if granularity == Granularity.MONTH else local


def _bucket_starts(start: datetime, end: datetime, timezone: str, granularity: Granularity) -> list[datetime]:
    zone = ZoneInfo(timezone)
    first = _truncate(start.astimezone(zone), granularity)
    last = _truncate((end - timedelta(microseconds=1)).astimezone(zone), granularity)
    starts = []
    current = first
    while current <= last:
        starts.append(current)
        if granularity == Granularity.HOUR:
            current += timedelta(hours=1)
        elif granularity == Granularity.DAY:
            current += timedelta(days=1)
        else:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def _bucket_key(column, granularity: Granularity, timezone: str):
    """The SQL of a row's bucket. PostgreSQL truncates the local time itself (``AT TIME
    ZONE`` knows daylight saving); SQLite has no time zones, so it groups by UTC quarter
    of an hour (every zone's offset is a multiple of 15 minutes) and Python folds those
    few groups into local buckets."""
    if db.session.get_bind().dialect.name == "postgresql":
        local = func.timezone(timezone, func.timezone("UTC", column))
        return func.date_trunc(granularity.value, local)
    return cast(func.strftime("%s", column), Integer) / literal_column("900")


def _to_bucket(key, granularity: Granularity, timezone: str) -> datetime:
    if isinstance(key, datetime):
        return key.replace(tzinfo=None)
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(key) * 900)
    return _truncate(instant.astimezone(ZoneInfo(timezone)), granularity)


def _rolled_bucket_key(granularity: Granularity, timezone: str):
    """The SQL of a rollup row's bucket: on PostgreSQL the local hour/day/month of its
    quarter hour's start; on SQLite the quarter hour's number, folded by ``_to_bucket``."""
    if db.session.get_bind().dialect.name == "postgresql":
        # bigint: seconds since 1970 pass an integer's range in 2038
        utc = func.to_timestamp(cast(ReportTickets.bucket, BigInteger) * report_rollup.BUCKET_SECONDS)
        return func.date_trunc(granularity.value, func.timezone(timezone, utc))
    return ReportTickets.bucket


def sales(event_ids, period: Period, now: datetime, watermark: datetime | None = None) -> Sales:
    """Tickets issued per ticket type and bucket of the period (all time: from the first
    order to the last)."""
    start, end = period.start, period.end
    if start is None or end is None:
        first, last = db.session.execute(
            select(func.min(Order.created_at), func.max(Order.created_at)).where(
                Order.event_id.in_(event_ids), *_within(Order.created_at, period)
            )
        ).one()
        if first is None:
            return Sales(Granularity.DAY, [], [])
        start = start or local_time.day_start(first.astimezone(ZoneInfo(period.timezone)).date(), period.timezone)
        end = end or (last + timedelta(microseconds=1))
    end = min(end, max(now, start + timedelta(hours=1)))  # no empty buckets in the future
    granularity = granularity_of(start, end)
    buckets = _bucket_starts(start, end, period.timezone, granularity)
    index = {b: i for i, b in enumerate(buckets)}
    key = _bucket_key(Order.created_at, granularity, period.timezone).label("bucket")
    split = _split(period, watermark)
    rows = []
    for piece_start, piece_end in split.raw:
        rows += db.session.execute(
            select(key, Ticket.ticket_type_id, func.count())
            .select_from(Ticket)
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.event_id.in_(event_ids), *_in_range(Order.created_at, piece_start, piece_end))
            .group_by(key, Ticket.ticket_type_id)
        ).all()
    if split.rolled is not None:
        rolled_key = _rolled_bucket_key(granularity, period.timezone).label("bucket")
        rt = ReportTickets
        rows += db.session.execute(
            select(rolled_key, rt.ticket_type_id, func.sum(rt.tickets))
            .where(rt.event_id.in_(event_ids), *_buckets(rt.bucket, split.rolled))
            .group_by(rolled_key, rt.ticket_type_id)
        ).all()
    counts: dict[int, list[int]] = {}
    for bucket, ticket_type_id, n in rows:
        i = index.get(_to_bucket(bucket, granularity, period.timezone))
        if i is not None:
            counts.setdefault(ticket_type_id, [0] * len(buckets))[i] += n
    types = []
    if counts:
        types = db.session.execute(
            select(TicketType.id, TicketType.name, Event.title)
            .join(Event, Event.id == TicketType.event_id)
            .where(TicketType.id.in_(list(counts)))
            .order_by(Event.starts_at, Event.id, TicketType.position, TicketType.id)
        ).all()
    several_events = len({title for _id, _name, title in types}) > 1
    series = [
        Series(tt_id, f"{title}: {name}" if several_events else name, counts[tt_id]) for tt_id, name, title in types
    ]
    return Sales(granularity, buckets, series)


def funnel(
    event_ids, period: Period, attempts_total: int, paid_orders: int, watermark: datetime | None = None
) -> Funnel:
    """Carts created on these events' pages (``ix_carts_event_id_created_at``); checkouts
    and paid orders come from the attempts' and the orders' figures (the same period)."""
    split = _split(period, watermark)
    carts = 0
    for start, end in split.raw:
        carts += db.session.execute(
            select(func.count())
            .select_from(Cart)
            .where(Cart.event_id.in_(event_ids), *_in_range(Cart.created_at, start, end))
        ).scalar_one()
    for kind, piece in _levels(split.rolled) if split.rolled is not None else ():
        rc = ReportCarts if kind == "quarter" else ReportCartsDaily
        carts += int(
            db.session.execute(
                select(func.coalesce(func.sum(rc.carts), 0)).where(
                    rc.event_id.in_(event_ids), *_buckets(rc.bucket if kind == "quarter" else rc.day, piece)
                )
            ).scalar_one()
        )
    return Funnel(carts, attempts_total, paid_orders)


def report(event_ids, period: Period, now: datetime, *, rollup: bool = True) -> Report:
    """The dashboard of the events ``event_ids`` (a list or a subquery of ids) for ``period``:
    from the rollup before its watermark and the raw tables after it (``rollup=False``:
    all from the raw tables, the same numbers). One snapshot for all of it, so a payment or
    a rebuild landing meanwhile is in every figure or in none."""
    with read_snapshot():
        watermark = report_rollup.rolled_up_until() if rollup else None
        found_attempts = attempts(event_ids, period, watermark)
        found_money = money(event_ids, period, watermark)
        paid_orders = sum(m.orders for m in found_money)
        return Report(
            period,
            found_attempts,
            found_money,
            sales(event_ids, period, now, watermark),
            funnel(event_ids, period, found_attempts.total, paid_orders, watermark),
        )
