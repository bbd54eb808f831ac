"""One price, everywhere the same, in EUR, USD, GBP and JPY: the event page, the cart,
the checkout form, the sandbox's hosted payment page (fetched over HTTP from the
sandbox process), the ``unit_amount`` Stripe was sent (read back through the real
``stripe`` library), the order, and the confirmation mail (the ``.eml`` parsed back).
The expected words are written out here, not computed by the code under test.
"""

from __future__ import annotations

import urllib.request
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    CARD_OK,
    add,
    attempt_of,
    sandbox,
    session_id_of,
    shop,
    start_checkout,
    wait_for_order,
)
from .factories import make_event
from .jobs_support import running_jobs
from .sandbox_support import wait_until


@pytest.mark.parametrize(
    "currency, unit_minor, unit, total",
    [
        ("EUR", 2500, "€25.00", "€50.00"),
        ("USD", 4550, "$45.50", "$91.00"),
        ("GBP", 1800, "£18.00", "£36.00"),
        ("JPY", 12000, "¥12,000", "¥24,000"),  # whole yen: Stripe's minor unit is ¥1
    ],
)
def test_the_buyer_reads_what_stripe_charges(shop, sandbox, currency, unit_minor, unit, total):
    event = make_event(
        title=f"Gala in {currency}", currency=currency, ticket_types=[{"name": "Stalls", "price_minor": unit_minor}]
    )
    tt_id = event.ticket_types[0].id
    client = shop.test_client()

    assert f'<div class="tt-price">{unit}</div>' in client.get(f"/events/{event.slug}").get_data(as_text=True)
    add(client, event, {tt_id: 2})
    cart = client.get("/cart").get_data(as_text=True)
    assert f"2 × {unit}" in cart and f"<strong>{total}</strong>" in cart
    form = client.get("/checkout").get_data(as_text=True)
    assert f"Stalls · {unit}" in form and f"<strong>{total}</strong>" in form

    response = start_checkout(client, 2)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    session_id = session_id_of(response)
    with urllib.request.urlopen(f"{sandbox.base}/pay/{session_id}", timeout=10) as hosted:
        page = hosted.read().decode()
    assert f"{unit} each" in page and total in page

    stripe = sandbox.client()
    session = stripe.v1.checkout.sessions.retrieve(session_id)
    (line,) = stripe.v1.checkout.sessions.line_items.list(session_id).data
    assert (line.price.unit_amount, line.price.currency, line.quantity) == (unit_minor, currency.lower(), 2)
    assert (session.amount_total, session.currency) == (2 * unit_minor, currency.lower())
    assert (attempt_of(session_id).amount_minor, attempt_of(session_id).currency) == (2 * unit_minor, currency)

    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    assert (order.total_minor, order.currency) == (2 * unit_minor, currency)
    assert [t.price_minor for t in order.tickets] == [unit_minor, unit_minor]
    outbox = Path(shop.config["MAIL_OUTBOX"])
    with running_jobs(shop):
        eml = wait_until(lambda: next(outbox.glob(f"*-{order.code}.eml"), None), what=f"the mail of {order.code}")
    mail = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert f"Stalls, {unit}" in text and f"Total: {total}" in text
    assert f">{unit}</td>" in html and f">{total}</th>" in html
