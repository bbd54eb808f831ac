"""Many webhook deliveries at once for the last tickets, on PostgreSQL: copies of the same
event and completions of different sessions, in parallel threads through the whole app.

Five buyers paid for one ticket each of a type with three left: the first still holds
its ticket, the four others paid after their hold was released (late payments). Every
completion is delivered four times, all at once. Exactly three orders (the holder's
and two late ones) and two refunds must come out, whatever the interleaving.
"""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from storefront import cart as carts
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, Order, PaymentAttempt, utcnow

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    assert_promises,
    buy_until_stripe,
    deliver,
    drop_completed,
    sandbox,
    shop,
    stripe_event,
)
from .factories import cart_by_token, make_event, ticket_type

BUYERS = 5
COPIES = 4
THREADS = 8


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_parallel_deliveries_for_the_last_tickets_keep_the_promises(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Last ones", "price_minor": 2000, "capacity": 3}])
    tt_id = event.ticket_types[0].id
    drop_completed(sandbox, count=BUYERS)
    sessions = []
    for i in range(BUYERS):
        client = shop.test_client()
        session_id = buy_until_stripe(client, event, {tt_id: 1})
        assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
        if i > 0:  # every hold but the first is released before its payment is heard of
            with client.session_transaction() as sess:
                cart_id = cart_by_token(sess["cart"]).id
            with write_transaction():
                assert carts.release_checking_out(cart_id, utcnow())
        sessions.append(session_id)
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 1)
    events = [stripe_event("checkout.session.completed", s) for s in sessions]

    work = [e for e in events for _ in range(COPIES)]
    random.Random(4).shuffle(work)
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []

    def deliverer():
        client = shop.test_client()
        with shop.app_context():
            barrier.wait()
            while True:
                with lock:
                    if not work:
                        return
                    event_ = work.pop()
                status = deliver(client, event_).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=deliverer) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert statuses == [200] * (BUYERS * COPIES)
    client = shop.test_client()
    for event_ in events:  # every one was processed: a further copy is a duplicate
        assert deliver(client, event_).get_json()["outcome"] == "duplicate"

    db.session.rollback()
    orders = db.session.execute(select(Order)).scalars().all()
    assert len(orders) == 3
    assert sessions[0] in {o.stripe_checkout_session_id for o in orders}  # the holder always gets its ticket
    refunded = db.session.execute(
        select(func.count(PaymentAttempt.id)).where(PaymentAttempt.status == AttemptStatus.REFUNDED.value)
    ).scalar_one()
    assert refunded == 2
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (3, 0)
    assert_promises()
