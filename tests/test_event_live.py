"""The live on-sale view (``storefront.live_sales``, ``admin.event_live``): its numbers
after real buyers went through the shop and the sandbox over HTTP (holds, a payment in
flight, a sale, a hold that lapsed), its sales per minute, its access rules, the fragment
that htmx polls, the cache that makes N watchers cost one reading, and the queries a
reading costs (indexed ranges only: the EXPLAIN on PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import update

from storefront import live_sales
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, Event, Order, PaymentAttempt, TicketType, utcnow
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user, sign_in_as
from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    add,
    attempt_of,
    buy_until_stripe,
    cart_token,
    sandbox,
    shop,
    wait_for_order,
)
from .factories import lapse, make_order

NO_CACHE = pytest.mark.app_config(LIVE_VIEW_CACHE_SECONDS=0)


def _with_two_types(organiser, **fields) -> Event:
    """An event with "Standard" (capacity 100, from make_event_of) and "VIP" (capacity 10)."""
    event = make_event_of(organiser, "Harbour Jazz", **fields)
    with write_transaction():
        db.session.add(TicketType(event_id=event.id, name="VIP", price_minor=9000, capacity=10, position=1))
    db.session.rollback()
    return db.session.get(Event, event.id)


def _staff(app, organiser, role: Role = Role.OWNER):
    user = make_user()
    add_member(user, organiser, role)
    client = app.test_client()
    sign_in_as(client, user)
    return client


def _live_url(organiser, event) -> str:
    return f"/admin/o/{organiser.slug}/events/{event.slug}/live"


def _figure(page: str, name: str) -> str:
    match = re.search(rf'data-live="{name}">([^<]*)<', page)
    assert match, f"no {name} figure in the page"
    return match.group(1).strip()


def _type_row(page: str, tt_id: int) -> list[str]:
    row = re.search(rf'<tr data-ticket-type="{tt_id}">(.*?)</tr>', page, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def _in_flight_row(page: str, status: str) -> str:
    row = re.search(rf'<tr data-in-flight="{status}">(.*?)</tr>', page, re.S).group(1)
    return re.findall(r'<td class="num">([^<]*)</td>', row)[0]


@NO_CACHE
def test_the_numbers_follow_real_buyers_holds_payments_and_a_lapse(shop, sandbox):
    organiser = make_organiser()
    event = _with_two_types(organiser)
    standard, vip = (tt.id for tt in event.ticket_types)
    watcher = _staff(shop, organiser)

    page = watcher.get(_live_url(organiser, event)).get_data(as_text=True)
    assert (_figure(page, "sold"), _figure(page, "held"), _figure(page, "in-flight")) == ("0 / 110", "0", "0")

    holder = shop.test_client()
    add(holder, event, {standard: 2})
    payer = shop.test_client()
    session_id = buy_until_stripe(payer, event, {vip: 3})
    lapsing = shop.test_client()
    add(lapsing, event, {standard: 4})
    lapse(cart_token(lapsing))

    page = watcher.get(_live_url(organiser, event)).get_data(as_text=True)
    # Held: 2 in a cart, 3 in a cart at Stripe; the lapsed cart's 4 are not a live hold.
    assert _figure(page, "held") == "5"
    assert _type_row(page, standard) == ["0", "2 (+4 lapsed)", "94", "100"]
    assert _type_row(page, vip) == ["0", "3", "7", "10"]
    assert _figure(page, "left") == str(110 - 5 - 4)
    assert _figure(page, "in-flight").startswith("1") and _in_flight_row(page, "open") == "1"
    assert "more held by carts whose time ran out" in page

    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    wait_for_order(session_id)
    assert attempt_of(session_id).status == AttemptStatus.PAID.value

    page = watcher.get(_live_url(organiser, event)).get_data(as_text=True)
    assert (_figure(page, "sold"), _figure(page, "held"), _figure(page, "in-flight")) == ("3 / 110", "2", "0")
    assert _type_row(page, vip) == ["3", "0", "7", "10"]
    # The sale is in this minute's bar (or the previous one's, if the minute turned meanwhile).
    minute_row = r'<tr><th scope="row">[^<]+</th><td class="num">(\d+)</td><td class="num">(\d+)</td></tr>'
    minutes = re.findall(minute_row, page)
    assert len(minutes) == live_sales.MINUTES
    assert sum(int(t) for t, _o in minutes) == 3 and sum(int(o) for _t, o in minutes) == 1


def test_sales_per_minute_count_tickets_in_the_minute_their_order_was_made(app):
    organiser = make_organiser()
    event = make_event_of(organiser)
    now = utcnow().replace(second=30, microsecond=0)
    for minutes_ago, attendees in ((20, 5), (15, 1), (3, 1), (0, 2), (0, 1)):
        order = make_order(event, [("Ada", f"L{n}") for n in range(attendees)])
        with write_transaction():
            db.session.execute(
                update(Order).where(Order.id == order.id).values(created_at=now - timedelta(minutes=minutes_ago))
            )
    db.session.rollback()

    live = live_sales.read(db.session.get(Event, event.id), now)
    assert [m.tickets for m in live.minutes] == [0] * 11 + [1, 0, 0, 3]
    assert [m.orders for m in live.minutes][-4:] == [1, 0, 0, 2]
    assert live.minutes[-1].starts_at == now.replace(second=0) and live.busiest_minute == 3
    # The orders of 15 and 20 minutes ago are out of the window.
    assert sum(m.tickets for m in live.minutes) == 4


def test_payments_in_flight_by_state_and_an_ended_one_not(app):
    organiser = make_organiser()
    event = make_event_of(organiser)
    order = make_order(event)
    now = utcnow()
    with write_transaction():
        for n, (status, amount) in enumerate(
            [("creating", 1000), ("open", 2500), ("open", 5000), ("processing", 700), ("expired", 9999), ("paid", 1)]
        ):
            db.session.add(
                PaymentAttempt(
                    cart_id=order.cart_id,
                    event_id=event.id,
                    idempotency_key=f"live-{n}",
                    lines="[]",
                    buyer_email="ada@example.com",
                    amount_minor=amount,
                    currency="EUR",
                    status=status,
                    session_expires_at=now + timedelta(minutes=30),
                )
            )
    db.session.rollback()
    live = live_sales.read(db.session.get(Event, event.id))
    assert [(f.status, f.count, f.amount_minor) for f in live.in_flight] == [
        ("creating", 1, 1000),
        ("open", 2, 7500),
        ("processing", 1, 700),
    ]
    assert (live.payments_in_flight, live.amount_in_flight_minor) == (4, 9200)


def test_an_htmx_poll_gets_only_the_fragment_never_cached(app):
    organiser = make_organiser()
    event = make_event_of(organiser)
    client = _staff(app, organiser, Role.VIEWER)

    full = client.get(_live_url(organiser, event))
    page = full.get_data(as_text=True)
    assert full.status_code == 200 and "<html" in page and 'id="live-sales"' in page
    assert "js/live.js" in page

    poll = client.get(_live_url(organiser, event), headers={"HX-Request": "true"})
    fragment = poll.get_data(as_text=True)
    assert poll.status_code == 200
    assert fragment.lstrip().startswith('<section id="live-sales"')
    assert "<html" not in fragment and "<nav" not in fragment
    assert 'hx-trigger="every 5s, live-refresh"' in fragment and 'hx-swap="outerHTML"' in fragment
    assert f'hx-get="{_live_url(organiser, event)}"' in fragment
    for answer in (full, poll):
        assert "no-store" in answer.headers["Cache-Control"]
        assert "HX-Request" in answer.headers["Vary"]


def test_the_event_page_links_to_the_live_view_for_those_who_may_see_it(app):
    organiser = make_organiser()
    event = make_event_of(organiser)
    event_url = f"/admin/o/{organiser.slug}/events/{event.slug}"
    assert _live_url(organiser, event) in _staff(app, organiser, Role.VIEWER).get(event_url).get_data(as_text=True)


def test_another_organisers_event_is_not_found(app):
    ours, theirs = make_organiser(), make_organiser()
    their_event = make_event_of(theirs)
    client = _staff(app, ours)
    assert client.get(_live_url(ours, their_event)).status_code == 404
    assert client.get(_live_url(theirs, their_event)).status_code == 404


def test_the_door_role_may_not_watch_the_sale(app):
    organiser = make_organiser()
    event = make_event_of(organiser)
    answer = _staff(app, organiser, Role.DOOR).get(_live_url(organiser, event))
    assert answer.status_code == 404
    assert "Held in carts" not in answer.get_data(as_text=True)


class _Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, conn, cursor, statement, *args) -> None:
        self.seen.append(statement)


@pytest.fixture
def statements(app):
    counter = _Statements()
    sa_event.listen(db.engine, "before_cursor_execute", counter)
    yield counter
    sa_event.remove(db.engine, "before_cursor_execute", counter)


def test_a_reading_is_four_queries_and_the_cache_makes_the_next_watcher_free(app, statements):
    organiser = make_organiser()
    event = make_event_of(organiser)
    event = db.session.get(Event, event.id)
    assert event.capacity is None  # loaded: what follows is the reading's own
    statements.seen.clear()

    live_sales.read(event)
    assert len(statements.seen) == 4, statements.seen
    assert not any("FOR UPDATE" in s or s.lstrip().upper().startswith(("UPDATE", "INSERT")) for s in statements.seen)

    app.config["LIVE_VIEW_CACHE_SECONDS"] = 60
    first = live_sales.read_cached(event)
    make_order(event, [("Ada", "Lovelace")])
    with write_transaction():
        db.session.execute(update(TicketType).where(TicketType.event_id == event.id).values(sold=1))
    # The event as the next request's access check has it loaded.
    event = db.session.get(Event, event.id)
    assert event.capacity is None
    statements.seen.clear()
    assert live_sales.read_cached(event) is first
    assert statements.seen == []
    # Without the cache the same call reads the sale as it is now.
    app.config["LIVE_VIEW_CACHE_SECONDS"] = 0
    assert live_sales.read_cached(event).sold == 1


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_on_postgresql_each_query_is_an_index_range(app, backend):
    """EXPLAIN of the four queries, sequential scans off so that the planner's choice on
    tiny tables does not hide the plan: each must find its index (without the index only
    a Seq Scan would be left, whatever the setting)."""
    organiser = make_organiser()
    event = make_event_of(organiser)
    queries = {
        "ix_ticket_types_event_id": (live_sales._TYPES, {"event_id": event.id}),
        "ix_carts_status_expires_at": (
            live_sales._LAPSED,
            {"now": utcnow(), "ticket_type_ids": [event.ticket_types[0].id]},
        ),
        "ix_orders_event_id_created_at_id": (live_sales._RECENT_ORDERS, {"event_id": event.id, "since": utcnow()}),
        "ix_payment_attempts_in_flight": (live_sales._IN_FLIGHT, {"event_id": event.id}),
    }
    conn = db.session.connection()
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        for index, (statement, params) in queries.items():
            sql = statement.params(**params).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert index in plan and "Seq Scan" not in plan, plan
            if index == "ix_orders_event_id_created_at_id":
                assert "ix_tickets_order_id" in plan, plan
    finally:
        db.session.rollback()
