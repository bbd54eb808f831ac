"""Session fixation: a cart cookie planted in a buyer's browser shows the attacker none
of that buyer's payment or order. The cart's token is replaced when checkout starts and
again when the order is made (perhaps by a webhook, with the buyer away); the buyer's
own browser still reaches its cart, its success page and its order. Through the sandbox
process, SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from storefront.extensions import db
from storefront.models import Cart, CartStatus

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    add,
    assert_promises,
    cart_token,
    sandbox,
    session_id_of,
    shop,
    start_checkout,
    wait_for_order,
)
from .factories import cart_by_id, cart_by_token, make_event, ticket_type


def cart_of_token(token: str) -> Cart | None:
    db.session.rollback()
    return db.session.execute(select(Cart).where(Cart.token == token)).scalar_one_or_none()


def status(client, session_id: str):
    return client.get(f"/checkout/status?session_id={session_id}", headers={"HX-Request": "true"})


def test_a_planted_cart_cookie_shows_the_attacker_nothing_of_the_victims_payment(shop, sandbox):
    event = make_event(title="Harbour Jazz", ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 10}])
    tt_id = event.ticket_types[0].id
    attacker = shop.test_client()
    add(attacker, event, {tt_id: 1})  # a cart of the attacker's, and a cookie for it
    planted = attacker.get_cookie("session").value
    victim = shop.test_client()
    victim.set_cookie("session", planted)  # planted in the victim's browser
    add(victim, event, {tt_id: 2})  # the victim shops in that cart, unaware
    cart_id = cart_by_token(cart_token(victim)).id

    session_id = session_id_of(start_checkout(victim, 3))
    assert cart_of_token(cart_token(attacker)) is None  # the planted token reaches nothing now
    assert cart_by_id(cart_id).token == cart_token(victim) != cart_token(attacker)
    # The attacker sees no cart, cannot touch it (emptying it would close the victim's
    # payment at Stripe), and is not shown the payment.
    assert "cart-line" not in attacker.get("/cart").get_data(as_text=True)
    assert attacker.post("/cart/empty", headers={"HX-Request": "true"}).status_code == 404
    assert cart_by_id(cart_id).status == CartStatus.CHECKING_OUT.value and ticket_type(tt_id).held == 3
    assert status(attacker, session_id).status_code == 404
    # The victim's own browser, back from Stripe's page, still has its cart.
    assert "cart-line" in victim.get("/cart").get_data(as_text=True)

    # The victim pays; the webhook makes the order while the victim is away.
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    converted = cart_by_id(cart_id)
    assert converted.status == CartStatus.CONVERTED.value
    assert converted.token not in (cart_token(victim), cart_token(attacker))  # replaced again

    # The victim's success page shows the order and its link; the attacker's nothing.
    shown = status(victim, session_id)
    assert shown.status_code == 286 and order.code in shown.get_data(as_text=True)
    link = re.search(r'class="order-link" href="[^"]*?(/orders/[^"]+)"', shown.get_data(as_text=True)).group(1)
    assert victim.get(link).status_code == 200
    for path in (f"/checkout/status?session_id={session_id}", f"/checkout/success?session_id={session_id}"):
        seen = attacker.get(path)
        assert seen.status_code == 404 and order.code not in seen.get_data(as_text=True)
    assert order.code not in attacker.get("/cart").get_data(as_text=True)
    assert "cart-line" not in victim.get("/cart").get_data(as_text=True)  # the cart became the order
    assert_promises()


def test_a_free_order_retires_the_carts_token(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Free entry", "price_minor": 0, "capacity": 4}])
    client = shop.test_client()
    add(client, event, {event.ticket_types[0].id: 1})
    token = cart_token(client)
    cart_id = cart_by_token(token).id
    response = start_checkout(client, 1)
    assert response.status_code == 303 and "/orders/" in response.headers["Location"]
    assert cart_of_token(token) is None and cart_by_id(cart_id).status == CartStatus.CONVERTED.value
    with client.session_transaction() as session:
        assert "cart" not in session
    assert client.get(response.headers["Location"]).status_code == 200
