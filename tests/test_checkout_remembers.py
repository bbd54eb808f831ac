"""The checkout form remembers what the buyer typed, for this browser only, and the
states around it say what happened (issue 12, "Forms and states that do what a buyer
expects"). Flask test client against the sandbox process, no JavaScript:
``test_checkout_remembers_browser.py`` does the same in Chromium.
"""

from __future__ import annotations

import html
import re

import pytest

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_DECLINED,
    CARD_OK,
    add,
    attempt_of,
    buy_until_stripe,
    cart_token,
    checkout_form,
    sandbox,
    shop,
)
from .factories import cart_by_token, lapse, make_event

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def field(page: str, name: str) -> str | None:
    """The value="" of the input named ``name`` in ``page``, None without such an input."""
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', page)
    if match is None:
        return None
    value = re.search(r'value="([^"]*)"', match.group(0))
    return html.unescape(value.group(1)) if value else ""


def typed(page: str, quantity: int) -> dict:
    names = ["email"] + [f"{part}-{n}" for n in range(1, quantity + 1) for part in ("first", "last")]
    return {name: field(page, name) for name in names}


def test_a_declined_card_then_back_finds_the_form_filled(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 2})
    assert sandbox.pay(session_id, card=CARD_DECLINED)["outcome"] == "declined"
    # Back from the hosted page (its cancel_url is the cart), then Checkout again.
    assert client.get("/cart").status_code == 200
    page = client.get("/checkout").get_data(as_text=True)
    assert typed(page, 2) == checkout_form(2)


def test_another_browser_never_sees_what_was_typed(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    buyer = shop.test_client()
    buy_until_stripe(buyer, event, {tt_id: 1})
    other = shop.test_client()
    add(other, event, {tt_id: 1})
    page = other.get("/checkout").get_data(as_text=True)
    assert "ada@example.com" not in page and "Lovelace" not in page
    assert typed(page, 1) == {"email": "", "first-1": "", "last-1": ""}


def test_a_hold_lapsed_while_paying_then_added_again_finds_the_form_filled(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    buy_until_stripe(client, event, {tt_id: 1})
    lapse(cart_token(client))
    add(client, event, {tt_id: 1})  # a new cart (the old one is released)
    page = client.get("/checkout").get_data(as_text=True)
    assert typed(page, 1) == checkout_form(1)


def test_a_paid_order_is_not_offered_to_the_next_purchase(shop, sandbox):
    from .checkout_support import wait_for_order

    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    wait_for_order(session_id)
    add(client, event, {tt_id: 1})
    page = client.get("/checkout").get_data(as_text=True)
    assert field(page, "email") == "" and "Lovelace" not in page


def test_submitting_after_the_lapse_says_it_once_and_keeps_what_was_typed(shop, sandbox):
    event = make_event(title="Harbour Jazz")
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 2})
    lapse(cart_token(client))
    form = checkout_form(2, email="grace@example.com")
    response = client.post("/checkout", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    # One message, not two near-identical ones, and the way back to the event.
    assert page.count("Your reservation lapsed") == 1
    assert f'href="/events/{event.slug}"' in page and "Back to the event" in page
    # What was typed is on show, and the form can no longer be sent.
    assert typed(page, 2) == form
    assert re.search(r'<fieldset class="checkout-fields" disabled>', page)

    # Added again: the checkout form is filled in.
    add(client, event, {tt_id: 2})
    again = client.get("/checkout").get_data(as_text=True)
    assert typed(again, 2) == form
    # ... for this browser only.
    other = shop.test_client()
    add(other, event, {tt_id: 1})
    assert "grace@example.com" not in other.get("/checkout").get_data(as_text=True)


def test_the_checkout_page_says_the_hold_grows_while_paying_and_the_cart_says_why_it_grew(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    add(client, event, {event.ticket_types[0].id: 1})
    before = client.get("/checkout").get_data(as_text=True)
    assert "When you press Pay, the hold grows to 31 minutes while you pay." in before
    seconds = int(re.search(r'data-countdown="(\d+)"', before).group(1))
    assert 14 * 60 < seconds <= 15 * 60
    session_id = buy_until_stripe_again(client)
    assert attempt_of(session_id) is not None
    for path in ("/cart", "/checkout"):
        after = client.get(path).get_data(as_text=True)
        assert "The hold grew to 31 minutes when you went to payment" in after, path
        seconds = int(re.search(r'data-countdown="(\d+)"', after).group(1))
        assert 30 * 60 < seconds <= 31 * 60


def buy_until_stripe_again(client) -> str:
    from .checkout_support import session_id_of, start_checkout

    return session_id_of(start_checkout(client, 1))


def test_a_quantity_of_zero_in_the_cart_is_answered_and_the_field_shows_the_real_one(shop, sandbox):
    event = make_event(ticket_types=[{"name": "Standard", "max_per_order": 4}])
    client = shop.test_client()
    add(client, event, {event.ticket_types[0].id: 2})
    line_id = cart_by_token(cart_token(client)).items[0].id
    for quantity, words in (("0", "a whole number of tickets, at least 1"), ("5", "at most 4 tickets")):
        response = client.post(f"/cart/lines/{line_id}", data={"quantity": quantity}, headers={"HX-Request": "true"})
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and words in page, quantity
        assert field(page, "quantity") == "2"
    assert cart_by_token(cart_token(client)).items[0].quantity == 2
