"""The payments dashboard's rollup: its counts per event and UTC quarter hour, rebuilt
from the raw tables, so a dashboard over months reads a few thousand rows instead of a
million attempts and the join of every order with its tickets (``storefront.reports``).

A rebuild of [since, until) (bucket boundaries) replaces those buckets of every event,
one transaction per range of at most ``CHUNK``: DELETE of the range, then one INSERT …
SELECT … GROUP BY per table, so a reader sees the old counts or the new ones, never half.
The watermark ``rolled_up_until`` then says up to where the rollup holds; the dashboard
reads the raw tables from there on. It only moves when the rebuilt range joins what was
already rolled up (or starts from the first row), so the rollup never has a hole.

What changes after the fact: an attempt's status (a bank debit settles days later), a
refund's (pending, then succeeded). The periodic job (``storefront.jobs``) rebuilds the
last ``REPORT_ROLLUP_LOOKBACK_DAYS`` (default 14) every few minutes; a change older than
that waits for ``flask reports rebuild``, which also fills the rollup after a migration.
Until a rebuild picks a change up, the dashboard shows the counts of the last rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, cast, delete, func, insert, literal, select, text, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from .database import write_transaction
from .extensions import db
from .models import (
    Cart,
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
    ReportRollupState,
    ReportTickets,
    Ticket,
    utcnow,
)

BUCKET = timedelta(minutes=15)
BUCKET_SECONDS = 900
PER_DAY = 96  # quarter hours in a UTC day: day number = bucket // 96
DAILY = ((ReportAttempts, ReportAttemptsDaily), (ReportMoney, ReportMoneyDaily), (ReportCarts, ReportCartsDaily))
SETTLE = timedelta(minutes=2)  # a transaction that began before a boundary commits within this
CHUNK = timedelta(days=31)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATE_ID = 1


def bucket_of(instant: datetime) -> int:
    """The number of the quarter hour an instant is in (its floor)."""
    return int((instant - EPOCH).total_seconds() // BUCKET_SECONDS)


def bucket_start(number: int) -> datetime:
    return EPOCH + timedelta(seconds=number * BUCKET_SECONDS)


def floor(instant: datetime) -> datetime:
    return bucket_start(bucket_of(instant))


def ceil(instant: datetime) -> datetime:
    down = floor(instant)
    return down if down == instant else down + BUCKET


def last_closed_boundary(now: datetime | None = None) -> datetime:
    """The boundary the periodic rebuild rolls up to: a little in the past, so a row
    written by a transaction that started before it has committed by then."""
    return floor((now or utcnow()) - SETTLE)


def bucket_sql(column):
    """SQL for the bucket number of a (naive UTC) timestamp column."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / BUCKET_SECONDS), Integer)
    return cast(func.strftime("%s", column), Integer) // BUCKET_SECONDS  # //: integer division


def rolled_up_until() -> datetime | None:
    return db.session.execute(
        select(ReportRollupState.rolled_up_until).where(ReportRollupState.id == STATE_ID)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Rebuilt:
    since: datetime | None  # None: from the first row
    until: datetime
    ranges: int
    rolled_up_until: datetime | None


def _within(column, start: datetime | None, end: datetime) -> list:
    return ([column >= start] if start is not None else []) + [column < end]


def _lock_state() -> datetime | None:
    """Take the state row for this transaction (creating it the first time): rebuilds run
    one at a time, so two never delete and insert the same range together."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    db.session.execute(dialect.insert(ReportRollupState).values(id=STATE_ID).on_conflict_do_nothing())
    return db.session.execute(
        select(ReportRollupState.rolled_up_until).where(ReportRollupState.id == STATE_ID).with_for_update()
    ).scalar_one()


def _rebuild_range(start: datetime | None, end: datetime) -> None:
    low = bucket_of(start) if start is not None else None
    high = bucket_of(end)
    for table in (ReportAttempts, ReportTickets, ReportMoney, ReportCarts):
        conditions = [table.bucket < high] + ([table.bucket >= low] if low is not None else [])
        db.session.execute(delete(table).where(*conditions).execution_options(synchronize_session=False))

    pa = PaymentAttempt
    bucket = bucket_sql(pa.created_at)
    db.session.execute(
        insert(ReportAttempts).from_select(
            ["event_id", "bucket", "status", "error_code", "decline_code", "attempts"],
            select(pa.event_id, bucket, pa.status, pa.error_code, pa.decline_code, func.count())
            .where(pa.event_id.is_not(None), *_within(pa.created_at, start, end))
            .group_by(pa.event_id, bucket, pa.status, pa.error_code, pa.decline_code),
        )
    )

    bucket = bucket_sql(Order.created_at)
    db.session.execute(
        insert(ReportTickets).from_select(
            ["event_id", "bucket", "ticket_type_id", "tickets"],
            select(Order.event_id, bucket, Ticket.ticket_type_id, func.count())
            .select_from(Ticket)
            .join(Order, Order.id == Ticket.order_id)
            .where(*_within(Order.created_at, start, end))
            .group_by(Order.event_id, bucket, Ticket.ticket_type_id),
        )
    )

    zero = literal(0, Integer)
    order_bucket, refund_bucket = bucket_sql(Order.created_at), bucket_sql(Refund.created_at)
    gross = (
        select(
            Order.event_id.label("event_id"),
            order_bucket.label("bucket"),
            Order.currency.label("currency"),
            func.count().label("orders"),
            func.sum(Order.total_minor).label("gross_minor"),
            zero.label("refunds"),
            zero.label("refunded_minor"),
        )
        .where(*_within(Order.created_at, start, end))
        .group_by(Order.event_id, order_bucket, Order.currency)
    )
    refunded = (
        select(
            Order.event_id,
            refund_bucket,
            Refund.currency,
            zero,
            zero,
            func.count(),
            func.sum(Refund.amount_minor),
        )
        .join(Order, Order.id == Refund.order_id)
        .where(Refund.status == RefundStatus.SUCCEEDED.value, *_within(Refund.created_at, start, end))
        .group_by(Order.event_id, refund_bucket, Refund.currency)
    )
    both = union_all(gross, refunded).subquery()
    db.session.execute(
        insert(ReportMoney).from_select(
            ["event_id", "bucket", "currency", "orders", "gross_minor", "refunds", "refunded_minor"],
            select(
                both.c.event_id,
                both.c.bucket,
                both.c.currency,
                func.sum(both.c.orders),
                func.sum(both.c.gross_minor),
                func.sum(both.c.refunds),
                func.sum(both.c.refunded_minor),
            ).group_by(both.c.event_id, both.c.bucket, both.c.currency),
        )
    )

    bucket = bucket_sql(Cart.created_at)
    db.session.execute(
        insert(ReportCarts).from_select(
            ["event_id", "bucket", "carts"],
            select(Cart.event_id, bucket, func.count())
            .where(Cart.event_id.is_not(None), *_within(Cart.created_at, start, end))
            .group_by(Cart.event_id, bucket),
        )
    )


def _rebuild_days(low: int | None, high: int) -> None:
    """The day rows of every UTC day the buckets [low, high) touch, summed from the quarter
    rows (those of the day outside the range are as the last rebuild left them): a day
    row is always its quarter rows' sum; the reader takes only days before the watermark."""
    first = low // PER_DAY if low is not None else None
    last = -(-high // PER_DAY)  # the day of high - 1, included
    for quarter, daily in DAILY:
        days = [daily.day < last] + ([daily.day >= first] if first is not None else [])
        db.session.execute(delete(daily).where(*days).execution_options(synchronize_session=False))
        day = (quarter.bucket // PER_DAY).label("day")  # integer division on both backends
        figures = [c.name for c in daily.__table__.columns if c.name not in ("id", "event_id", "day")]
        summed = [func.sum(quarter.__table__.c[name]) for name in figures if name in SUMMED]
        kept = [quarter.__table__.c[name] for name in figures if name not in SUMMED]
        quarters = [quarter.bucket < last * PER_DAY] + (
            [quarter.bucket >= first * PER_DAY] if first is not None else []
        )
        db.session.execute(
            insert(daily).from_select(
                ["event_id", "day", *[n for n in figures if n not in SUMMED], *[n for n in figures if n in SUMMED]],
                select(quarter.event_id, day, *kept, *summed).where(*quarters).group_by(quarter.event_id, day, *kept),
            )
        )


SUMMED = frozenset({"attempts", "orders", "gross_minor", "refunds", "refunded_minor", "carts"})


def _first_row() -> datetime | None:
    firsts = [
        db.session.execute(select(func.min(column))).scalar_one_or_none()
        for column in (PaymentAttempt.created_at, Order.created_at, Refund.created_at, Cart.created_at)
    ]
    found = [f for f in firsts if f is not None]
    return min(found) if found else None


def rebuild(since: datetime | None = None, until: datetime | None = None) -> Rebuilt:
    """Rebuild the buckets of [since, until) for every event (since None: all of them;
    until None: up to the last closed boundary), a transaction per ``CHUNK``. With no
    rollup yet, everything is rebuilt whatever ``since`` says (a partial rollup would
    leave the buckets before it empty)."""
    until = floor(until or last_closed_boundary())
    since = floor(since) if since is not None else None
    if rolled_up_until() is None:
        since = None
    start = since
    first = _first_row() if since is None else since
    ranges = 0
    watermark = None
    while True:
        # The first range of a full rebuild has no lower bound: it also clears buckets
        # older than every row (rows since deleted).
        end = until if first is None else min(until, floor(max(first, start or first)) + CHUNK)
        with write_transaction():
            watermark = _lock_state()
            _rebuild_range(start, end)
            _rebuild_days(bucket_of(start) if start is not None else None, bucket_of(end))
            joins = start is None or (watermark is not None and start <= watermark)
            if joins:
                watermark = max(watermark, end) if watermark is not None else end
                db.session.execute(
                    update(ReportRollupState)
                    .where(ReportRollupState.id == STATE_ID)
                    .values(rolled_up_until=watermark, rebuilt_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        ranges += 1
        if end >= until:
            break
        start = end
    if since is None and db.engine.dialect.name == "postgresql":
        # Fresh tables have no statistics until autovacuum comes by: without them PostgreSQL
        # plans a nested loop per event (97 ms for an organiser's 30 days, 26 ms with them).
        with write_transaction():
            for table in (ReportAttempts, ReportTickets, ReportMoney, ReportCarts, *(d for _q, d in DAILY)):
                db.session.execute(text(f"ANALYZE {table.__tablename__}"))
    return Rebuilt(since, until, ranges, watermark)


def rebuild_recent(lookback: timedelta, now: datetime | None = None) -> Rebuilt:
    """The periodic job's rebuild: from ``lookback`` ago (or the watermark, if the job
    has not run for longer) to the last closed boundary."""
    now = now or utcnow()
    watermark = rolled_up_until()
    if watermark is None:
        return rebuild(None, last_closed_boundary(now))
    return rebuild(min(floor(now - lookback), watermark), last_closed_boundary(now))
