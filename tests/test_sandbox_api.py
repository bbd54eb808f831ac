"""The sandbox's API, driven by the real ``stripe`` library over HTTP.

The sandbox runs as its own process (``python -m storefront.payments.sandbox``) on a
free port. Every object it returns is validated against Stripe's JSON Schema subset in
``../shared/stripe/``; every error must surface as the exception class the library
raises for Stripe's own answer.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import stripe

from .sandbox_support import (  # noqa: F401 (sandbox, no_faults_left: fixtures)
    FAKE_LIVE_KEY,
    FAKE_LIVE_RESTRICTED_KEY,
    ROOT,
    TEST_KEY,
    Receiver,
    SandboxProcess,
    assert_stripe_shape,
    no_faults_left,
    raw_api,
    sandbox,
    session_params,
    wait_until,
)


@pytest.fixture(scope="module")
def client(sandbox):
    return sandbox.client()


def paid_session(sandbox, client, **overrides):
    session = client.v1.checkout.sessions.create(params=session_params(**overrides))
    assert sandbox.pay(session.id, card="4242424242424242")["outcome"] == "succeeded"
    return client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})


# --- Checkout Sessions ------------------------------------------------------------------


def test_create_gives_an_open_unpaid_session_without_payment_intent(sandbox, client):
    before = int(time.time())
    params = session_params()
    session = client.v1.checkout.sessions.create(params=params)
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    # Since 2022-08-01 the PaymentIntent only exists once the buyer confirms.
    assert session.payment_intent is None
    assert session.url == f"{sandbox.base}/pay/{session.id}"
    assert (session.amount_subtotal, session.amount_total, session.currency) == (9800, 9800, "eur")
    assert session.customer_email == "ada@example.com"
    assert session.client_reference_id == "cart-42"
    assert session.metadata.to_dict() == {"cart_id": "42"}
    assert session.success_url == params["success_url"]  # the placeholder stays until redirect
    assert session.cancel_url == "http://shop.test/cart"
    assert session.expires_at == params["expires_at"]
    assert before <= session.created <= int(time.time())
    assert session.livemode is False
    assert_stripe_shape(session, "checkout.session")

    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.description, i.quantity, i.amount_total) for i in items.data] == [
        ("Early Bird", 2, 3800),
        ("VIP", 1, 6000),
    ]
    assert items.data[0].price.unit_amount == 1900


def test_default_expiry_is_24_hours(client):
    params = session_params()
    del params["expires_at"]
    session = client.v1.checkout.sessions.create(params=params)
    assert session.expires_at - session.created == 24 * 3600


def test_retrieve_expands_the_payment_intent_and_its_charge(sandbox, client):
    session = paid_session(sandbox, client)
    assert (session.status, session.payment_status, session.url) == ("complete", "paid", None)
    pi = session.payment_intent
    assert pi.object == "payment_intent" and pi.id.startswith("pi_")
    assert (pi.status, pi.amount, pi.amount_received, pi.currency) == ("succeeded", 9800, 9800, "eur")
    # payment_intent_data.metadata lands on the PaymentIntent; session metadata does not.
    assert pi.metadata.to_dict() == {"cart_id": "42"}
    assert pi.latest_charge.startswith("ch_")
    assert session.customer_details.email == "ada@example.com"
    assert_stripe_shape(session, "checkout.session")
    assert_stripe_shape(pi, "payment_intent")

    plain = client.v1.checkout.sessions.retrieve(session.id)
    assert plain.payment_intent == pi.id

    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    charge = expanded.latest_charge
    assert (charge.object, charge.status, charge.paid, charge.amount, charge.payment_intent) == (
        "charge",
        "succeeded",
        True,
        9800,
        pi.id,
    )
    assert charge.payment_method_details.card.last4 == "4242"
    assert_stripe_shape(charge, "charge")
    assert_stripe_shape(expanded, "payment_intent")

    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["customer"]})
    assert error.value.param == "expand"


def test_unknown_ids_are_404_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert (error.value.http_status, error.value.code) == (404, "resource_missing")
    assert "No such checkout.session: 'cs_test_nope'" in error.value.user_message
    assert_stripe_shape(error.value.json_body, "error")
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.payment_intents.retrieve("pi_nope")
    assert error.value.http_status == 404


def test_list_pages_newest_first_with_has_more(client):
    started = int(time.time())
    mine = [
        client.v1.checkout.sessions.create(params=session_params(client_reference_id=f"page-{n}")).id for n in range(5)
    ]
    seen, pages, cursor = [], [], None
    while True:
        params = {"limit": 2, "created": {"gte": started}}
        if cursor:
            params["starting_after"] = cursor
        listing = client.v1.checkout.sessions.list(params=params)
        assert_stripe_shape(listing, "list.checkout.session")
        assert listing.url == "/v1/checkout/sessions"
        assert 1 <= len(listing.data) <= 2
        pages.append(listing.has_more)
        seen += [s.id for s in listing.data]
        if not listing.has_more:
            break
        cursor = listing.data[-1].id
    assert len(seen) == len(set(seen))
    assert [s for s in seen if s in mine] == list(reversed(mine))  # newest first
    assert pages == [True] * (math.ceil(len(seen) / 2) - 1) + [False]
    # ending_before pages back towards newer objects.
    back = client.v1.checkout.sessions.list(params={"limit": 2, "ending_before": mine[0], "created": {"gte": started}})
    assert [s.id for s in back.data] == [mine[2], mine[1]]
    # The library's auto-pagination walks the same cursor.
    auto = [
        s.id
        for s in client.v1.checkout.sessions.list(params={"limit": 2, "created": {"gte": started}}).auto_paging_iter()
    ]
    assert auto == seen

    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.list(params={"limit": 101})
    assert error.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.list(params={"starting_after": "cs_test_unknown"})
    assert (error.value.http_status, error.value.param) == (400, "starting_after")


def test_list_filters_by_status_and_payment_intent(sandbox, client):
    paid = paid_session(sandbox, client)
    open_one = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(client.v1.checkout.sessions.create(params=session_params()).id)
    by_pi = client.v1.checkout.sessions.list(
        params={"payment_intent": paid.payment_intent.id, "expand": ["data.payment_intent"]}
    )
    assert [s.id for s in by_pi.data] == [paid.id]
    assert by_pi.data[0].payment_intent.object == "payment_intent"
    assert_stripe_shape(by_pi, "list.checkout.session")
    by_email = {
        s.id
        for s in client.v1.checkout.sessions.list(
            params={"customer_details": {"email": "ada@example.com"}, "limit": 100}
        ).auto_paging_iter()
    }
    assert paid.id in by_email and open_one.id not in by_email  # only a paying buyer has customer_details
    for status, member, others in [
        ("open", open_one, (paid, expired)),
        ("complete", paid, (open_one, expired)),
        ("expired", expired, (paid, open_one)),
    ]:
        ids = {
            s.id for s in client.v1.checkout.sessions.list(params={"status": status, "limit": 100}).auto_paging_iter()
        }
        assert member.id in ids
        assert not ids & {o.id for o in others}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.list(params={"status": "paid"})
    created = client.v1.checkout.sessions.list(params={"created": open_one.created, "limit": 100})
    assert open_one.id in {s.id for s in created.data}
    assert all(s.created == open_one.created for s in created.data)


def test_expire_only_open_sessions(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.payment_status, expired.url) == ("expired", "unpaid", None)
    assert_stripe_shape(expired, "checkout.session")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.expire(session.id)
    assert 'status of "expired"' in error.value.user_message
    # An expired session cannot be paid.
    assert sandbox.pay(session.id, card="4242424242424242")["outcome"] == "not_open"

    paid = paid_session(sandbox, client)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.expire(paid.id)
    assert 'status of "complete"' in error.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.expire("cs_test_missing")
    assert error.value.http_status == 404


def test_expiring_a_declined_session_cancels_its_payment_intent(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, card="4000000000000002")["outcome"] == "declined"
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    assert client.v1.payment_intents.retrieve(pi_id).status == "requires_payment_method"
    client.v1.checkout.sessions.expire(session.id)
    pi = client.v1.payment_intents.retrieve(pi_id)
    assert (pi.status, pi.cancellation_reason) == ("canceled", "expired")
    assert_stripe_shape(pi, "payment_intent")


# --- validation: what Stripe rejects, the sandbox rejects ----------------------------------


def _without(name):
    params = session_params()
    del params[name]
    return params


@pytest.mark.parametrize(
    "params, param, words",
    [
        (_without("success_url"), "success_url", "Missing required param: success_url"),
        (_without("line_items"), "line_items", "Missing required param: line_items"),
        (_without("mode"), "mode", "Missing required param: mode"),
        (session_params(expires_at=int(time.time()) + 10 * 60), "expires_at", "at least 30 minutes"),
        (session_params(expires_at=int(time.time()) + 25 * 3600), "expires_at", "less than 24 hours"),
        (session_params(expires_at="soon"), "expires_at", "Invalid integer"),
        (session_params(payment_method_types=["card"]), "payment_method_types", "Received unknown parameter"),
        (session_params(mode="subscription"), "mode", "mode=payment"),
        (session_params(success_url="not a url"), "success_url", "Not a valid URL"),
        (session_params(customer_email="nobody"), "customer_email", "Invalid email address"),
        (
            session_params(
                line_items=[
                    {"price_data": {"currency": "eur", "unit_amount": 10, "product_data": {"name": "x"}}, "quantity": 1}
                ]
            ),
            "line_items",
            "at least €0.50",
        ),
        (
            session_params(
                line_items=[
                    {
                        "price_data": {"currency": "xyz", "unit_amount": 1000, "product_data": {"name": "x"}},
                        "quantity": 1,
                    }
                ]
            ),
            "line_items[0][price_data][currency]",
            "Invalid currency: xyz",
        ),
        (
            session_params(
                line_items=[
                    {
                        "price_data": {"currency": "huf", "unit_amount": 17000, "product_data": {"name": "x"}},
                        "quantity": 1,
                    }
                ]
            ),
            "line_items",
            "at least HUF175",
        ),
        (
            session_params(
                line_items=[
                    {
                        "price_data": {"currency": "eur", "unit_amount": 1000, "product_data": {"name": "a"}},
                        "quantity": 1,
                    },
                    {
                        "price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "b"}},
                        "quantity": 1,
                    },
                ]
            ),
            "line_items[1][price_data][currency]",
            "same currency",
        ),
        (
            session_params(
                line_items=[
                    {
                        "price_data": {"currency": "eur", "unit_amount": "12.5", "product_data": {"name": "x"}},
                        "quantity": 1,
                    }
                ]
            ),
            "line_items[0][price_data][unit_amount]",
            "Invalid integer",
        ),
        (
            session_params(
                line_items=[
                    {
                        "price_data": {"currency": "eur", "unit_amount": 1000, "product_data": {"name": "x"}},
                        "quantity": 0,
                    }
                ]
            ),
            "line_items[0][quantity]",
            "greater than or equal to 1",
        ),
        (
            session_params(line_items=[{"price_data": {"currency": "eur", "unit_amount": 1000}, "quantity": 1}]),
            "line_items[0][price_data][product_data]",
            "Missing required param",
        ),
        (session_params(metadata={"k" * 41: "v"}), f"metadata[{'k' * 41}]", "40 characters"),
        (session_params(shipping_options=[{"shipping_rate": "shr_1"}]), "shipping_options", "does not support"),
        (session_params(colour="blue"), "colour", "Received unknown parameter: colour"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_create_rejects_what_stripe_rejects(client, params, param, words):
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.checkout.sessions.create(params=params)
    assert error.value.http_status == 400
    assert error.value.param == param
    assert words in error.value.user_message
    assert error.value.request_id and error.value.request_id.startswith("req_")
    assert_stripe_shape(error.value.json_body, "error")


def test_expires_at_bounds_are_inclusive(client):
    now = int(time.time())
    assert client.v1.checkout.sessions.create(params=session_params(expires_at=now + 30 * 60)).status == "open"
    assert client.v1.checkout.sessions.create(params=session_params(expires_at=now + 24 * 3600 - 5)).status == "open"


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["pk_test_123", FAKE_LIVE_KEY, "not-a-key"])
def test_wrong_keys_are_authentication_errors(sandbox, key):
    with pytest.raises(stripe.AuthenticationError) as error:
        sandbox.client(key).v1.checkout.sessions.list()
    assert error.value.http_status == 401
    assert_stripe_shape(error.value.json_body, "error")


def test_a_missing_key_is_401(sandbox):
    status, body, headers = raw_api(sandbox.base, "GET", "/v1/checkout/sessions", key=None)
    assert status == 401
    assert "You did not provide an API key" in body["error"]["message"]
    assert headers["Request-Id"].startswith("req_")
    assert_stripe_shape(body, "error")


def test_basic_auth_with_the_key_as_user_works_like_curl_u(sandbox):
    import base64

    token = base64.b64encode(f"{TEST_KEY}:".encode()).decode()
    status, body, _ = raw_api(
        sandbox.base, "GET", "/v1/checkout/sessions?limit=1", key=None, headers={"Authorization": f"Basic {token}"}
    )
    assert (status, body["object"]) == (200, "list")
    token = base64.b64encode(b"pk_test_nope:").decode()
    status, _, _ = raw_api(
        sandbox.base, "GET", "/v1/checkout/sessions", key=None, headers={"Authorization": f"Basic {token}"}
    )
    assert status == 401


def test_unknown_routes_are_404_invalid_request(sandbox):
    status, body, _ = raw_api(sandbox.base, "GET", "/v1/customers")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    assert_stripe_shape(body, "error")


# --- idempotency --------------------------------------------------------------------------------


def test_same_key_and_params_replay_the_first_answer(client):
    params = session_params()
    first = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "idem-replay-1"})
    again = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "idem-replay-1"})
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    # Only one session exists for that key.
    listing = client.v1.checkout.sessions.list(params={"created": first.created, "limit": 100})
    assert [s.id for s in listing.data].count(first.id) == 1
    other = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "idem-replay-2"})
    assert other.id != first.id


def test_same_key_with_other_params_is_an_idempotency_error(client):
    client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "idem-mismatch"})
    with pytest.raises(stripe.IdempotencyError) as error:
        client.v1.checkout.sessions.create(
            params=session_params(client_reference_id="other"), options={"idempotency_key": "idem-mismatch"}
        )
    assert error.value.http_status == 400
    assert error.value.json_body["error"]["type"] == "idempotency_error"
    assert_stripe_shape(error.value.json_body, "error")


def test_concurrent_requests_with_one_key_create_one_session(sandbox):
    """Eight buyers' retries racing with the same key: one session; the rest wait (409,
    which the library retries) or replay it."""
    from concurrent.futures import ThreadPoolExecutor

    params = session_params(client_reference_id="race")
    clients = [sandbox.client(max_network_retries=5) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(
                lambda c: c.v1.checkout.sessions.create(params=params, options={"idempotency_key": "idem-race"}).id,
                clients,
            )
        )
    assert len(set(ids)) == 1
    created = [
        s.id
        for s in clients[0].v1.checkout.sessions.list(params={"limit": 100}).auto_paging_iter()
        if s.client_reference_id == "race"
    ]
    assert created == ids[:1]


def test_a_request_that_failed_validation_does_not_use_up_its_key(client):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(params=_without("success_url"), options={"idempotency_key": "idem-invalid"})
    session = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "idem-invalid"})
    assert session.status == "open"


def test_refund_idempotency_does_not_refund_twice(sandbox, client):
    pi = paid_session(sandbox, client).payment_intent
    one = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 1000}, options={"idempotency_key": "idem-refund"}
    )
    two = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 1000}, options={"idempotency_key": "idem-refund"}
    )
    assert one.id == two.id
    charge = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]}).latest_charge
    assert charge.amount_refunded == 1000


# --- refunds ---------------------------------------------------------------------------------------


def test_partial_then_full_refund_then_nothing_left(sandbox, client):
    pi = paid_session(sandbox, client).payment_intent
    partial = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 1800, "reason": "requested_by_customer", "metadata": {"order": "A1"}}
    )
    assert (partial.object, partial.amount, partial.currency, partial.status) == ("refund", 1800, "eur", "succeeded")
    assert (partial.payment_intent, partial.reason) == (pi.id, "requested_by_customer")
    assert partial.charge == pi.latest_charge and partial.id.startswith("re_")
    assert_stripe_shape(partial, "refund")
    charge = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]}).latest_charge
    assert (charge.amount_refunded, charge.refunded) == (1800, False)

    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 8001})
    assert error.value.param == "amount"
    assert "greater than unrefunded amount on charge (€80.00)" in error.value.user_message

    rest = client.v1.refunds.create(params={"payment_intent": pi.id})  # no amount: all that remains
    assert rest.amount == 8000
    charge = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]}).latest_charge
    assert (charge.amount_refunded, charge.refunded) == (9800, True)
    assert_stripe_shape(charge, "charge")

    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert error.value.code == "charge_already_refunded"

    listing = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in listing.data] == [rest.id, partial.id]
    assert listing.has_more is False
    assert_stripe_shape(listing, "list.refund")
    by_charge = client.v1.refunds.list(params={"charge": pi.latest_charge, "limit": 1})
    assert [r.id for r in by_charge.data] == [rest.id] and by_charge.has_more is True


def _events_about(client, object_id: str) -> list:
    """The events about ``object_id``, oldest first."""
    events = client.v1.events.list(params={"limit": 100}).data
    return [e for e in reversed(events) if e.data.object.id == object_id]


def _charge_of(client, pi_id: str):
    return client.v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge"]}).latest_charge


def test_a_refund_of_the_pending_refund_card_is_pending_then_succeeds(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, card="4000000000007726")["outcome"] == "succeeded"
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 1800})
    assert refund.status == "pending"
    assert_stripe_shape(refund, "refund")
    assert _charge_of(client, pi_id).amount_refunded == 1800  # a pending refund is already counted

    settled = sandbox.control("POST", f"/_sandbox/refunds/{refund.id}/settle", {})["refund"]
    assert settled["status"] == "succeeded"
    again = client.v1.refunds.retrieve(refund.id)
    assert (again.status, again.amount) == ("succeeded", 1800)
    assert_stripe_shape(again, "refund")
    events = _events_about(client, refund.id)
    assert [e.type for e in events] == ["refund.created", "refund.updated", "charge.refund.updated"]
    assert events[1].data.previous_attributes.to_dict() == {"status": "pending"}
    assert events[1].data.object.status == "succeeded"
    assert _charge_of(client, pi_id).amount_refunded == 1800
    # Settled once: nothing is left to settle.
    sandbox.control("POST", f"/_sandbox/refunds/{refund.id}/settle", {}, expect=409)


def test_a_refund_of_the_failing_refund_card_succeeds_then_fails_and_gives_the_amount_back(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, card="4000000000005126")["outcome"] == "succeeded"
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    refund = client.v1.refunds.create(params={"payment_intent": pi_id})
    assert (refund.status, refund.amount) == ("succeeded", 9800)
    charge = _charge_of(client, pi_id)
    assert (charge.amount_refunded, charge.refunded) == (9800, True)

    sandbox.control("POST", f"/_sandbox/refunds/{refund.id}/settle", {})
    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert failed.failure_balance_transaction.startswith("txn_")
    assert_stripe_shape(failed, "refund")
    assert [e.type for e in _events_about(client, refund.id)] == [
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
    ]
    charge = _charge_of(client, pi_id)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert_stripe_shape(charge, "charge")
    # The money was never returned, so it can be refunded again (a retry).
    retry = client.v1.refunds.create(params={"payment_intent": pi_id})
    assert (retry.amount, retry.status) == (9800, "succeeded")


def test_the_control_api_chooses_how_a_settling_refund_ends(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, card="4000000000007726")["outcome"] == "succeeded"
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 500})
    sandbox.control("POST", f"/_sandbox/refunds/{refund.id}/settle", {"outcome": "failed"})
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    assert _charge_of(client, pi_id).amount_refunded == 0


def test_an_ordinary_card_refund_has_nothing_to_settle(sandbox, client):
    pi = paid_session(sandbox, client).payment_intent
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    assert refund.status == "succeeded"
    answer = sandbox.control("POST", f"/_sandbox/refunds/{refund.id}/settle", {}, expect=409)
    assert "nothing left to settle" in answer["error"]
    assert [e.type for e in _events_about(client, refund.id)] == ["refund.created"]
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.retrieve("re_missing")
    assert error.value.code == "resource_missing"


def test_a_pending_refund_settles_by_itself_and_its_events_are_delivered(tmp_path):
    receiver = Receiver()
    process = SandboxProcess(
        tmp_path / "refunds.db",
        "--webhook-url",
        receiver.base + "/hook",
        "--refund-settle-seconds",
        "0.5",
        "--tick",
        "0.2",
    ).start()
    try:
        client = process.client()
        session = client.v1.checkout.sessions.create(params=session_params())
        assert process.pay(session.id, card="4000000000007726")["outcome"] == "succeeded"
        pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
        refund = client.v1.refunds.create(params={"payment_intent": pi_id})
        assert refund.status == "pending"
        wait_until(lambda: client.v1.refunds.retrieve(refund.id).status == "succeeded", what="the refund to settle")
        wait_until(
            lambda: (
                {"refund.updated", "charge.refund.updated"}
                <= {json.loads(hook["body"])["type"] for hook in receiver.received["/hook"]}
            ),
            what="refund.updated and charge.refund.updated to be delivered",
        )
    finally:
        process.stop()
        receiver.close()


def test_over_refund_in_one_go_names_the_charge_amount(sandbox, client):
    pi = paid_session(sandbox, client).payment_intent
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 9801})
    assert "greater than charge amount (€98.00)" in error.value.user_message
    assert_stripe_shape(error.value.json_body, "error")


@pytest.mark.parametrize(
    "params, words",
    [
        ({}, "Must provide either `charge` or `payment_intent`"),
        ({"payment_intent": "pi_missing"}, "No such payment_intent"),
        ({"payment_intent": "PAID", "amount": 0}, "Invalid positive integer"),
        ({"payment_intent": "PAID", "amount": "ten"}, "Invalid integer"),
        ({"payment_intent": "PAID", "reason": "changed_mind"}, "Invalid reason"),
    ],
)
def test_refund_rejects_bad_requests(sandbox, client, params, words):
    if params.get("payment_intent") == "PAID":
        params = {**params, "payment_intent": paid_session(sandbox, client).payment_intent.id}
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(params=params)
    assert error.value.http_status == 400
    assert words in error.value.user_message


def test_an_unpaid_payment_intent_cannot_be_refunded(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    sandbox.pay(session.id, card="4000000000009995")
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.refunds.create(params={"payment_intent": pi_id})
    assert "does not have a successful charge to refund" in error.value.user_message


# --- events -----------------------------------------------------------------------------------------


def test_events_list_filters_and_validates(sandbox, client):
    session = paid_session(sandbox, client)
    client.v1.refunds.create(params={"payment_intent": session.payment_intent.id, "amount": 500})
    completed = client.v1.events.list(params={"type": "checkout.session.completed", "limit": 100})
    assert_stripe_shape(completed, "list.event")
    mine = [e for e in completed.data if e.data.object.id == session.id]
    assert len(mine) == 1
    event = mine[0]
    assert event.id.startswith("evt_") and event.api_version == "2026-10-28.endive"
    assert (event.data.object.status, event.data.object.payment_status) == ("complete", "paid")
    assert_stripe_shape(event, "event")
    refund_side = client.v1.events.list(params={"types": ["charge.refunded", "refund.created"], "limit": 2})
    assert [e.type for e in refund_side.data] == ["charge.refunded", "refund.created"]
    assert refund_side.data[0].data.previous_attributes.amount_refunded == 0
    assert refund_side.data[0].request.idempotency_key  # the library sends one on every POST
    wildcard = client.v1.events.list(params={"type": "charge.*", "limit": 5})
    assert wildcard.data and all(e.type.startswith("charge.") for e in wildcard.data)
    assert client.v1.events.retrieve(event.id).id == event.id


# --- the process itself -----------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path):
    db = tmp_path / "restart.db"
    first = SandboxProcess(db).start()
    try:
        session = first.client().v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "idem-restart"}
        )
    finally:
        first.stop()
    second = SandboxProcess(db).start()
    try:
        client = second.client()
        assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
        # Idempotency keys are state too.
        again = client.v1.checkout.sessions.create(
            params=session_params(expires_at=session.expires_at), options={"idempotency_key": "idem-restart"}
        )
        assert again.id == session.id
    finally:
        second.stop()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_refuses_to_start_with_a_live_key(tmp_path, how):
    command = [sys.executable, "-m", "storefront.payments.sandbox", "--port", "0", "--db", str(tmp_path / "x.db")]
    env = {"PATH": "/usr/bin:/bin"}
    if how == "env":
        env["STRIPE_SECRET_KEY"] = FAKE_LIVE_KEY
    else:
        command += ["--api-key", FAKE_LIVE_RESTRICTED_KEY]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "Refusing to start" in result.stderr and "live" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_request_ids_come_back_on_objects(client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.last_response.request_id.startswith("req_")
    assert session.last_response.headers["Stripe-Version"] == "2026-10-28.endive"


def test_reset_forgets_objects_and_webhooks_still_go_to_the_configured_url(tmp_path):
    receiver = Receiver()
    process = SandboxProcess(tmp_path / "reset.db", "--webhook-url", receiver.base + "/hook").start()
    try:
        client = process.client()
        session = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "idem-reset"})
        process.control("POST", "/_sandbox/reset")
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.checkout.sessions.retrieve(session.id)
        assert client.v1.events.list().data == []
        fresh = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "idem-reset"})
        assert fresh.id != session.id
        # The endpoint is configuration, not state: after the reset, events still go there.
        client.v1.checkout.sessions.expire(fresh.id)
        wait_until(lambda: receiver.events("/hook", {fresh.id}), what="the expiry delivered after the reset")
    finally:
        process.stop()
        receiver.close()


def test_a_built_wheel_carries_the_sandbox_and_its_page(tmp_path):
    """The sandbox is self-contained: installed from a wheel, away from the checkout, it
    serves its hosted page, styles and favicon from its own package."""
    wheels, target, tree = tmp_path / "wheels", tmp_path / "site", tmp_path / "tree"
    # From a copy without build leftovers: a stale *.egg-info would list the files itself.
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".*", "*.egg-info", "build", "dist", "instance", "__pycache__", "artifacts", "out"
        ),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
        + ["--wheel-dir", str(wheels), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = wheels.glob("storefront-*.whl")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    package = target / "storefront" / "payments" / "sandbox"
    source = ROOT / "storefront" / "payments" / "sandbox"
    for folder in ("templates", "static"):
        shipped = {p.relative_to(source) for p in (source / folder).rglob("*") if p.is_file()}
        assert shipped and all((package / p).is_file() for p in shipped), folder

    env = {"PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}  # the wheel's copy, never the checkout's
    where = subprocess.run(
        [sys.executable, "-c", "import storefront.payments.sandbox as s; print(s.__file__)"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(package)), where
    process = SandboxProcess(tmp_path / "wheel.db", env=env, cwd=tmp_path).start()
    try:
        session = process.client().v1.checkout.sessions.create(params=session_params())
        with urllib.request.urlopen(session.url, timeout=10) as page:
            html = page.read().decode()
        assert "Pay €98.00" in html and 'href="/static/css/sandbox.css"' in html
        for asset in ("css/sandbox.css", "vendor/pico-2.1.1.min.css", "favicon.svg"):
            with urllib.request.urlopen(f"{process.base}/static/{asset}", timeout=10) as response:
                assert response.status == 200 and response.read(), asset
    finally:
        process.stop()


def test_a_sandbox_with_a_fixed_key_accepts_only_that_key(tmp_path):
    process = SandboxProcess(tmp_path / "fixed.db", "--api-key", "sk_test_only_this").start()
    try:
        assert process.client("sk_test_only_this").v1.checkout.sessions.list().data == []
        with pytest.raises(stripe.AuthenticationError):
            process.client(TEST_KEY).v1.checkout.sessions.list()
    finally:
        process.stop()


def test_the_schema_check_itself_can_fail():
    """Negative control: a session missing required keys, or with a wrong type, is refused."""
    with pytest.raises(AssertionError):
        assert_stripe_shape({"id": "cs_test_1", "object": "checkout.session"}, "checkout.session")
    with pytest.raises(AssertionError):
        assert_stripe_shape({"error": {"type": "card_error", "code": None}}, "error")
