"""Buyers for the concurrency tests, usable from threads and from spawned processes.

Each buyer makes one attempt and says how it went: ``HELD``, ``SOLD_OUT`` (the
buyer was told "sold out" or "only N left"), or ``"error: …"`` for anything else (a
500, "database is locked", a message nobody can read). The harness is the same for
the real hold and for ``naive_hold``, a deliberately wrong read-then-write hold that
shows the harness can see a race.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import select, update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, TicketType

HELD = "held"
SOLD_OUT = "sold_out"

_SHORTAGE_WORDS = re.compile(r"is sold out\.|Only \d+ tickets? left for")
# The naive hold's gap between reading and writing: real code has one too (the
# round trips in between), this makes it wide enough to be seen in a few attempts.
NAIVE_GAP_S = 0.005


def buyer(app):
    """A test client for one more buyer, of an address of its own (the limits count per client)."""
    from .conftest import buyer_client

    return buyer_client(app)


def buy_over_http(client, slug: str, tt_id: int, n: int = 1) -> str:
    """Add ``n`` tickets as htmx does, through the whole app (session, CSRF off, views)."""
    response = client.post(f"/events/{slug}/cart", data={f"quantity-{tt_id}": str(n)}, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    if response.status_code == 200 and "cart-line" in body:
        return HELD
    if response.status_code == 409 and _SHORTAGE_WORDS.search(body):
        return SOLD_OUT
    return f"error: {response.status_code} {body[:300]!r}"


def naive_hold(slug: str, tt_id: int, n: int = 1) -> str:
    """The hold as it must not be written: read what is left, then write the new count.

    Two buyers who read the same count both succeed and one write is lost: an
    oversell the counters do not even show. Only the concurrency tests use it.
    """
    tt_held, tt_left, event_id, ev_held, ev_left = db.session.execute(
        select(
            TicketType.held,
            TicketType.capacity - TicketType.sold - TicketType.held,
            Event.id,
            Event.held,
            Event.capacity - Event.sold - Event.held,
        )
        .join(Event, Event.id == TicketType.event_id)
        .where(TicketType.id == tt_id)
    ).one()
    db.session.rollback()
    if tt_left < n or (ev_left is not None and ev_left < n):
        return SOLD_OUT
    time.sleep(NAIVE_GAP_S)
    with write_transaction():
        db.session.execute(update(TicketType).where(TicketType.id == tt_id).values(held=tt_held + n))
        db.session.execute(update(Event).where(Event.id == event_id).values(held=ev_held + n))
    return HELD


def race_threads(app, buyers: list[Callable[[], str]], timeout: float = 60) -> Counter:
    """Run every buyer in its own thread, all released at once; count the outcomes."""
    barrier = threading.Barrier(len(buyers))
    outcomes: list[str | None] = [None] * len(buyers)

    def run(i: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout)
                outcomes[i] = buyers[i]()
            except Exception as error:  # reported as an outcome, asserted by the test
                outcomes[i] = f"error: {error!r}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(buyers))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    return Counter(o if o is not None else "error: did not finish" for o in outcomes)


def process_racer(db_url: str, mode: str, slug: str, tt_ids: list[int], attempts: int, barrier, results) -> None:
    """One OS process of buyers: waits for the others, then makes ``attempts`` attempts
    (one fresh buyer each), cycling through ``tt_ids``; puts its outcomes on ``results``."""
    from .conftest import make_app

    app = make_app(db_url)
    outcomes: list[str] = []
    try:
        with app.app_context():
            barrier.wait(60)
            for i in range(attempts):
                tt_id = tt_ids[i % len(tt_ids)]
                try:
                    if mode == "naive":
                        outcomes.append(naive_hold(slug, tt_id))
                    else:
                        outcomes.append(buy_over_http(buyer(app), slug, tt_id))
                except Exception as error:
                    outcomes.append(f"error: {error!r}")
                finally:
                    db.session.remove()
    finally:
        results.put(outcomes)
        with app.app_context():
            db.engine.dispose()
