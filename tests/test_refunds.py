"""Refunds of orders (storefront.refunds) against the sandbox over HTTP, with its webhooks
delivered to the served shop: a row per refund, the order following its refunds, pending
and failing refunds as Stripe has them, a failed refund retried, Stripe unreachable or
answering into the void (never a second refund), a refund made at Stripe, and stale events."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storefront import refunds
from storefront.audit import Actor
from storefront.extensions import db
from storefront.models import Order, Refund
from storefront.payments import gateway as gw
from storefront.staff_models import AuditEntry

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    buy_until_stripe,
    sandbox,
    shop,
    wait_for_order,
)
from .factories import make_event
from .sandbox_support import wait_until

CARD_REFUND_PENDING = "4000000000007726"
CARD_REFUND_FAILS = "4000000000005126"
ACTOR = Actor(user_id=None, name="manager@example.com", client_address="198.18.0.9")


def paid_order(shop, sandbox, card: str = CARD_OK, quantity: int = 2) -> Order:
    event = make_event()
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: quantity})
    assert sandbox.pay(session_id, card=card)["outcome"] == "succeeded"
    return wait_for_order(session_id)


def fresh_order(order_id: int) -> Order:
    db.session.rollback()
    return db.session.get(Order, order_id)


def rows(order_id: int) -> list[tuple[str, int, str]]:
    db.session.rollback()
    return [(r.status, r.amount_minor, r.requested_by) for r in refunds.of_order(order_id)]


def at_stripe(order: Order) -> list:
    return list(gw.get_gateway().list_refunds(payment_intent=order.stripe_payment_intent_id).data)


def test_a_partial_then_a_full_refund(shop, sandbox):
    order = paid_order(shop, sandbox)  # 2 × 25.00
    first = refunds.request(order.id, 1000, "Could not come", ACTOR)
    refund = db.session.get(Refund, first)
    assert (refund.status, refund.amount_minor, refund.currency) == ("succeeded", 1000, "EUR")
    assert refund.stripe_refund_id.startswith("re_") and refund.reason == "Could not come"
    assert (fresh_order(order.id).status, fresh_order(order.id).refunded_minor) == ("partially_refunded", 1000)
    assert refunds.refundable_minor(order.id) == 4000

    refunds.request(order.id, None, "Event moved", ACTOR)  # all that is left
    wait_until(lambda: fresh_order(order.id).status == "refunded", what="refunded")
    assert fresh_order(order.id).refunded_minor == 5000
    assert [t.status for t in fresh_order(order.id).tickets] == ["void", "void"]
    # Stripe's events about our own refunds (refund.created, charge.refunded) add no row.
    wait_until(lambda: len(at_stripe(order)) == 2)
    assert rows(order.id) == [("succeeded", 1000, ACTOR.name), ("succeeded", 4000, ACTOR.name)]
    audit = db.session.execute(
        select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.object_type == "order")
        .where(AuditEntry.object_id == str(order.id))
    ).all()  # fmt: skip
    assert audit == [("refund.requested", ACTOR.name), ("refund.requested", ACTOR.name)]


@pytest.mark.parametrize("amount", [0, -5, 5001])
def test_an_amount_that_does_not_fit_is_refused_and_nothing_is_asked(shop, sandbox, amount):
    order = paid_order(shop, sandbox)
    with pytest.raises(refunds.RefundAmountInvalid) as error:
        refunds.request(order.id, amount, "too much", ACTOR)
    assert "between €0.01 and €50.00" in error.value.message()
    assert rows(order.id) == [] and at_stripe(order) == []
    assert fresh_order(order.id).status == "paid"


def test_nothing_left_to_refund_says_so(shop, sandbox):
    order = paid_order(shop, sandbox)
    refunds.request(order.id, None, "all", ACTOR)
    with pytest.raises(refunds.RefundAmountInvalid) as error:
        refunds.request(order.id, 100, "again", ACTOR)
    assert "already been refunded" in error.value.message()
    assert len(at_stripe(order)) == 1


def test_a_pending_refund_counts_at_once_and_succeeds_by_its_event(shop, sandbox):
    order = paid_order(shop, sandbox, card=CARD_REFUND_PENDING)
    refund_id = refunds.request(order.id, 2500, "half", ACTOR)
    refund = db.session.get(Refund, refund_id)
    assert refund.status == "pending"
    assert (fresh_order(order.id).status, fresh_order(order.id).refunded_minor) == ("partially_refunded", 2500)
    sandbox.control("POST", f"/_sandbox/refunds/{refund.stripe_refund_id}/settle", {})
    wait_until(lambda: rows(order.id) == [("succeeded", 2500, ACTOR.name)], what="refund.updated to arrive")
    assert fresh_order(order.id).refunded_minor == 2500


def test_a_refund_that_fails_later_gives_the_amount_back_and_can_be_retried_once(shop, sandbox):
    order = paid_order(shop, sandbox, card=CARD_REFUND_FAILS)
    refund_id = refunds.request(order.id, None, "cancelled by buyer", ACTOR)
    stripe_id = db.session.get(Refund, refund_id).stripe_refund_id
    assert fresh_order(order.id).status == "refunded"

    sandbox.control("POST", f"/_sandbox/refunds/{stripe_id}/settle", {})
    wait_until(lambda: rows(order.id) == [("failed", 5000, ACTOR.name)], what="refund.failed to arrive")
    failed = db.session.get(Refund, refund_id)
    assert failed.failure_reason == "expired_or_canceled_card"
    assert (fresh_order(order.id).status, fresh_order(order.id).refunded_minor) == ("paid", 0)
    assert refunds.refundable_minor(order.id) == 5000

    retry_id = refunds.retry(refund_id, ACTOR)
    retried = db.session.get(Refund, retry_id)
    assert (retried.retry_of_id, retried.amount_minor) == (refund_id, 5000)
    assert fresh_order(order.id).status == "refunded"
    with pytest.raises(refunds.RefundNotRetryable):
        refunds.retry(refund_id, ACTOR)
    with pytest.raises(refunds.RefundNotRetryable):
        refunds.retry(retry_id, ACTOR)  # it did not fail (yet)


def test_stripe_unreachable_leaves_it_requested_and_the_same_key_asks_again(shop, sandbox):
    order = paid_order(shop, sandbox)
    sandbox.control("POST", "/_sandbox/faults", {"kind": "api_error", "status": 500, "path": "/v1/refunds", "count": 3})
    try:
        refund_id = refunds.request(order.id, 1500, "later", ACTOR)
    finally:
        sandbox.control("DELETE", "/_sandbox/faults")
    assert rows(order.id) == [("requested", 1500, ACTOR.name)]
    assert at_stripe(order) == [] and fresh_order(order.id).status == "paid"
    # It counts against what is left while it waits.
    assert refunds.refundable_minor(order.id) == 3500

    assert refunds.submit_requested(older_than_seconds=3600) == 0  # too fresh: its first ask may still be running
    assert refunds.submit_requested(older_than_seconds=0) == 1
    assert rows(order.id) == [("succeeded", 1500, ACTOR.name)]
    assert [r.id for r in at_stripe(order)] == [db.session.get(Refund, refund_id).stripe_refund_id]


def test_an_answer_lost_on_the_way_back_makes_no_second_refund(shop, sandbox):
    order = paid_order(shop, sandbox)
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "connection_error", "when": "after", "path": "/v1/refunds", "count": 3}
    )
    try:
        refund_id = refunds.request(order.id, 1500, "lost answer", ACTOR)
    finally:
        sandbox.control("DELETE", "/_sandbox/faults")
    # Stripe made it; its refund.created may already have told us (the metadata names our row).
    wait_until(lambda: len(at_stripe(order)) == 1)
    refunds.submit_requested(older_than_seconds=0)
    assert rows(order.id) == [("succeeded", 1500, ACTOR.name)]
    assert len(at_stripe(order)) == 1
    assert db.session.get(Refund, refund_id).stripe_refund_id == at_stripe(order)[0].id


def test_a_refund_made_at_stripe_gets_a_row_of_its_own(shop, sandbox):
    order = paid_order(shop, sandbox)
    gw.get_gateway().create_refund(order.stripe_payment_intent_id, amount=700)
    wait_until(lambda: rows(order.id) == [("succeeded", 700, "Stripe")], what="a row for the dashboard's refund")
    assert fresh_order(order.id).status == "partially_refunded"
    assert db.session.scalar(select(func.count()).select_from(Refund).where(Refund.order_id == order.id)) == 1


def test_a_stale_event_moves_nothing_back(shop, sandbox):
    order = paid_order(shop, sandbox)
    refund_id = refunds.request(order.id, 1000, "x", ACTOR)
    stripe_id = db.session.get(Refund, refund_id).stripe_refund_id
    stale = {"id": stripe_id, "object": "refund", "status": "pending", "amount": 1000, "metadata": {}}
    assert refunds.record_from_stripe(stale) == "refund_already_succeeded"
    assert rows(order.id) == [("succeeded", 1000, ACTOR.name)]


def test_a_free_order_has_nothing_to_refund(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Free", "price_minor": 0}])
    client = shop.test_client()
    from .checkout_support import add, checkout_form

    add(client, event, {event.ticket_types[0].id: 1})
    client.post("/checkout", data=checkout_form(1))
    order = db.session.execute(select(Order).where(Order.event_id == event.id)).scalar_one()
    with pytest.raises(refunds.NotRefundable):
        refunds.request(order.id, None, "free", ACTOR)
    assert rows(order.id) == []


def test_the_table_only_moves_forward_but_a_success_may_still_fail():
    S = refunds.S
    assert refunds.may_move(S.REQUESTED, S.SUCCEEDED) and refunds.may_move(S.SUCCEEDED, S.FAILED)
    assert not refunds.may_move(S.SUCCEEDED, S.PENDING) and not refunds.may_move(S.FAILED, S.SUCCEEDED)
    assert refunds.TRANSITIONS[S.FAILED] == frozenset()
