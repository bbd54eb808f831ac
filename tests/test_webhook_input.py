"""The webhook's input: correctly signed payloads that are no event we can act on are a 400
with nothing stored (never a 500 that Stripe retries for days); a signature from the
future is refused like a stale one."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.models import WebhookEvent
from storefront.payments import gateway as gw

SECRET = "whsec_input_tests"
pytestmark = pytest.mark.app_config(STRIPE_WEBHOOK_SECRET=SECRET)


def post_signed(client, payload: str | bytes, *, timestamp: int | None = None):
    raw = payload.encode() if isinstance(payload, str) else payload
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return client.post(
        "/webhooks/stripe",
        data=raw,
        headers={"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"},
    )


def stored() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(WebhookEvent.id))).scalar_one()


def event(type_: str = "checkout.session.completed", obj: dict | None = None, **fields) -> str:
    values = {
        "id": "evt_input_test_1",
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj if obj is not None else {"id": "cs_test_unknown", "object": "checkout.session"}},
    }
    values.update(fields)
    return json.dumps(values)


def deep(levels: int) -> str:
    """An event whose object nests ``levels`` arrays (written out: json cannot build it)."""
    return event(obj={"id": "cs_test_deep", "nested": "HERE"}).replace('"HERE"', "[" * levels + "]" * levels)


NOT_EVENTS = {
    "an array": "[]",
    "an empty object": "{}",
    "a string": '"evt_1"',
    "a number": "42",
    "null": "null",
    "no id": json.dumps({"type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}}),
    "no type": json.dumps({"id": "evt_1", "data": {"object": {"id": "cs_1"}}}),
    "no data": json.dumps({"id": "evt_1", "type": "checkout.session.completed"}),
    "data not an object": event(data=[1, 2]),
    "data.object not an object": event(data={"object": "cs_1"}),
    "data.object without id": event(obj={"object": "checkout.session"}),
    "data.object with a numeric id": event(obj={"id": 17}),
    "an id that is no event id": event(id="cs_test_1"),
    "a numeric id": event(id=12),
    "a very long id": event(id="evt_" + "a" * 400),
    "a type that is not a name": event(type_="checkout session completed"),
    "a NUL in a string": event(obj={"id": "cs_test_1", "metadata": {"attempt_key": "k\u0000"}}),
    "nested too deep": deep(200),
    "nested beyond the parser": deep(100_000),
    "not JSON": "{'id': 'evt_1'}",
}


@pytest.mark.parametrize("payload", NOT_EVENTS.values(), ids=NOT_EVENTS.keys())
def test_a_signed_payload_that_is_not_an_event_is_refused_and_not_stored(client, payload):
    response = post_signed(client, payload)
    assert response.status_code == 400
    assert response.get_json() == {"error": "not an event"}
    assert stored() == 0


def test_a_signed_body_that_is_not_utf8_is_refused(client):
    response = post_signed(client, b'{"id": "evt_\xff"}')
    assert response.status_code == 400 and stored() == 0


MALFORMED_OBJECTS = {
    "checkout.session.completed": [
        {"id": "cs_test_1", "metadata": "attempt"},
        {"id": "cs_test_1", "metadata": {"attempt_key": ["a", "b"]}},
        {"id": "cs_test_1", "payment_intent": {"no": "id"}},
        {"id": "cs_test_1", "payment_intent": 5},
        {"id": "cs_test_1", "customer_details": "ada@example.com"},
        {"id": "cs_test_1", "customer_details": {"email": "x" * 300}},
        {"id": "cs_test_1", "amount_total": 2**40},
        {"id": "cs_test_1", "amount_total": "100"},
        {"id": "cs_test_1", "payment_status": ["paid"]},
        {"id": "pi_not_a_session"},
    ],
    "checkout.session.expired": [{"id": "cs_test_1", "metadata": 3}],
    "payment_intent.payment_failed": [
        {"id": "pi_1", "last_payment_error": "declined"},
        {"id": "pi_1", "last_payment_error": {"code": "c" * 500}},
        {"id": "pi_1", "metadata": {"attempt_key": 7}},
    ],
    "charge.refunded": [
        {"id": "ch_1"},
        {"id": "ch_1", "amount_refunded": -1, "refunded": True},
        {"id": "ch_1", "amount_refunded": 2**40, "refunded": True},
        {"id": "ch_1", "amount_refunded": True, "refunded": True},
        {"id": "ch_1", "amount_refunded": 100, "refunded": "yes"},
        {"id": "ch_1", "amount_refunded": 100, "refunded": True, "payment_intent": ["pi_1"]},
    ],
}


@pytest.mark.parametrize(
    "type_,obj", [(type_, obj) for type_, objs in MALFORMED_OBJECTS.items() for obj in objs], ids=repr
)
def test_a_handled_event_whose_object_is_malformed_is_refused_and_not_stored(client, type_, obj):
    response = post_signed(client, event(type_, obj))
    assert response.status_code == 400
    assert response.get_json() == {"error": "malformed event object"}
    assert stored() == 0


def test_well_formed_events_about_nothing_of_ours_are_taken(client):
    cases = [
        (
            "checkout.session.completed",
            {"id": "cs_test_1", "payment_status": "paid", "metadata": {}},
            "unknown_session",
        ),
        ("checkout.session.expired", {"id": "cs_test_1"}, "unknown_session"),
        ("payment_intent.payment_failed", {"id": "pi_1", "last_payment_error": None}, "unknown_attempt"),
        (
            "charge.refunded",
            {"id": "ch_1", "amount_refunded": 100, "refunded": True, "payment_intent": "pi_1"},
            "no_order",
        ),
        # A type we do not handle is stored and ignored, whatever its object holds.
        ("customer.created", {"id": "cus_1", "metadata": "anything", "amount_total": "x"}, "ignored"),
    ]
    for n, (type_, obj, outcome) in enumerate(cases):
        response = post_signed(client, event(type_, obj, id=f"evt_taken_{n}"))
        assert response.status_code == 200, (type_, response.get_json())
        assert response.get_json()["outcome"] == outcome
    assert stored() == len(cases)


@pytest.mark.parametrize("ahead,status", [(3600, 400), (301 + 5, 400), (60, 200)])
def test_a_signature_from_the_future_is_refused_beyond_the_tolerance(client, ahead, status):
    payload = event(id=f"evt_future_{ahead}")
    response = post_signed(client, payload, timestamp=int(time.time()) + ahead)
    assert response.status_code == status
    assert stored() == (1 if status == 200 else 0)


def test_construct_event_refuses_the_future_and_the_past_alike(app):
    gateway = gw.get_gateway()
    payload = event()
    now = time.time()
    for offset in (gw.WEBHOOK_TOLERANCE + 10, -(gw.WEBHOOK_TOLERANCE + 10)):
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=int(now + offset))
        with pytest.raises(gw.SignatureVerificationError):
            gateway.construct_event(payload, header, now=now)
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=int(now))
    assert gateway.construct_event(payload, header, now=now).id == "evt_input_test_1"
