"""The payment attempt's timeline (``attempt_events``): every status move writes its row in
the move's transaction (``attempts.move`` and ``move_where``), and each failed try inside a
session (a decline, a failed 3-D Secure step, a failed bank debit) writes one with Stripe's
codes, driven through the Stripe sandbox over HTTP. The table is append-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from storefront import attempts
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptEvent, AttemptStatus, PaymentAttempt, utcnow
from storefront.payments import gateway as gw

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    IBAN_FAILS,
    attempt_of,
    buy_until_stripe,
    sandbox,
    shop,
    wait_for_order,
)
from .factories import make_event
from .sandbox_support import wait_until
from .test_attempt_lifecycle import _attempt


def _events(attempt_id: int) -> list[tuple]:
    db.session.rollback()
    return [
        (e.kind, e.from_status, e.to_status, e.error_code, e.decline_code)
        for e in db.session.execute(
            select(AttemptEvent).where(AttemptEvent.attempt_id == attempt_id).order_by(AttemptEvent.id)
        ).scalars()
    ]


def test_move_writes_one_row_in_the_same_transaction(app):
    attempt_id = _attempt(AttemptStatus.OPEN)
    with pytest.raises(RuntimeError, match="rolled back"):
        with write_transaction():
            attempts.move(db.session.get(PaymentAttempt, attempt_id), AttemptStatus.EXPIRED, utcnow())
            raise RuntimeError("rolled back")
    assert _events(attempt_id) == []  # nothing without the move
    with write_transaction():
        attempts.move(db.session.get(PaymentAttempt, attempt_id), AttemptStatus.EXPIRED, utcnow())
    assert _events(attempt_id) == [("moved", "open", "expired", None, None)]


def test_an_illegal_move_writes_nothing(app):
    attempt_id = _attempt(AttemptStatus.PAID)
    with pytest.raises(attempts.IllegalAttemptTransition):
        with write_transaction():
            attempts.move(db.session.get(PaymentAttempt, attempt_id), AttemptStatus.OPEN, utcnow())
    assert _events(attempt_id) == []


def test_move_where_writes_a_row_per_moved_attempt_only(app):
    one, two, paid = _attempt(AttemptStatus.OPEN), _attempt(AttemptStatus.OPEN), _attempt(AttemptStatus.PAID)
    with write_transaction():
        moved = attempts.move_where(
            PaymentAttempt.id.in_([one, two, paid]),
            from_=[AttemptStatus.OPEN],
            to=AttemptStatus.FAILED,
            now=utcnow() + timedelta(seconds=1),
            error_code="payment_method_provider_decline",
        )
    assert moved == 2
    for attempt_id in (one, two):
        assert _events(attempt_id) == [("moved", "open", "failed", "payment_method_provider_decline", None)]
    assert _events(paid) == []
    # Several sources: the UPDATE cannot say which each left.
    three = _attempt(AttemptStatus.CREATING)
    with write_transaction():
        attempts.move_where(
            PaymentAttempt.id == three,
            from_=[AttemptStatus.CREATING, AttemptStatus.OPEN],
            to=AttemptStatus.EXPIRED,
            now=utcnow(),
        )
    assert _events(three) == [("moved", None, "expired", None, None)]


def test_the_timeline_is_append_only(app):
    attempt_id = _attempt(AttemptStatus.OPEN)
    with write_transaction():
        attempts.move(db.session.get(PaymentAttempt, attempt_id), AttemptStatus.EXPIRED, utcnow())
    for statement in ("UPDATE attempt_events SET kind = 'x'", "DELETE FROM attempt_events"):
        with pytest.raises(Exception, match="append-only"):
            with write_transaction():
                db.session.execute(text(statement))
        db.session.rollback()
    assert len(_events(attempt_id)) == 1


def _wait_events(session_id: str, count: int) -> tuple[int, list[tuple]]:
    attempt_id = wait_until(lambda: attempt_of(session_id), what="the attempt").id
    wait_until(lambda: len(_events(attempt_id)) >= count, what=f"{count} timeline rows")
    return attempt_id, _events(attempt_id)


def test_a_decline_then_a_payment(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 1900, "capacity": 3}])
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    assert sandbox.pay(session_id, card=CARD_DECLINED)["outcome"] == "declined"
    _, rows = _wait_events(session_id, 2)
    assert rows == [
        ("moved", "creating", "open", None, None),
        ("try_failed", None, None, "card_declined", "generic_decline"),
    ]
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    wait_for_order(session_id)
    attempt_id, rows = _wait_events(session_id, 3)
    assert rows[2] == ("moved", "open", "paid", None, None)
    db.session.rollback()
    pi = db.session.execute(
        select(AttemptEvent.stripe_payment_intent_id).where(
            AttemptEvent.attempt_id == attempt_id, AttemptEvent.kind == "try_failed"
        )
    ).scalar_one()
    assert pi and pi.startswith("pi_")


def test_a_failed_three_d_secure_step(shop, sandbox):
    event = make_event()
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 1})
    assert sandbox.pay(session_id, card=CARD_3DS, authenticate="fail")["outcome"] == "declined"
    _, rows = _wait_events(session_id, 2)
    assert rows[1][:4] == ("try_failed", None, None, "payment_intent_authentication_failure")


def test_a_failed_bank_debit(shop, sandbox):
    event = make_event()
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 1})
    assert sandbox.pay(session_id, iban=IBAN_FAILS)["outcome"] == "processing"
    wait_until(lambda: attempt_of(session_id).status == AttemptStatus.PROCESSING.value, what="processing")
    pi_id = gw.get_gateway().retrieve_checkout_session(session_id).payment_intent
    sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
    wait_until(lambda: attempt_of(session_id).status == AttemptStatus.FAILED.value, what="the attempt failed")
    _, rows = _wait_events(session_id, 4)
    kinds = [(kind, to, code) for kind, _from, to, code, _decline in rows]
    assert ("moved", "processing", None) in kinds
    assert ("try_failed", None, "payment_method_provider_decline") in kinds
    assert any(kind == "moved" and to == "failed" for kind, to, _code in kinds)
