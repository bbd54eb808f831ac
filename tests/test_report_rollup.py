"""The dashboard's rollup gives exactly the numbers of the raw queries: varied data
(several events, EUR and JPY, failures, refunds that succeeded, failed or are pending,
carts, events in Asia/Kolkata), rolled up to a watermark in the middle of it, then
every figure of the event and organiser dashboards compared with the all-raw answer for
periods in several zones (+05:30, +05:45, -03:30), periods that start and end inside a
quarter hour, straddle the watermark or lie wholly before or after it. A late status
change is picked up by the next periodic rebuild (inside the lookback), one older than
the lookback by ``flask reports rebuild``. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from storefront import report_rollup, reports
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.jobs import _rollup_reports
from storefront.models import (
    AttemptStatus,
    Cart,
    CartStatus,
    Event,
    Order,
    PaymentAttempt,
    Refund,
    RefundStatus,
    ReportAttempts,
    ReportAttemptsDaily,
    TicketType,
    utcnow,
)

from .admin_support import make_event_of, make_organiser
from .factories import make_order

_n = count(1)

OUTCOMES = [
    (AttemptStatus.PAID, None, None),
    (AttemptStatus.EXPIRED, "card_declined", "insufficient_funds"),
    (AttemptStatus.FAILED, "payment_intent_authentication_failure", None),
    (AttemptStatus.EXPIRED, None, None),
    (AttemptStatus.OPEN, "card_declined", "expired_card"),
    (AttemptStatus.PAID, None, None),
    (AttemptStatus.FAILED, "card_declined", "stolen_card"),
    (AttemptStatus.PROCESSING, None, None),
    (AttemptStatus.REFUNDED, None, None),
]


@dataclass(frozen=True)
class Instants(reports.Period):
    """A period between two arbitrary instants (inside a quarter hour), which the form
    cannot ask for but ``_split`` must still cut exactly."""

    at_start: datetime | None = None
    at_end: datetime | None = None

    @property
    def start(self):
        return self.at_start

    @property
    def end(self):
        return self.at_end


def _attempt(event_id: int | None, i: int, when: datetime) -> int:
    status, code, decline = OUTCOMES[i % len(OUTCOMES)]
    with write_transaction():
        cart = Cart(
            token=f"roll-{next(_n)}",
            event_id=event_id,
            status=CartStatus.EXPIRED.value,
            expires_at=when,
            created_at=when,
        )
        db.session.add(cart)
        db.session.flush()
        attempt = PaymentAttempt(
            cart_id=cart.id,
            event_id=event_id,
            idempotency_key=f"roll-{cart.id}",
            lines=json.dumps([]),
            buyer_email="who@example.com",
            amount_minor=2500,
            currency="EUR",
            status=status.value,
            session_expires_at=when,
            error_code=code,
            decline_code=decline,
            created_at=when,
            updated_at=when,
        )
        db.session.add(attempt)
        db.session.flush()
        return attempt.id


def _refund(order_id: int, currency: str, amount: int, status: RefundStatus, when: datetime) -> int:
    with write_transaction():
        refund = Refund(
            order_id=order_id,
            amount_minor=amount,
            currency=currency,
            reason="Requested by the buyer",
            requested_by="owner@example.com",
            status=status.value,
            idempotency_key=f"roll-refund-{next(_n)}",
            created_at=when,
            updated_at=when,
        )
        db.session.add(refund)
        db.session.flush()
        return refund.id


@pytest.fixture
def world(app):
    """Two events of one organiser in Asia/Kolkata (EUR and JPY, two ticket types each),
    another organiser's event in Paris; orders, attempts, refunds and carts over 20 days."""
    now = utcnow()
    acme = make_organiser("acme")
    eur = make_event_of(acme, "Gala", slug="gala", timezone="Asia/Kolkata", currency="EUR")
    jpy = make_event_of(acme, "Tokyo", slug="tokyo", timezone="Asia/Kolkata", currency="JPY")
    other = make_event_of(make_organiser("other"), "Elsewhere", slug="elsewhere", timezone="Europe/Paris")
    with write_transaction():
        for event, price in ((eur, 9000), (jpy, 12000)):
            db.session.add(TicketType(event_id=event.id, name="VIP", price_minor=price, capacity=99, position=1))
    db.session.rollback()
    events = [db.session.get(Event, e.id) for e in (eur, jpy, other)]
    late = {}
    for i in range(45):
        event = events[i % 3]
        # Every 10 h 23 min 17 s back: times inside quarter hours, across local midnights.
        when = now - timedelta(minutes=623 * i, seconds=17 * i)
        types = event.ticket_types
        order = make_order(event, [("Ada", "Lovelace")] * (1 + i % 3), ticket_type_id=types[i % len(types)].id)
        order_id, currency, total = order.id, order.currency, order.total_minor
        with write_transaction():
            db.session.execute(update(Order).where(Order.id == order_id).values(created_at=when))
        if i % 4 == 1:
            _refund(order_id, currency, total // 2, RefundStatus.SUCCEEDED, when + timedelta(hours=5))
        if i % 5 == 2:
            _refund(order_id, currency, 100, RefundStatus.FAILED, when + timedelta(hours=1))
        if i == 7:  # 3 days back: settles after the first rebuild
            late["refund"] = _refund(order_id, currency, 300, RefundStatus.PENDING, when + timedelta(minutes=9))
        attempt = _attempt(event.id, i, when - timedelta(minutes=3))
        if i == 7:
            late["attempt"] = attempt  # processing: a bank debit that fails later
        if i == 44:
            late["old_attempt"] = attempt  # 19 days back: outside the lookback
        _attempt(None, i, when)  # an attempt whose cart was empty: no event
    return acme, events, now, late


def _periods(now: datetime) -> list[reports.Period]:
    periods = []
    for zone in ("Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "UTC"):
        today = now.astimezone(ZoneInfo(zone)).date()
        periods += [
            reports.Period(zone),  # all time
            reports.preset("7", zone, today),  # straddles the watermark
            reports.preset("30", zone, today),
            reports.Period(zone, today - timedelta(days=15), today - timedelta(days=9)),  # before it
            reports.Period(zone, today - timedelta(days=4), today - timedelta(days=2)),  # hours, straddling
            reports.Period(zone, today - timedelta(days=1), today),  # after it
            reports.Period(zone, None, today - timedelta(days=6)),  # open start
            reports.Period(zone, today - timedelta(days=12), None),  # open end
        ]
    periods += [
        Instants(
            "Asia/Kolkata", at_start=now - timedelta(days=9, minutes=7, seconds=3), at_end=now - timedelta(days=1)
        ),
        Instants(
            "Asia/Kolkata", at_start=now - timedelta(days=13, seconds=1), at_end=now - timedelta(days=8, minutes=1)
        ),
        Instants("UTC", at_start=None, at_end=now - timedelta(days=4, minutes=58)),
        Instants("UTC", at_start=now - timedelta(days=3, minutes=4), at_end=now - timedelta(days=3, minutes=2)),
    ]
    return periods


def _assert_same(organiser, events, now) -> int:
    """Every dashboard (each event, the organiser) equals its all-raw self; returns how many periods."""
    scopes = [[e.id] for e in events] + [select(Event.id).where(Event.organiser_id == organiser.id).scalar_subquery()]
    periods = _periods(now)
    for ids in scopes:
        for period in periods:
            rolled = reports.report(ids, period, now)
            assert rolled == reports.report(ids, period, now, rollup=False), (ids, period)
    return len(periods)


def test_the_rollup_gives_the_raw_numbers(world, monkeypatch):
    organiser, events, now, _late = world
    assert report_rollup.rolled_up_until() is None  # nothing yet: all raw
    watermark = report_rollup.floor(now - timedelta(days=5, hours=7))
    rebuilt = report_rollup.rebuild(None, watermark)
    assert rebuilt.rolled_up_until == watermark
    assert db.session.execute(select(ReportAttempts.id)).first() is not None
    _assert_same(organiser, events, now)

    # Up to the last closed quarter hour, in transactions of a day: the same again.
    monkeypatch.setattr(report_rollup, "CHUNK", timedelta(days=1))
    rebuilt = report_rollup.rebuild(None, now)
    assert rebuilt.ranges > 15
    assert rebuilt.rolled_up_until == report_rollup.floor(now)
    _assert_same(organiser, events, now)


def test_the_rollup_is_what_the_dashboard_reads(world):
    """Its day rows for whole UTC days, its quarter rows for the rest before the watermark:
    counts changed behind its back show."""
    organiser, events, now, _late = world
    report_rollup.rebuild(None, now)
    every = reports.Period("UTC")
    # Within one UTC day, 6 days back: quarter rows only.
    day = report_rollup.floor(now - timedelta(days=6)).replace(hour=0, minute=0)
    within = Instants("UTC", at_start=day + timedelta(minutes=20), at_end=day + timedelta(hours=23, minutes=40))
    ids = [e.id for e in events]
    before = reports.report(ids, every, now).attempts.total, reports.report(ids, within, now).attempts.total
    assert before[1] > 0
    with write_transaction():
        db.session.execute(update(ReportAttemptsDaily).values(attempts=ReportAttemptsDaily.attempts + 1))
    assert reports.report(ids, every, now).attempts.total > before[0]
    assert reports.report(ids, within, now).attempts.total == before[1]
    with write_transaction():
        db.session.execute(update(ReportAttempts).values(attempts=ReportAttempts.attempts + 1))
    assert reports.report(ids, within, now).attempts.total > before[1]


def test_a_late_change_is_picked_up_by_the_next_rebuild(app, world):
    organiser, events, now, late = world
    report_rollup.rebuild(None, now)
    _assert_same(organiser, events, now)
    with write_transaction():
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == late["attempt"])
            .values(status=AttemptStatus.FAILED.value, error_code="debit_failed")
        )
        db.session.execute(
            update(Refund).where(Refund.id == late["refund"]).values(status=RefundStatus.SUCCEEDED.value)
        )
    stale = reports.preset("30", "Asia/Kolkata", now.astimezone(ZoneInfo("Asia/Kolkata")).date())
    ids = [e.id for e in events]
    assert reports.report(ids, stale, now) != reports.report(ids, stale, now, rollup=False)  # until the rebuild
    _rollup_reports()  # the periodic job: the last REPORT_ROLLUP_LOOKBACK_DAYS
    assert report_rollup.rolled_up_until() >= report_rollup.last_closed_boundary()
    _assert_same(organiser, events, now)

    # Older than the lookback: the job leaves it, the command rebuilds it.
    with write_transaction():
        db.session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.id == late["old_attempt"])
            .values(status=AttemptStatus.EXPIRED.value, error_code=None, decline_code=None)
        )
    every = reports.Period("UTC")
    _rollup_reports()
    assert reports.report(ids, every, now) != reports.report(ids, every, now, rollup=False)
    result = app.test_cli_runner().invoke(args=["reports", "rebuild", "--since", "not-a-day"])
    assert result.exit_code != 0 and "YYYY-MM-DD" in result.output
    result = app.test_cli_runner().invoke(args=["reports", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt the dashboard's rollup from the first row" in result.output
    _assert_same(organiser, events, now)


def test_a_rebuild_that_would_leave_a_hole(world):
    """``--since`` with no rollup yet, or after the watermark, would leave a hole: the
    rollup is then rebuilt from the first row (no rollup), or the watermark stays put."""
    organiser, events, now, _late = world
    rebuilt = report_rollup.rebuild(now - timedelta(days=8), now - timedelta(days=6))
    assert rebuilt.since is None and rebuilt.rolled_up_until == report_rollup.floor(now - timedelta(days=6))
    rebuilt = report_rollup.rebuild(now - timedelta(days=2), now)
    assert rebuilt.rolled_up_until == report_rollup.floor(now - timedelta(days=6))
    _assert_same(organiser, events, now)


def test_buckets_are_quarter_hours_of_utc():
    at = datetime(2026, 3, 29, 0, 44, 59, tzinfo=UTC)
    assert report_rollup.floor(at) == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert report_rollup.ceil(at) == datetime(2026, 3, 29, 0, 45, tzinfo=UTC)
    assert report_rollup.ceil(report_rollup.floor(at)) == report_rollup.floor(at)
    assert report_rollup.bucket_start(report_rollup.bucket_of(at)) == report_rollup.floor(at)
