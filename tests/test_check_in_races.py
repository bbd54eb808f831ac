"""Doors racing to check in the same tickets, on SQLite and PostgreSQL: each ticket is
admitted exactly once.

Every race runs twice: with the real scan (through the whole app), where exactly one
door admits each ticket and every other is told "already checked in"; and with
``door_racers.naive_scan``, a read-then-write check-in written here, where the same
harness must catch a ticket admitted twice. A harness that cannot catch the naive scan
could not catch a broken real one either.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.models import Ticket, TicketStatus
from storefront.staff_models import CheckIn, CheckInResult, Role

from . import door_racers
from .admin_support import add_member, make_event_of, make_organiser, quick_users, reload_user
from .factories import make_order

THREADS = 12
PROCESSES = 4
TICKETS = 6

# Every thread may hold a connection at once; the default pool would queue them and hide the race.
pytestmark = pytest.mark.app_config(DB_POOL_SIZE=THREADS)


def _door(app):
    organiser = make_organiser("race-hall")
    event = make_event_of(organiser, "Race Night")
    # Two members, the doors sharing them (each scan its own nonce).
    users = quick_users("door0@race.example", "door1@race.example")
    for user in users:
        add_member(user, organiser, Role.DOOR)
    order = make_order(event, [(f"Guest{i}", "Racer") for i in range(TICKETS)])
    codes = [t.code for t in order.tickets]
    url = f"/admin/o/{organiser.slug}/events/{event.slug}/door/scan"
    return url, codes, [reload_user(u.id) for u in users], event


def _race_threads(app, doors) -> list[str]:
    barrier = threading.Barrier(len(doors))
    outcomes: list[str | None] = [None] * len(doors)

    def run(i: int) -> None:
        with app.app_context():
            try:
                barrier.wait(60)
                outcomes[i] = doors[i]()
            except Exception as error:
                outcomes[i] = f"error: {error!r}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(doors))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    return [o if o is not None else "error: did not finish" for o in outcomes]


def _admissions_logged(code: str) -> int:
    db.session.rollback()
    return db.session.execute(
        select(func.count(CheckIn.id))
        .join(Ticket, Ticket.id == CheckIn.ticket_id)
        .where(Ticket.code == code, CheckIn.result == CheckInResult.ADMITTED)
    ).scalar_one()


def test_threads_scanning_one_ticket_at_once_admit_it_once(app):
    url, codes, users, _event = _door(app)
    code = codes[0]
    doors = [
        (
            lambda user=user, i=i: door_racers.scan_over_http(
                door_racers.door_client(app, user.id, user.session_version), url, code, f"thread-{i:04d}"
            )
        )
        for i, user in enumerate(users * (THREADS // 2))
    ]
    outcomes = Counter(_race_threads(app, doors))
    assert outcomes == {door_racers.ADMITTED: 1, door_racers.ALREADY_USED: THREADS - 1}, outcomes
    assert _admissions_logged(code) == 1
    db.session.rollback()
    assert db.session.execute(select(Ticket.status).where(Ticket.code == code)).scalar_one() == TicketStatus.USED.value


def test_threads_catch_a_naive_read_then_write_check_in(app):
    _url, codes, _users, _event = _door(app)
    outcomes = Counter(_race_threads(app, [lambda: door_racers.naive_scan(codes[0])] * THREADS))
    assert not any(o.startswith("error") for o in outcomes), outcomes
    assert outcomes[door_racers.ADMITTED] > 1, f"the harness saw no race: {outcomes}"


def test_a_retried_scan_racing_its_first_copy_is_counted_once(app):
    """A phone that sends the same scan again before the first answer arrived: both
    copies carry one nonce; one row, and both answered "admitted"."""
    url, codes, users, _event = _door(app)
    user = users[0]
    doors = [
        (
            lambda: door_racers.scan_over_http(
                door_racers.door_client(app, user.id, user.session_version), url, codes[0], "one-scan-sent-twice"
            )
        )
    ] * 4
    outcomes = Counter(_race_threads(app, doors))
    assert outcomes == {door_racers.ADMITTED: 4}, outcomes
    db.session.rollback()
    assert db.session.execute(select(func.count(CheckIn.id))).scalar_one() == 1


# --- OS processes ---------------------------------------------------------------------------


def _race_processes(app, mode: str) -> list[tuple[str, str]]:
    url, codes, users, _event = _door(app)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    db_url = app.config["SQLALCHEMY_DATABASE_URI"]
    procs = [
        ctx.Process(
            target=door_racers.process_door,
            args=(
                db_url,
                mode,
                url,
                codes,
                users[i % 2].id,
                users[i % 2].session_version,
                f"proc{i}",
                barrier,
                results,
            ),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes: list[tuple[str, str]] = []
    try:
        for _ in procs:
            outcomes.extend(results.get(timeout=120))
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        results.close()
        results.join_thread()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return outcomes


def test_processes_scanning_the_same_tickets_admit_each_once(app):
    outcomes = _race_processes(app, "http")
    assert len(outcomes) == PROCESSES * TICKETS
    errors = [o for o in outcomes if o[1].startswith("error")]
    assert not errors, errors
    per_ticket = Counter(code for code, result in outcomes if result == door_racers.ADMITTED)
    assert sorted(per_ticket.values()) == [1] * TICKETS, per_ticket
    for code in per_ticket:
        assert _admissions_logged(code) == 1


def test_processes_catch_a_naive_read_then_write_check_in(app):
    outcomes = _race_processes(app, "naive")
    assert not [o for o in outcomes if o[1].startswith("error")]
    admitted = Counter(code for code, result in outcomes if result == door_racers.ADMITTED)
    assert max(admitted.values()) > 1, f"the harness saw no race: {admitted}"
