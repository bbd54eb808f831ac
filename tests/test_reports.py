"""The payments dashboard: attempts and the success rate, failures by reason, gross /
refunds / net / average per currency (JPY has no decimals), tickets per ticket type over
time, the funnel; periods as days in the event's timezone; another organiser's event is
a 404 and a bad period a 400 that says why. On SQLite and PostgreSQL (their buckets are
computed differently: ``AT TIME ZONE`` on one, quarter-hours folded on the other)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from storefront import reports
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.failure_reasons import Reason
from storefront.models import (
    AttemptStatus,
    Cart,
    CartItem,
    CartStatus,
    Order,
    PaymentAttempt,
    Refund,
    RefundStatus,
    TicketType,
    utcnow,
)
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user, sign_in_as
from .conftest import buyer_client
from .factories import make_order

_n = count(1)


def _at(order: Order, when: datetime) -> None:
    with write_transaction():
        db.session.execute(update(Order).where(Order.id == order.id).values(created_at=when))


def _attempt(event, status: AttemptStatus, *, code=None, decline=None, when=None) -> int:
    """A Checkout Session attempt of ``event`` with its cart holding one ticket."""
    when = when or utcnow()
    with write_transaction():
        cart = Cart(
            token=f"rep-{next(_n)}",
            event_id=event.id,
            status=CartStatus.EXPIRED.value,
            expires_at=when,
            created_at=when,
        )
        db.session.add(cart)
        db.session.flush()
        db.session.add(CartItem(cart_id=cart.id, ticket_type_id=event.ticket_types[0].id, quantity=1))
        attempt = PaymentAttempt(
            cart_id=cart.id,
            event_id=event.id,
            idempotency_key=f"rep-{cart.id}",
            lines=json.dumps([]),
            buyer_email="who@example.com",
            amount_minor=2500,
            currency=event.currency,
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


def _refund(order: Order, amount: int, status: RefundStatus = RefundStatus.SUCCEEDED, when=None) -> None:
    with write_transaction():
        db.session.add(
            Refund(
                order_id=order.id,
                amount_minor=amount,
                currency=order.currency,
                reason="Requested by the buyer",
                requested_by="owner@example.com",
                status=status.value,
                idempotency_key=f"rep-refund-{next(_n)}",
                created_at=when or utcnow(),
                updated_at=when or utcnow(),
            )
        )


@pytest.fixture
def world(app):
    organiser = make_organiser("acme")
    event = make_event_of(organiser, "Gala", slug="gala", timezone="Europe/Paris")
    with write_transaction():
        db.session.add(TicketType(event_id=event.id, name="VIP", price_minor=9000, capacity=10, position=1))
    db.session.rollback()
    event = db.session.get(type(event), event.id)
    owner = make_user()
    add_member(owner, organiser, Role.OWNER)
    return organiser, event, owner


def _today(timezone: str) -> date:
    """Today where the dashboard counts days (UTC's date is another one near midnight)."""
    return utcnow().astimezone(ZoneInfo(timezone)).date()


def _last_30_days(timezone="Europe/Paris") -> reports.Period:
    return reports.preset("30", timezone, _today(timezone))


def test_the_numbers_of_an_event(app, world, client):
    organiser, event, owner = world
    standard, vip = event.ticket_types
    pair = make_order(event, [("Ada", "Lovelace"), ("Alan", "Turing")])  # 2 × 25.00
    single = make_order(event, [("Grace", "Hopper")], ticket_type_id=vip.id)  # 90.00
    _refund(pair, 2500)
    _refund(single, 9000, RefundStatus.FAILED)  # did not go back: not a refund
    _attempt(event, AttemptStatus.PAID)
    _attempt(event, AttemptStatus.PAID)
    _attempt(event, AttemptStatus.EXPIRED, code="card_declined", decline="insufficient_funds")
    _attempt(event, AttemptStatus.FAILED, code="payment_intent_authentication_failure")
    _attempt(event, AttemptStatus.EXPIRED)  # left the payment page
    _attempt(event, AttemptStatus.OPEN, code="card_declined", decline="expired_card")  # may still pay
    # Another event of the organiser is not in this event's dashboard.
    elsewhere = make_event_of(organiser, "Matinee", slug="matinee")
    make_order(elsewhere)
    _attempt(elsewhere, AttemptStatus.FAILED, code="card_declined", decline="stolen_card")
    # A buyer's cart made on the event's page, never taken to checkout: the funnel's first step.
    added = buyer_client(app).post(f"/events/{event.slug}/cart", data={f"quantity-{standard.id}": "1"})
    assert added.status_code in (200, 303)

    found = reports.report([event.id], _last_30_days(), utcnow())
    a = found.attempts
    assert (a.total, a.succeeded, a.not_paid, a.open) == (6, 2, 3, 1)
    assert a.success_rate == pytest.approx(0.4)
    assert [(r.reason, r.count) for r in a.reasons] == [
        (Reason.INSUFFICIENT_FUNDS, 1),
        (Reason.AUTHENTICATION_FAILED, 1),
        (None, 1),
    ]
    [eur] = found.money
    assert (eur.currency, eur.orders, eur.gross_minor, eur.refunds, eur.refunded_minor) == ("EUR", 2, 14000, 1, 2500)
    assert (eur.net_minor, eur.average_minor) == (11500, 7000)
    assert {s.name: s.total for s in found.sales.series} == {standard.name: 2, "VIP": 1}
    assert found.sales.granularity == reports.Granularity.DAY
    assert sum(found.sales.totals) == 3
    assert found.funnel == reports.Funnel(carts=7, checkouts=6, paid_orders=2)

    sign_in_as(client, owner)
    page = client.get(f"/admin/o/acme/events/{event.slug}/report")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for text in ("40.0%", "€140.00", "€25.00", "€115.00", "€70.00", "Insufficient funds", "3-D Secure failed"):
        assert text in html, text
    assert 'role="img" aria-labelledby="chart-funnel-title"' in html
    assert '<title id="chart-sales-title">' in html
    assert "Stolen" not in html  # the other event's failure


def test_currencies_are_never_added_and_yen_have_no_decimals(world, client):
    organiser, euro_event, owner = world
    yen_event = make_event_of(organiser, "Tokyo", slug="tokyo", timezone="Asia/Tokyo", currency="JPY")
    with write_transaction():
        db.session.execute(update(TicketType).where(TicketType.event_id == yen_event.id).values(price_minor=1000))
    make_order(yen_event)
    make_order(yen_event, [("A", "B"), ("C", "D")])  # ¥2,000
    make_order(euro_event)
    # Organiser-wide: two timezones, so days are UTC; one line per currency.
    found = reports.report([euro_event.id, yen_event.id], reports.preset("30", "UTC", _today("UTC")), utcnow())
    assert [(m.currency, m.orders, m.gross_minor, m.average_minor) for m in found.money] == [
        ("EUR", 1, 2500, 2500),
        ("JPY", 2, 3000, 1500),
    ]
    assert reports.timezone_of([euro_event.id, yen_event.id]) == "UTC"
    assert reports.timezone_of([yen_event.id]) == "Asia/Tokyo"
    make_order(yen_event)  # ¥4,000 over three orders: ¥1,333.33 is ¥1,333
    again = reports.report([yen_event.id], reports.preset("30", "Asia/Tokyo", _today("Asia/Tokyo")), utcnow())
    assert again.money[0].average_minor == 1333

    sign_in_as(client, owner)
    html = client.get("/admin/o/acme/reports").get_data(as_text=True)
    assert "¥4,000" in html and "¥1,333" in html and "€25.00" in html
    assert "Days in UTC" in html


def test_period_boundaries_are_days_in_the_events_timezone(world, client):
    organiser, event, owner = world
    late = make_order(event)
    next_day = make_order(event, [("A", "B"), ("C", "D")])
    # 23:30 in Paris on 1 March is 22:30 UTC; 00:30 on 3 March in Paris is 23:30 UTC on the 2nd.
    _at(late, datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    _at(next_day, datetime(2026, 3, 2, 23, 30, tzinfo=UTC))
    _attempt(event, AttemptStatus.PAID, when=datetime(2026, 3, 1, 22, 59, tzinfo=UTC))
    _refund(late, 2500, when=datetime(2026, 3, 2, 23, 0, tzinfo=UTC))  # 3 March, 00:00 in Paris
    today = date(2026, 3, 10)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    def of(first: str, last: str) -> reports.Report:
        return reports.report([event.id], reports.period_of(first, last, "Europe/Paris", today), now)

    first = of("2026-03-01", "2026-03-01")
    assert [m.orders for m in first.money] == [1] and first.attempts.total == 1
    assert first.money[0].refunded_minor == 0
    assert of("2026-03-02", "2026-03-02").money == []
    third = of("2026-03-03", "2026-03-03")
    assert [(m.orders, m.gross_minor, m.refunded_minor) for m in third.money] == [(1, 5000, 2500)]
    # Three days: buckets by local hour; 23:30 in Paris is the 24th hour of the 1st.
    three = of("2026-03-01", "2026-03-03")
    assert three.sales.granularity == reports.Granularity.HOUR
    assert len(three.sales.buckets) == 72
    assert three.sales.buckets[23] == datetime(2026, 3, 1, 23, 0)
    [series] = three.sales.series
    assert series.counts[23] == 1 and series.counts[48] == 2 and series.total == 3
    # A longer period: by local day.
    days = of("2026-02-25", "2026-03-05")
    assert days.sales.granularity == reports.Granularity.DAY
    assert days.sales.buckets[4] == datetime(2026, 3, 1)
    assert days.sales.series[0].counts[4:7] == [1, 0, 2]
    # Through the page: the dates in the form.
    sign_in_as(client, owner)
    html = client.get(f"/admin/o/acme/events/{event.slug}/report?from=2026-03-03&to=2026-03-03").get_data(as_text=True)
    assert "€50.00" in html and "€25.00" in html


def test_presets_and_all_time(world, client):
    organiser, event, owner = world
    old = make_order(event)
    _at(old, utcnow() - timedelta(days=45))
    recent = make_order(event)
    _at(recent, utcnow() - timedelta(days=3))
    today = _today("Europe/Paris")
    assert reports.report([event.id], reports.preset("30", "Europe/Paris", today), utcnow()).money[0].orders == 1
    assert reports.report([event.id], reports.preset("7", "Europe/Paris", today), utcnow()).money[0].orders == 1
    everything = reports.report([event.id], reports.preset("all", "Europe/Paris", today), utcnow())
    assert everything.money[0].orders == 2
    assert everything.sales.granularity == reports.Granularity.DAY
    assert sum(everything.sales.totals) == 2
    sign_in_as(client, owner)
    default = client.get(f"/admin/o/acme/events/{event.slug}/report").get_data(as_text=True)
    assert 'aria-current="page">Last 30 days' in default
    assert "€25.00" in default and "€50.00" not in default
    assert "€50.00" in client.get(f"/admin/o/acme/events/{event.slug}/report?preset=all").get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("from=2026-02-30", "The start date is not a date"),
        ("from=yesterday", "The start date is not a date"),
        ("to=2026-13-01", "The end date is not a date"),
        ("from=2026-03-05&to=2026-03-01", "The period ends before it starts"),
        ("from=1900-01-01&to=2026-01-01", "longer than ten years"),
        ("from=２０２６-03-01", "The start date is not a date"),
    ],
)
def test_a_bad_period_is_a_400_that_says_why(world, client, query, words):
    _organiser, event, owner = world
    sign_in_as(client, owner)
    for path in (f"/admin/o/acme/events/{event.slug}/report", "/admin/o/acme/reports"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert words in html
        assert 'aria-invalid="true"' in html


def test_another_organisers_event_is_not_found_and_limited_members_see_their_events(world, client):
    organiser, event, owner = world
    other = make_organiser("rival")
    theirs = make_event_of(other, "Rival gala", slug="rival-gala")
    make_order(theirs)
    sign_in_as(client, owner)
    assert client.get(f"/admin/o/acme/events/{theirs.slug}/report").status_code == 404
    assert client.get(f"/admin/o/rival/events/{theirs.slug}/report").status_code == 404
    assert client.get("/admin/o/rival/reports").status_code == 404
    # A member limited to another event sees only it in the organiser's dashboard.
    matinee = make_event_of(organiser, "Matinee", slug="matinee")
    make_order(matinee)
    make_order(event, [("A", "B"), ("C", "D")])
    limited = make_user()
    add_member(limited, organiser, Role.VIEWER, events=[matinee])
    client.post("/admin/sign-out")
    sign_in_as(client, limited)
    html = client.get("/admin/o/acme/reports").get_data(as_text=True)
    assert "€25.00" in html and "€50.00" not in html
    assert client.get(f"/admin/o/acme/events/{event.slug}/report").status_code == 404


def test_charts_escape_names_and_carry_their_title():
    from storefront import charts

    svg = charts.stacked_chart("c", "Sold <per> day", ["1 Mar", "2 Mar"], [("<script>VIP", [1, 2]), ("Floor", [0, 3])])
    assert svg.startswith('<svg class="chart chart-stacked"')
    assert 'role="img" aria-labelledby="c-title"' in svg and '<title id="c-title">Sold &lt;per&gt; day</title>' in svg
    assert "<script>" not in svg and "&lt;script&gt;VIP" in svg
    assert "style=" not in svg  # the Content-Security-Policy forbids inline styles
    # The axis: the tallest bar is 5, so the top is 6 and the half-way line 3 (whole numbers).
    assert ">6</text>" in svg and ">3</text>" in svg and ">0</text>" in svg
    bars = charts.bar_chart("b", "Funnel", [charts.Bar("Carts", 10, "10"), charts.Bar("Paid", 0, "0")])
    assert bars.count("<rect") == 2 and 'aria-labelledby="b-title"' in bars


def test_the_dashboard_is_one_snapshot_when_a_payment_lands_while_it_reads(app, monkeypatch):
    # A payment committed after the dashboard's first query is in none of its figures, rather
    # than in the later ones only (attempts without it, money or the funnel with it).
    import threading

    from storefront import report_rollup
    from storefront.models import Event

    event = make_event_of(make_organiser("snap"))
    event_id = event.id
    make_order(event)
    _attempt(event, AttemptStatus.PAID)
    first_read = report_rollup.rolled_up_until

    def pay_elsewhere() -> None:
        with app.app_context():
            landed = db.session.get(Event, event_id)
            make_order(landed)
            _attempt(landed, AttemptStatus.PAID)
            db.session.remove()

    def read_then_pay():
        watermark = first_read()
        worker = threading.Thread(target=pay_elsewhere)
        worker.start()
        worker.join()
        return watermark

    period = _last_30_days()
    monkeypatch.setattr(report_rollup, "rolled_up_until", read_then_pay)
    found = reports.report([event_id], period, utcnow())
    assert found.attempts.total == 1
    assert [m.orders for m in found.money] == [1] and found.funnel.paid_orders == 1
    monkeypatch.setattr(report_rollup, "rolled_up_until", first_read)
    again = reports.report([event_id], period, utcnow())
    assert again.attempts.total == 2 and [m.orders for m in again.money] == [2]
