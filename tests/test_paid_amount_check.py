"""Fulfilment compares what Stripe says was paid with what the attempt asked for.

A real session is paid through the sandbox process; its real ``checkout.session.completed``
event is then delivered with another ``amount_total`` (or ``currency``), correctly
signed, as Stripe would send it if the amounts disagreed. No order may come of it: the
attempt records what was asked and what was paid, an ERROR is logged, the hold is kept
(not sold, not released by the sweep, not given up by the buyer's cart), and
``flask payment-review`` and ``flask reconcile`` name it for a person. SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from storefront import fulfilment
from storefront.checkout import expire_lapsed_checkouts
from storefront.extensions import db
from storefront.models import AttemptStatus, CartStatus, WebhookEvent, utcnow
from storefront.reconcile import reconcile

from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    assert_promises,
    attempt_of,
    buy_until_stripe,
    cart_token,
    deliver,
    order_of,
    pay_but_drop_the_completion,
    sandbox,
    shop,
    start_checkout,
    stripe_event,
)
from .factories import cart_by_token, lapse, make_event, ticket_type


def _paid_with_the_completion_held_back(shop, sandbox):
    """Two tickets of €25.00 paid with 4242; Stripe's completion event, kept from the
    storefront, is returned (as a dict) for the test to deliver as it likes."""
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 5}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    pay_but_drop_the_completion(sandbox, session_id)
    completed = stripe_event("checkout.session.completed", session_id).to_dict()
    assert completed["data"]["object"]["amount_total"] == 5000
    return event, tt_id, client, session_id, completed


@pytest.mark.parametrize(
    "forged, paid",
    [({"amount_total": 50}, (50, "EUR")), ({"currency": "usd"}, (5000, "USD"))],
    ids=["amount", "currency"],
)
def test_a_session_paid_otherwise_than_asked_makes_no_order_and_keeps_the_hold(shop, sandbox, caplog, forged, paid):
    event, tt_id, client, session_id, completed = _paid_with_the_completion_held_back(shop, sandbox)
    completed["data"]["object"].update(forged)

    with caplog.at_level(logging.ERROR, logger="storefront.fulfilment"):
        response = deliver(shop.test_client(), completed)
    assert response.status_code == 200  # retrying would not change Stripe's answer
    db.session.rollback()
    stored = db.session.execute(
        select(WebhookEvent.outcome).where(WebhookEvent.stripe_event_id == completed["id"])
    ).scalar_one()
    assert stored == "amount_mismatch"
    assert order_of(session_id) is None
    attempt = attempt_of(session_id)
    assert attempt.status == AttemptStatus.AMOUNT_MISMATCH.value
    assert (attempt.amount_minor, attempt.currency) == (5000, "EUR")  # what was asked
    assert (attempt.paid_amount_minor, attempt.paid_currency) == paid  # what Stripe says was paid
    assert any(r.levelno == logging.ERROR and session_id in r.getMessage() for r in caplog.records), caplog.text
    tt = ticket_type(tt_id)
    assert (tt.held, tt.sold) == (2, 0)

    # The buyer's success page says a person is looking, and stops polling.
    status = client.get(f"/checkout/status?session_id={session_id}", headers={"HX-Request": "true"})
    assert status.status_code == 286 and "We are checking your payment" in status.get_data(as_text=True)
    # The success page's own look at Stripe (which reports the amount asked) changes nothing.
    assert fulfilment.fulfil(session_id, source="success-page").kind == "amount_mismatch"
    assert order_of(session_id) is None

    # The buyer can neither change the cart (it would give up the hold) nor pay again.
    refused = client.post(f"/events/{event.slug}/cart", data={f"quantity-{tt_id}": "1"})
    assert refused.status_code == 409 and "does not match" in refused.get_data(as_text=True)
    again = start_checkout(client, 2)
    assert again.status_code == 409 and "please do not pay again" in again.get_data(as_text=True)
    # The sweep does not release the hold when its time has passed.
    lapse(cart_token(client))
    expire_lapsed_checkouts(now=utcnow() + timedelta(seconds=1))
    assert cart_by_token(cart_token(client)).status == CartStatus.CHECKING_OUT.value
    assert (ticket_type(tt_id).held, ticket_type(tt_id).sold) == (2, 0)

    # A person finds it.
    review = shop.test_cli_runner().invoke(args=["payment-review"])
    assert review.exit_code == 1
    shown = {"amount": "paid €0.50, asked €50.00", "currency": "paid $50.00, asked €50.00"}[
        "amount" if "amount_total" in forged else "currency"
    ]
    assert f"paid_other_than_asked: attempt {attempt.id} (amount_mismatch)" in review.output
    assert shown in review.output and session_id in review.output
    report = reconcile(since=timedelta(hours=1))
    assert any(session_id in line and "left for a person" in line for line in report.mismatches), report
    assert not any(session_id in line for line in report.fixed)
    assert_promises()


def test_a_session_paid_as_asked_is_not_held_for_review(shop, sandbox):
    """The negative control: the very same flow with Stripe's own event makes the order."""
    _, _, _, session_id, completed = _paid_with_the_completion_held_back(shop, sandbox)
    assert deliver(shop.test_client(), completed).status_code == 200
    order = order_of(session_id)
    assert order is not None and order.total_minor == 5000
    assert attempt_of(session_id).status == AttemptStatus.PAID.value
    review = shop.test_cli_runner().invoke(args=["payment-review"])
    assert review.exit_code == 0 and "0 payment(s) to review." in review.output
    assert_promises()
