"""Checkout to order, end to end: the shop (Flask test client) → the sandbox process over
HTTP through the real ``stripe`` library → signed webhooks delivered over HTTP to the
storefront served on a loopback port → fulfilment → the success page. SQLite and
PostgreSQL. Paying is done with the sandbox's control call (the same code path as its
hosted page's form); ``test_checkout_browser.py`` pays on the page itself.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.models import AttemptStatus, CartStatus, Order, PaymentAttempt, WebhookEvent
from storefront.payments import gateway as gw

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    IBAN_FAILS,
    IBAN_OK,
    add,
    assert_promises,
    attempt_of,
    buy_until_stripe,
    cart_token,
    checkout_form,
    order_of,
    sandbox,
    session_id_of,
    shop,
    start_checkout,
    wait_for_order,
)
from .factories import cart_by_id, cart_by_token, make_event, ticket_type
from .sandbox_support import wait_until


def status_fragment(client, session_id, started=None):
    query = f"session_id={session_id}" + (f"&started={started}" if started else "")
    return client.get(f"/checkout/status?{query}", headers={"HX-Request": "true"})


def test_pay_with_a_card_gives_an_order_with_named_tickets(shop, sandbox):
    event = make_event(title="Harbour Jazz", ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 5}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})

    attempt = attempt_of(session_id)
    assert (attempt.status, attempt.amount_minor, attempt.currency) == ("open", 5000, "EUR")
    assert attempt.idempotency_key.startswith(f"checkout-cart{attempt.cart_id}-")
    cart = cart_by_token(cart_token(client))
    assert cart.status == CartStatus.CHECKING_OUT.value
    stripe_session = gw.get_gateway().retrieve_checkout_session(session_id)
    # The hold lasts as long as the session can be paid, at least Stripe's 30 minutes.
    assert int(cart.expires_at.timestamp()) == stripe_session.expires_at
    assert stripe_session.expires_at - stripe_session.created >= 30 * 60
    assert stripe_session.client_reference_id == f"cart-{cart.id}"
    assert stripe_session.metadata["cart_id"] == str(cart.id)
    assert (stripe_session.amount_total, stripe_session.currency) == (5000, "eur")
    assert stripe_session.customer_email == "ada@example.com"
    assert stripe_session.success_url.endswith("/checkout/success?session_id={CHECKOUT_SESSION_ID}")

    # Before the payment the success page waits (and polls).
    waiting = status_fragment(client, session_id)
    assert waiting.status_code == 200 and 'hx-trigger="every 2s"' in waiting.get_data(as_text=True)

    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    assert order.total_minor == 5000 and order.currency == "EUR" and order.status == "paid"
    assert len(order.code) == 8 and order.buyer_email == "ada@example.com"
    names = sorted((t.attendee_first_name, t.attendee_last_name, t.price_minor) for t in order.tickets)
    assert names == [("Ada1", "Lovelace1", 2500), ("Ada2", "Lovelace2", 2500)]
    assert len({t.secret for t in order.tickets}) == 2 and all(len(t.secret) >= 32 for t in order.tickets)
    tt = ticket_type(tt_id)
    assert (tt.sold, tt.held) == (2, 0)
    assert cart_by_id(cart.id).status == CartStatus.CONVERTED.value
    assert attempt_of(session_id).status == AttemptStatus.PAID.value
    wait_until(lambda: ("checkout.session.completed", "order") in _events_for(session_id), what="the event recorded")

    # The success page shows the order and stops polling (286).
    done = status_fragment(client, session_id)
    body = done.get_data(as_text=True)
    assert done.status_code == 286
    assert order.code in body and "Ada2 Lovelace2" in body and "Harbour Jazz" in body and "€50.00" in body
    assert "every 2s" not in body
    page = client.get(f"/checkout/success?session_id={session_id}").get_data(as_text=True)
    assert order.code in page and f"/orders/{order.access_token}" in page
    # The order's own link works from anywhere; the success page only for the buyer.
    stranger = shop.test_client()
    assert stranger.get(f"/orders/{order.access_token}").status_code == 200
    assert stranger.get(f"/checkout/success?session_id={session_id}").status_code == 404
    assert stranger.get("/orders/not-the-token").status_code == 404
    assert_promises()


def _events_for(session_id):
    db.session.rollback()
    out = []
    for row in db.session.execute(select(WebhookEvent).order_by(WebhookEvent.id)).scalars():
        obj = json.loads(row.payload)["data"]["object"]
        if obj.get("id") == session_id:
            out.append((row.type, row.outcome))
    return out


def test_htmx_checkout_answers_hx_redirect_and_pressing_again_reuses_the_session(shop, sandbox, caplog):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 1})
    with caplog.at_level("INFO", logger="storefront.checkout"):
        first = start_checkout(client, 1, **{"HX-Request": "true", "X-Request-Id": "req-abc-123"})
    assert first.status_code == 200 and "/pay/cs_" in first.headers["HX-Redirect"]
    assert first.headers["X-Request-Id"] == "req-abc-123"
    # The cart's state change is logged with the request's id.
    assert any(m.startswith("[req req-abc-123] cart ") and "checking out" in m for m in caplog.messages), (
        caplog.messages
    )
    again = start_checkout(client, 1, **{"HX-Request": "true"})
    assert again.headers["HX-Redirect"] == first.headers["HX-Redirect"]
    db.session.rollback()
    assert db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one() == 1
    assert ticket_type(tt_id).held == 1


def test_decline_then_pay_with_another_card(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 1900, "capacity": 3}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    result = sandbox.pay(session_id, card=CARD_DECLINED)
    assert result["outcome"] == "declined"
    attempt = wait_until(lambda: (a := attempt_of(session_id)) and a.decline_code and a, what="the decline recorded")
    assert (attempt.error_type, attempt.error_code, attempt.decline_code) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert attempt.error_message and attempt.status == "open"
    assert order_of(session_id) is None
    assert ticket_type(tt_id).held == 1  # still held while the buyer tries again

    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    assert len(order.tickets) == 1
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (1, 0)
    assert_promises()


@pytest.mark.parametrize("result", ["complete", "fail"])
def test_three_d_secure(shop, sandbox, result):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    outcome = sandbox.pay(session_id, card=CARD_3DS, authenticate=result)["outcome"]
    if result == "complete":
        assert outcome == "succeeded"
        assert len(wait_for_order(session_id).tickets) == 1
    else:
        assert outcome == "declined"
        attempt = wait_until(lambda: (a := attempt_of(session_id)) and a.error_code and a, what="the failure recorded")
        assert attempt.error_code == "payment_intent_authentication_failure"
        assert order_of(session_id) is None and ticket_type(tt_id).held == 1
    assert_promises()


@pytest.mark.parametrize("iban, settles", [(IBAN_OK, True), (IBAN_FAILS, False)])
def test_bank_debit_processing_then_settled(shop, sandbox, iban, settles):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    assert sandbox.pay(session_id, iban=iban)["outcome"] == "processing"
    wait_until(lambda: attempt_of(session_id).status == AttemptStatus.PROCESSING.value, what="the attempt processing")
    page = status_fragment(client, session_id)
    assert page.status_code == 200 and "being processed" in page.get_data(as_text=True)
    assert order_of(session_id) is None and ticket_type(tt_id).held == 2

    pi_id = gw.get_gateway().retrieve_checkout_session(session_id).payment_intent
    sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
    if settles:
        order = wait_for_order(session_id)
        assert len(order.tickets) == 2 and (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (2, 0)
    else:
        wait_until(lambda: attempt_of(session_id).status == AttemptStatus.FAILED.value, what="the attempt failed")
        assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 0)
        assert cart_by_token(cart_token(client)).status == CartStatus.EXPIRED.value
        told = status_fragment(client, session_id)
        # The bank refused the debit: said so, on the success page and in the cart, and
        # never that the reservation "lapsed".
        assert told.status_code == 286 and "Your bank debit failed" in told.get_data(as_text=True)
        for page in (client.get("/cart"), client.get("/checkout")):
            html = page.get_data(as_text=True)
            assert "Your bank refused the debit" in html and "lapsed" not in html
    assert_promises()


def test_cancel_and_come_back_then_change_the_cart(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 10}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    first = buy_until_stripe(client, event, {tt_id: 1})
    # "Back" on Stripe's page: the cart, still held, with its countdown.
    page = client.get("/cart").get_data(as_text=True)
    assert "cart-line" in page and "data-countdown" in page and "Your reservation lapsed" not in page
    assert ticket_type(tt_id).held == 1

    # Changing it closes the session at Stripe first.
    line_id = cart_by_token(cart_token(client)).items[0].id
    response = client.post(f"/cart/lines/{line_id}", data={"quantity": "3"})
    assert response.status_code == 303
    assert gw.get_gateway().retrieve_checkout_session(first).status == "expired"
    assert attempt_of(first).status == AttemptStatus.EXPIRED.value
    assert cart_by_token(cart_token(client)).status == CartStatus.ACTIVE.value
    assert ticket_type(tt_id).held == 3
    assert sandbox.pay(first, card=CARD_OK)["outcome"] == "not_open"

    response = start_checkout(client, 3)
    second = session_id_of(response)
    assert second != first
    # The first session's expiry event arrives: it must not release the new checkout's hold.
    wait_until(
        lambda: ("checkout.session.expired", "already_expired") in _events_for(first), what="the old expiry event"
    )
    assert ticket_type(tt_id).held == 3
    assert sandbox.pay(second, card=CARD_OK)["outcome"] == "succeeded"
    assert len(wait_for_order(second).tickets) == 3
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (3, 0)
    assert_promises()


def test_adding_more_while_checking_out_expires_the_session_first(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    first = buy_until_stripe(client, event, {tt_id: 1})
    add(client, event, {tt_id: 1})
    assert gw.get_gateway().retrieve_checkout_session(first).status == "expired"
    cart = cart_by_token(cart_token(client))
    assert cart.status == CartStatus.ACTIVE.value and cart.items[0].quantity == 2
    assert ticket_type(tt_id).held == 2
    assert_promises()


def test_a_free_order_needs_no_stripe(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Free entry", "price_minor": 0, "capacity": 4}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 2})
    assert "Get my tickets" in client.get("/checkout").get_data(as_text=True)
    response = start_checkout(client, 2)
    assert response.status_code == 303 and "/orders/" in response.headers["Location"]
    db.session.rollback()
    order = db.session.execute(select(Order)).scalar_one()
    assert order.stripe_checkout_session_id is None and order.total_minor == 0 and len(order.tickets) == 2
    assert db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one() == 0
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (2, 0)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert order.code in page and "Ada1 Lovelace1" in page
    assert_promises()


@pytest.mark.parametrize(
    "form_change, message",
    [
        ({"email": "not-an-email"}, "valid email"),
        ({"first-2": " "}, "for ticket 2"),
        ({"last-1": "x" * 101}, "for ticket 1"),
    ],
)
def test_bad_checkout_input_changes_nothing(shop, sandbox, form_change, message):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 2})
    response = client.post("/checkout", data={**checkout_form(2), **form_change})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one() == 0
    assert cart_by_token(cart_token(client)).status == CartStatus.ACTIVE.value


def test_checkout_of_an_empty_or_lapsed_cart_is_refused(shop, sandbox):
    from .factories import lapse

    client = shop.test_client()
    nothing = start_checkout(client, 1)  # no cart at all
    assert nothing.status_code == 409 and "nothing to pay" in nothing.get_data(as_text=True)
    event = make_event()
    add(client, event, {event.ticket_types[0].id: 1})
    lapse(cart_token(client))
    response = start_checkout(client, 1)
    assert response.status_code == 409 and "lapsed" in response.get_data(as_text=True)


def test_stripe_down_keeps_the_cart_held_and_a_retry_works(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 1})
    # More 500s than the library's retries: the buyer is told, nothing is lost.
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "api_error", "count": 3, "method": "POST", "path": "/v1/checkout/sessions"}
    )
    response = start_checkout(client, 1)
    assert response.status_code == 503 and "could not reach the payment service" in response.get_data(as_text=True)
    db.session.rollback()
    [attempt] = db.session.execute(select(PaymentAttempt)).scalars().all()
    assert attempt.status == AttemptStatus.CREATING.value and attempt.error_type == "api_error"
    assert cart_by_token(cart_token(client)).status == CartStatus.ACTIVE.value
    assert ticket_type(tt_id).held == 1

    session_id = session_id_of(start_checkout(client, 1))
    db.session.rollback()
    [again] = db.session.execute(select(PaymentAttempt)).scalars().all()  # the same attempt, same key
    assert again.id == attempt.id and again.stripe_checkout_session_id == session_id and again.status == "open"
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    wait_for_order(session_id)
    assert_promises()


def test_charge_refunded_updates_the_order(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    sandbox.pay(session_id, card=CARD_OK)
    order = wait_for_order(session_id)
    gw.get_gateway().create_refund(order.stripe_payment_intent_id, amount=2500)
    wait_until(lambda: order_of(session_id).status == "partially_refunded", what="partially refunded")
    assert order_of(session_id).refunded_minor == 2500
    assert [t.status for t in order_of(session_id).tickets] == ["valid", "valid"]  # an amount names no ticket
    gw.get_gateway().create_refund(order.stripe_payment_intent_id)
    wait_until(lambda: order_of(session_id).status == "refunded", what="refunded")
    refunded = order_of(session_id)
    assert [t.status for t in refunded.tickets] == ["void", "void"]
    page = shop.test_client().get(f"/orders/{refunded.access_token}").get_data(as_text=True)
    assert "This order was refunded." in page and page.count("this ticket is no longer valid") == 2


def test_adding_another_events_tickets_while_checking_out_is_refused_and_keeps_the_session(shop, sandbox):
    event = make_event()
    other = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    response = client.post(f"/events/{other.slug}/cart", data={f"quantity-{other.ticket_types[0].id}": "1"})
    assert response.status_code == 409 and "Check out or empty your cart" in response.get_data(as_text=True)
    assert gw.get_gateway().retrieve_checkout_session(session_id).status == "open"
    assert cart_by_token(cart_token(client)).status == CartStatus.CHECKING_OUT.value
    assert ticket_type(other.ticket_types[0].id).held == 0


@pytest.mark.parametrize(
    "change, data, status, words",
    [
        ("/cart/lines/{other_line}/remove", {}, 404, "That line is not in your cart."),
        ("/cart/lines/{line}", {"quantity": "7"}, 400, "at most 6 tickets of Standard per order"),
        ("/cart/lines/{line}", {"quantity": "5"}, 409, "Only 1 ticket left for Standard."),
    ],
)
def test_a_change_refused_while_checking_out_leaves_the_payment_open(shop, sandbox, change, data, status, words):
    """What the change would refuse anyway is refused before anything is closed at Stripe."""
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 4, "max_per_order": 6}])
    tt_id = event.ticket_types[0].id
    someone = shop.test_client()
    add(someone, event, {tt_id: 1})
    other_line = cart_by_token(cart_token(someone)).items[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    line = cart_by_token(cart_token(client)).items[0].id
    response = client.post(change.format(line=line, other_line=other_line), data=data)
    assert response.status_code == status and words in response.get_data(as_text=True)
    assert gw.get_gateway().retrieve_checkout_session(session_id).status == "open"
    assert attempt_of(session_id).status == AttemptStatus.OPEN.value
    cart = cart_by_token(cart_token(client))
    assert cart.status == CartStatus.CHECKING_OUT.value and cart.items[0].quantity == 2
    assert ticket_type(tt_id).held == 3
    # The buyer can still pay in that session.
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    assert len(wait_for_order(session_id).tickets) == 2
    assert_promises()


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_the_order_is_committed_durably(shop, sandbox):
    """Never lose a paid order: the transaction that makes it waits for the disk,
    unlike a cart hold's."""
    from sqlalchemy import event as sa_event

    commits: list[tuple[str, bool]] = []  # (synchronous_commit, the transaction inserted an order)

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO ORDERS"):
            conn.info["inserted_order"] = True

    def at_commit(conn):
        commits.append(
            (conn.exec_driver_sql("SHOW synchronous_commit").scalar_one(), conn.info.pop("inserted_order", False))
        )

    event = make_event()
    client = shop.test_client()
    sa_event.listen(db.engine, "before_cursor_execute", on_execute)
    sa_event.listen(db.engine, "commit", at_commit)
    try:
        session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
        assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
        wait_for_order(session_id)
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", on_execute)
        sa_event.remove(db.engine, "commit", at_commit)
    assert [setting for setting, inserted in commits if inserted] == ["on"]
    assert ("off", False) in commits  # the cart's hold, by contrast
