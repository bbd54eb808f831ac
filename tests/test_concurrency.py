"""Many buyers racing for the last tickets, on SQLite and PostgreSQL: never oversell.

Every race runs twice: with the real add-to-cart (through the whole app), where
exactly the capacity must be held and every loser told "sold out" or "only N left";
and with ``racers.naive_hold``, a read-then-write hold written here, where the same
harness must catch an oversell. A harness that cannot catch the naive hold could not
catch a broken real one either.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.models import Cart, CartItem, CartStatus, TicketType

from . import racers
from .factories import make_event, reload_event

THREADS = 32
PROCESSES = 6
ATTEMPTS_PER_PROCESS = 6
CAPACITY = 10

# Every thread may hold a connection at once; the default pool would queue them
# and hide the race.
pytestmark = pytest.mark.app_config(DB_POOL_SIZE=THREADS)


def held_in_active_carts(event_id: int) -> int:
    db.session.rollback()
    return db.session.execute(
        select(func.coalesce(func.sum(CartItem.quantity), 0))
        .join(Cart, Cart.id == CartItem.cart_id)
        .join(TicketType, TicketType.id == CartItem.ticket_type_id)
        .where(TicketType.event_id == event_id, Cart.status == CartStatus.ACTIVE.value)
    ).scalar_one()


def assert_never_oversold(outcomes: Counter, event_id: int, capacity: int, attempts: int) -> None:
    """Exactly ``capacity`` held, everyone else told why, counters and carts agree."""
    assert sum(outcomes.values()) == attempts
    errors = {o: n for o, n in outcomes.items() if o.startswith("error")}
    assert not errors, errors
    assert outcomes[racers.HELD] == capacity, outcomes
    assert outcomes[racers.SOLD_OUT] == attempts - capacity, outcomes
    event = reload_event(event_id)
    assert sum(tt.held for tt in event.ticket_types) == capacity
    assert held_in_active_carts(event_id) == capacity
    for tt in event.ticket_types:
        assert tt.held + tt.sold <= tt.capacity
    if event.capacity is not None:
        assert event.held == capacity <= event.capacity


def assert_race_caught(outcomes: Counter, capacity: int) -> None:
    """The naive hold let more buyers through than there were tickets."""
    errors = {o: n for o, n in outcomes.items() if o.startswith("error")}
    assert not errors, errors
    assert outcomes[racers.HELD] > capacity, (
        f"the harness did not catch the naive hold's race: {outcomes}; it cannot be trusted to catch a real one"
    )


# --- threads --------------------------------------------------------------------------


# The helpers below answer plain values: the racing threads must not touch the ORM
# objects of the test's own session.


def _one_type_event() -> tuple[str, int, int]:
    """(slug, event id, ticket type id) of one type of CAPACITY tickets."""
    event = make_event(ticket_types=[{"name": "Last row", "capacity": CAPACITY, "max_per_order": 10}])
    return event.slug, event.id, event.ticket_types[0].id


def _event_wide() -> tuple[str, int, list[int]]:
    """Two types of 10 each in a venue of 10: the event's own limit is what runs out."""
    event = make_event(
        capacity=CAPACITY,
        ticket_types=[{"name": "Standing", "capacity": 10}, {"name": "Seated", "capacity": 10}],
    )
    return event.slug, event.id, [tt.id for tt in event.ticket_types]


def test_threads_racing_for_the_last_tickets_hold_exactly_the_capacity(app):
    slug, event_id, tt_id = _one_type_event()
    outcomes = racers.race_threads(app, [lambda: racers.buy_over_http(racers.buyer(app), slug, tt_id)] * THREADS)
    assert_never_oversold(outcomes, event_id, CAPACITY, THREADS)


def test_threads_racing_for_an_event_wide_capacity_hold_exactly_it(app):
    slug, event_id, tt_ids = _event_wide()
    buyers = [
        (lambda tt_id=tt_ids[i % 2]: racers.buy_over_http(racers.buyer(app), slug, tt_id)) for i in range(THREADS)
    ]
    outcomes = racers.race_threads(app, buyers)
    assert_never_oversold(outcomes, event_id, CAPACITY, THREADS)


def test_threads_catch_a_naive_read_then_write_hold(app):
    slug, event_id, tt_id = _one_type_event()
    outcomes = racers.race_threads(app, [lambda: racers.naive_hold(slug, tt_id)] * THREADS)
    assert_race_caught(outcomes, CAPACITY)


def test_threads_catch_a_naive_hold_of_an_event_wide_capacity(app):
    slug, event_id, tt_ids = _event_wide()
    buyers = [(lambda tt_id=tt_ids[i % 2]: racers.naive_hold(slug, tt_id)) for i in range(THREADS)]
    outcomes = racers.race_threads(app, buyers)
    assert_race_caught(outcomes, CAPACITY)


# --- OS processes ---------------------------------------------------------------------


def race_processes(db_url: str, mode: str, slug: str, tt_ids: list[int]) -> Counter:
    """``PROCESSES`` spawned interpreters, each its own app and connection pool,
    released at once, each making ``ATTEMPTS_PER_PROCESS`` attempts."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=racers.process_racer,
            args=(db_url, mode, slug, tt_ids, ATTEMPTS_PER_PROCESS, barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes: Counter = Counter()
    try:
        for _ in procs:
            outcomes.update(results.get(timeout=120))
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        results.close()
        results.join_thread()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return outcomes


ATTEMPTS = PROCESSES * ATTEMPTS_PER_PROCESS


def test_processes_racing_for_the_last_tickets_hold_exactly_the_capacity(app):
    slug, event_id, tt_id = _one_type_event()
    outcomes = race_processes(app.config["SQLALCHEMY_DATABASE_URI"], "http", slug, [tt_id])
    assert_never_oversold(outcomes, event_id, CAPACITY, ATTEMPTS)


def test_processes_racing_for_an_event_wide_capacity_hold_exactly_it(app):
    slug, event_id, tt_ids = _event_wide()
    outcomes = race_processes(app.config["SQLALCHEMY_DATABASE_URI"], "http", slug, tt_ids)
    assert_never_oversold(outcomes, event_id, CAPACITY, ATTEMPTS)


def test_processes_catch_a_naive_read_then_write_hold(app):
    slug, event_id, tt_id = _one_type_event()
    outcomes = race_processes(app.config["SQLALCHEMY_DATABASE_URI"], "naive", slug, [tt_id])
    assert_race_caught(outcomes, CAPACITY)


def test_a_lapsed_hold_is_taken_over_by_exactly_the_racers_that_fit(app):
    """Stock held by lapsed carts goes back exactly once when racers need it."""
    from datetime import timedelta

    from .factories import lapse

    slug, event_id, tt_id = _one_type_event()
    client = app.test_client()
    assert racers.buy_over_http(client, slug, tt_id, n=CAPACITY) == racers.HELD
    with client.session_transaction() as session:
        lapse(session["cart"], ago=timedelta(minutes=1))
    outcomes = racers.race_threads(app, [lambda: racers.buy_over_http(racers.buyer(app), slug, tt_id)] * THREADS)
    assert_never_oversold(outcomes, event_id, CAPACITY, THREADS)
    db.session.rollback()
    statuses = Counter(db.session.execute(select(Cart.status)).scalars())
    assert statuses == {CartStatus.ACTIVE.value: CAPACITY, CartStatus.EXPIRED.value: 1}
