"""A price changed in the back office while buyers hold that ticket type, end to end
through the sandbox process (real ``stripe`` library, signed webhooks), SQLite and
PostgreSQL. The rule (README, "Price changes"): a cart keeps no price of its own, so it
shows the new price from its next page on; Pay pressed on a checkout form that showed
the old total is refused with the new one and nothing is charged; a payment already
open at Stripe was shown its price on Stripe's page and is charged that price.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import PaymentAttempt
from storefront.staff_models import Role

from .admin_support import add_member, make_organiser, make_user, sign_in_as
from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    CARD_OK,
    add,
    assert_promises,
    attempt_of,
    checkout_form,
    sandbox,
    session_id_of,
    shop,
    wait_for_order,
)
from .factories import make_event


def _organiser_of(event):
    owner = make_user("owner@prices.example")
    organiser = make_organiser("prices")
    with write_transaction():
        db.session.get(type(event), event.id).organiser_id = organiser.id
    add_member(owner, organiser, Role.OWNER)
    return owner


def _set_price(client, event, tt, price: str) -> None:
    answer = client.post(
        f"/admin/o/prices/events/{event.slug}/ticket-types/{tt.id}",
        data={"name": tt.name, "description": "", "price": price, "capacity": "100", "max_per_order": "10"},
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)[:1000]


def _shown_total(page: str) -> str:
    return re.search(r'name="shown_total" value="([^"]+)"', page).group(1)


def test_a_new_price_reaches_every_cart_and_nobody_pays_one_they_did_not_see(shop, sandbox):
    event = make_event(title="Price Night", ticket_types=[{"name": "Stalls", "price_minor": 2500}])
    tt = event.ticket_types[0]
    db.session.rollback()
    owner = _organiser_of(event)
    organiser_client = shop.test_client()
    sign_in_as(organiser_client, owner)
    buyer = shop.test_client()
    add(buyer, event, {tt.id: 2})
    form_page = buyer.get("/checkout").get_data(as_text=True)
    assert "<strong>€50.00</strong>" in form_page and _shown_total(form_page) == "5000 EUR"

    _set_price(organiser_client, event, tt, "30")

    # Pay pressed on the form that said €50: refused, the new total said, nothing at Stripe.
    refused = buyer.post("/checkout", data={**checkout_form(2), "shown_total": "5000 EUR"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "A price changed while you were checking out: the total is now €60.00" in page
    assert "<strong>€60.00</strong>" in page and _shown_total(page) == "6000 EUR"
    db.session.rollback()
    assert db.session.execute(select(PaymentAttempt)).first() is None
    assert "€60.00" in buyer.get("/cart").get_data(as_text=True)

    # Pressed again on the form as it is now: Stripe is asked for what the buyer read.
    paying = buyer.post("/checkout", data={**checkout_form(2), "shown_total": "6000 EUR"})
    assert paying.status_code == 303, paying.get_data(as_text=True)[:800]
    session_id = session_id_of(paying)
    session = sandbox.client().v1.checkout.sessions.retrieve(session_id)
    assert (session.amount_total, attempt_of(session_id).amount_minor) == (6000, 6000)

    # The price changes again while that session is open: Stripe's page showed €60, and
    # €60 is what it takes and what the order says.
    _set_price(organiser_client, event, tt, "35")
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    assert order.total_minor == 6000 and [t.price_minor for t in order.tickets] == [3000, 3000]

    # The next buyer reads the newest price everywhere.
    late = shop.test_client()
    add(late, event, {tt.id: 1})
    late_form = late.get("/checkout").get_data(as_text=True)
    assert "<strong>€35.00</strong>" in late_form and _shown_total(late_form) == "3500 EUR"
    assert_promises()
