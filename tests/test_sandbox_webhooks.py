"""Webhooks and faults: signed deliveries over real HTTP to a receiver in the test,
retries with backoff, each fault on demand, expiry and bank-debit settlement.

The sandbox runs as its own process with short retry waits (0.3 s, doubling, 4 tries)
and a 0.2 s sweep tick; the receiver is a tiny HTTP server in this process, the one
webhook endpoint the shared sandbox was started with. Tests tell their events apart by
the ids of the objects they made.
"""

from __future__ import annotations

import time

import pytest
import stripe

from .sandbox_support import (  # noqa: F401 (sandbox, no_faults_left: fixtures)
    HOOK_PATH,
    WEBHOOK_SECRET,
    Receiver,
    SandboxProcess,
    assert_stripe_shape,
    free_port,
    no_faults_left,
    sandbox,
    session_params,
    wait_until,
)

CARD_OK = "4242424242424242"


@pytest.fixture(scope="module")
def receiver(sandbox) -> Receiver:
    return sandbox.receiver


@pytest.fixture(scope="module")
def client(sandbox):
    return sandbox.client()


@pytest.fixture
def hook(sandbox, receiver):
    """The path on the receiver where the sandbox delivers; faults armed by the test are
    cleared after it."""
    yield HOOK_PATH
    sandbox.control("DELETE", "/_sandbox/faults")


def types_of(events):
    return [e["type"] for e in events]


def pay(sandbox, client, card=CARD_OK, **overrides):
    session = client.v1.checkout.sessions.create(params=session_params(**overrides))
    result = sandbox.pay(session.id, card=card)
    return session, result, client.v1.checkout.sessions.retrieve(session.id).payment_intent


# --- signatures ------------------------------------------------------------------------------


def test_a_paid_session_is_announced_by_signed_events_that_construct_event_accepts(sandbox, client, receiver, hook):
    session, result, pi_id = pay(sandbox, client)
    assert result["outcome"] == "succeeded"
    events = wait_until(lambda: len(got := receiver.events(hook, {session.id, pi_id})) >= 3 and got, what="3 events")
    assert types_of(events) == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    completed = events[-1]
    assert completed["data"]["object"]["payment_status"] == "paid"
    assert completed["data"]["object"]["payment_intent"] == pi_id
    for event in events:
        assert_stripe_shape(event, "event")

    [raw] = [
        r
        for r in receiver.received[hook]
        if b'"checkout.session.completed"' in r["body"] and session.id.encode() in r["body"]
    ]
    header = raw["signature"]
    assert header.startswith("t=") and ",v1=" in header
    event = stripe.Webhook.construct_event(raw["body"], header, WEBHOOK_SECRET)
    assert (event.type, event.data.object.id) == ("checkout.session.completed", session.id)

    tampered = raw["body"].replace(b'"paid"', b'"unpaid"')
    assert tampered != raw["body"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, header, WEBHOOK_SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(raw["body"], header, "whsec_someone_else")
    timestamp = header.split(",")[0][2:]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            raw["body"], header.replace(f"t={timestamp}", f"t={int(timestamp) - 1}"), WEBHOOK_SECRET
        )

    log = sandbox.deliveries(completed["id"])
    assert [(d["state"], d["attempts"], d["last_status"]) for d in log if d["endpoint_url"].endswith(hook)] == [
        ("delivered", 1, 200)
    ]
    # Once delivered, the event no longer waits on this endpoint.
    assert client.v1.events.retrieve(completed["id"]).pending_webhooks == 0


def test_a_decline_emits_payment_failed_and_leaves_the_session_open(sandbox, client, receiver, hook):
    session, result, pi_id = pay(sandbox, client, card="4000000000009995")
    assert (result["outcome"], result["decline_code"]) == ("declined", "insufficient_funds")
    assert result["message"] == "Your card has insufficient funds."
    events = wait_until(
        lambda: len(got := receiver.events(hook, {session.id, pi_id})) >= 2 and got, what="decline events"
    )
    assert types_of(events) == ["charge.failed", "payment_intent.payment_failed"]
    error = events[-1]["data"]["object"]["last_payment_error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert events[0]["data"]["object"]["failure_code"] == "card_declined"
    for event in events:
        assert_stripe_shape(event, "event")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    # The buyer tries again in the same session: same PaymentIntent, now paid.
    assert sandbox.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
    retried = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (retried.status, retried.payment_intent.id, retried.payment_intent.status) == (
        "complete",
        pi_id,
        "succeeded",
    )
    wait_until(lambda: "checkout.session.completed" in types_of(receiver.events(hook, {session.id})), what="completed")


def test_three_d_secure_pass_and_fail(sandbox, client, receiver, hook):
    passed = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(passed.id, card="4000002500003155", authenticate="complete")["outcome"] == "succeeded"
    failed = client.v1.checkout.sessions.create(params=session_params())
    result = sandbox.pay(failed.id, card="4000002500003155", authenticate="fail")
    assert result["outcome"] == "declined"
    assert "unable to authenticate" in result["message"]
    pi = client.v1.payment_intents.retrieve(client.v1.checkout.sessions.retrieve(failed.id).payment_intent)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "payment_intent_authentication_failure"
    assert_stripe_shape(pi, "payment_intent")
    wait_until(
        lambda: "payment_intent.payment_failed" in types_of(receiver.events(hook, {pi.id})), what="payment_failed"
    )
    assert client.v1.checkout.sessions.retrieve(passed.id).payment_status == "paid"


def test_three_d_secure_waits_for_the_buyer(sandbox, client):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, card="4000002760003184")["outcome"] == "requires_action"
    waiting = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (waiting.status, waiting.payment_intent.status) == ("open", "requires_action")
    assert waiting.payment_intent.next_action.type == "use_stripe_sdk"
    assert_stripe_shape(waiting, "checkout.session")
    done = sandbox.control("POST", f"/_sandbox/checkout/sessions/{session.id}/authenticate", {"result": "complete"})
    assert done["outcome"] == "succeeded"
    assert done["redirect"].endswith(f"session_id={session.id}")
    sandbox.control(
        "POST", f"/_sandbox/checkout/sessions/{session.id}/authenticate", {"result": "complete"}, expect=409
    )
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_refunds_announce_refund_created_and_charge_refunded(sandbox, client, receiver, hook):
    _, _, pi_id = pay(sandbox, client)
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 1900})
    wait_until(
        lambda: {"refund.created", "charge.refunded"} <= set(types_of(receiver.events(hook, {pi_id, refund.id}))),
        what="refund.created and charge.refunded",
    )
    by_type = {e["type"]: e for e in receiver.events(hook, {pi_id, refund.id})}
    assert by_type["refund.created"]["data"]["object"]["id"] == refund.id
    charge = by_type["charge.refunded"]["data"]["object"]
    assert (charge["amount_refunded"], charge["refunded"]) == (1900, False)
    assert by_type["charge.refunded"]["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}
    assert by_type["charge.refunded"]["request"]["id"].startswith("req_")
    for event in by_type.values():
        assert_stripe_shape(event, "event")


# --- retries ---------------------------------------------------------------------------------------


def test_non_2xx_answers_are_retried_with_growing_waits(sandbox, client, receiver, hook):
    session = client.v1.checkout.sessions.create(params=session_params())
    receiver.script(hook, [500, 503], match=session.id.encode())  # its completion; the third try gets 200
    assert sandbox.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
    wait_until(lambda: receiver.events(hook, {session.id}), what="the delivery that finally succeeded")
    arrivals = [
        r
        for r in receiver.received[hook]
        if session.id.encode() in r["body"] and b"checkout.session.completed" in r["body"]
    ]
    assert [r["status"] for r in arrivals] == [500, 503, 200]
    assert len({r["body"] for r in arrivals}) == 1  # the same event, byte for byte
    first_wait = arrivals[1]["at"] - arrivals[0]["at"]
    second_wait = arrivals[2]["at"] - arrivals[1]["at"]
    # Backoff 0.3 s, then 0.6 s (doubling): these are lower bounds, a busy machine only adds.
    assert first_wait >= 0.28 and second_wait >= 0.58, (first_wait, second_wait)
    event_id = receiver.events(hook, {session.id})[0]["id"]
    [log] = [d for d in sandbox.deliveries(event_id) if d["endpoint_url"].endswith(hook)]
    assert log["state"] == "delivered"
    assert [a["status"] for a in log["attempt_log"]] == [500, 503, 200]


def test_a_delivery_gives_up_after_its_last_try_and_shows_in_events_with_failed_delivery(
    sandbox, client, receiver, hook
):
    session = client.v1.checkout.sessions.create(params=session_params())
    receiver.script(hook, [500] * 4, match=session.id.encode())
    assert sandbox.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
    event = client.v1.events.list(params={"type": "checkout.session.completed", "limit": 1}).data[0]
    assert event.data.object.id == session.id

    def given_up():
        log = [d for d in sandbox.deliveries(event.id) if d["endpoint_url"].endswith(hook)]
        return log and log[0]["state"] == "failed" and log[0]

    log = wait_until(given_up, timeout=15, what="the delivery to give up")
    assert log["attempts"] == 4 and [a["status"] for a in log["attempt_log"]] == [500] * 4
    undelivered = {
        e.id for e in client.v1.events.list(params={"delivery_success": "false", "limit": 100}).auto_paging_iter()
    }
    assert event.id in undelivered


def test_an_unreachable_endpoint_is_logged_and_retried(tmp_path, receiver):
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    healthy = "/hooks/beside-a-dead-one"
    process = SandboxProcess(tmp_path / "dead.db", "--webhook-url", receiver.base + healthy, "--webhook-url", dead)
    process.start()
    try:
        client = process.client()
        session, _, _ = pay(process, client)
        event = client.v1.events.list(params={"type": "checkout.session.completed", "limit": 1}).data[0]
        assert event.data.object.id == session.id

        def tried_twice():
            log = [d for d in process.deliveries(event.id) if d["endpoint_url"] == dead]
            return log and log[0]["attempts"] >= 2 and log[0]

        log = wait_until(tried_twice, what="two tries at the dead endpoint")
        assert all(a["status"] is None and "Connection refused" in a["error"] for a in log["attempt_log"])
        # The healthy endpoint got its copy regardless.
        assert receiver.events(healthy, {session.id})
    finally:
        process.stop()


# --- delivery faults --------------------------------------------------------------------------------


def test_fault_duplicate_delivers_the_same_event_twice(sandbox, client, receiver, hook):
    sandbox.control("POST", "/_sandbox/faults", {"kind": "duplicate", "event_type": "checkout.session.completed"})
    session, _, _ = pay(sandbox, client)
    events = wait_until(lambda: len(got := receiver.events(hook, {session.id})) >= 2 and got, what="two copies")
    time.sleep(0.5)
    events = receiver.events(hook, {session.id})
    assert len(events) == 2 and events[0]["id"] == events[1]["id"]
    # The fault fired once: the next payment is delivered once.
    other, _, _ = pay(sandbox, client)
    wait_until(lambda: receiver.events(hook, {other.id}), what="the next event")
    time.sleep(0.5)
    assert len(receiver.events(hook, {other.id})) == 1


def test_fault_reorder_sends_held_events_newest_first(sandbox, client, receiver, hook):
    sandbox.control("POST", "/_sandbox/faults", {"kind": "reorder", "count": 3})
    session, _, pi_id = pay(sandbox, client)
    events = wait_until(lambda: len(got := receiver.events(hook, {session.id, pi_id})) >= 3 and got, what="3 events")
    assert types_of(events) == ["checkout.session.completed", "payment_intent.succeeded", "charge.succeeded"]
    assert [e["created"] for e in events] == sorted((e["created"] for e in events), reverse=True)


def test_fault_delay_holds_a_delivery_back(sandbox, client, receiver, hook):
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "delay", "seconds": 1.5, "event_type": "checkout.session.completed"}
    )
    started = time.time()
    session, _, pi_id = pay(sandbox, client)
    wait_until(
        lambda: "payment_intent.succeeded" in types_of(receiver.events(hook, {pi_id})), what="the undelayed event"
    )
    assert not receiver.events(hook, {session.id}), "the delayed event came early"
    wait_until(lambda: receiver.events(hook, {session.id}), what="the delayed event")
    [arrival] = [
        r
        for r in receiver.received[hook]
        if session.id.encode() in r["body"] and b"checkout.session.completed" in r["body"]
    ]
    assert arrival["at"] - started >= 1.5


def test_fault_drop_never_delivers_but_the_event_can_be_listed(sandbox, client, receiver, hook):
    sandbox.control("POST", "/_sandbox/faults", {"kind": "drop", "event_type": "checkout.session.completed"})
    session, _, pi_id = pay(sandbox, client)
    wait_until(lambda: "payment_intent.succeeded" in types_of(receiver.events(hook, {pi_id})), what="the other events")
    time.sleep(0.6)
    assert receiver.events(hook, {session.id}, status=None) == []
    event = client.v1.events.list(params={"type": "checkout.session.completed", "limit": 1}).data[0]
    assert event.data.object.id == session.id  # reconciliation can still find it
    assert [d["state"] for d in sandbox.deliveries(event.id) if d["endpoint_url"].endswith(hook)] == ["dropped"]


def test_a_bad_fault_is_refused(sandbox):
    body = sandbox.control("POST", "/_sandbox/faults", {"kind": "explode"}, expect=400)
    assert "kind must be one of" in body["error"]
    body = sandbox.control("POST", "/_sandbox/faults", {"kind": "delay"}, expect=400)
    assert "seconds" in body["error"]


# --- API faults --------------------------------------------------------------------------------------


def test_fault_api_error_answers_500_once(sandbox, hook):
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "api_error", "method": "POST", "path": "/v1/checkout/sessions"}
    )
    plain = sandbox.client()
    with pytest.raises(stripe.APIError) as error:
        plain.v1.checkout.sessions.create(params=session_params())
    assert error.value.http_status == 500
    assert_stripe_shape(error.value.json_body, "error")
    assert plain.v1.checkout.sessions.create(params=session_params()).status == "open"  # once only

    # With retries (as the gateway configures), the library rides over it with the same key.
    sandbox.control("POST", "/_sandbox/faults", {"kind": "api_error", "path": "/v1/checkout/sessions"})
    retrying = sandbox.client(max_network_retries=2)
    session = retrying.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "fault-500-retry"}
    )
    assert session.status == "open"
    assert sandbox.control("GET", "/_sandbox/faults")["faults"][-1]["remaining"] == 0


def test_fault_connection_error_before_the_request_runs(sandbox, client, hook):
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"kind": "connection_error", "when": "before", "method": "POST", "path": "/v1/checkout/sessions"},
    )
    before = {s.id for s in client.v1.checkout.sessions.list(params={"limit": 100}).auto_paging_iter()}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "fault-conn-before"})
    after = {s.id for s in client.v1.checkout.sessions.list(params={"limit": 100}).auto_paging_iter()}
    assert after == before  # nothing was created
    session = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "fault-conn-before"}
    )
    assert session.last_response.headers.get("Idempotent-Replayed") is None


def test_fault_connection_error_after_the_request_ran_then_replay(sandbox, client, hook):
    """The caller never hears back, but Stripe did the work: a retry with the same
    idempotency key must get that same session, not a second one."""
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"kind": "connection_error", "when": "after", "method": "POST", "path": "/v1/checkout/sessions"},
    )
    params = session_params(client_reference_id="conn-after")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "fault-conn-after"})
    again = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "fault-conn-after"})
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    same_ref = [
        s.id
        for s in client.v1.checkout.sessions.list(params={"limit": 100}).auto_paging_iter()
        if s.client_reference_id == "conn-after"
    ]
    assert same_ref == [again.id]


# --- expiry ----------------------------------------------------------------------------------------------


def test_the_background_sweep_expires_sessions_past_expires_at(sandbox, client, receiver, hook):
    session = client.v1.checkout.sessions.create(params=session_params())
    # Test control: treat this session's expires_at as passed, and let the loop find it.
    sandbox.control("POST", f"/_sandbox/checkout/sessions/{session.id}/lapse", {"sweep": False})
    events = wait_until(lambda: receiver.events(hook, {session.id}), what="checkout.session.expired")
    assert types_of(events) == ["checkout.session.expired"]
    assert events[0]["data"]["object"]["status"] == "expired"
    assert events[0]["data"]["previous_attributes"] == {"status": "open"}
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert sandbox.pay(session.id, card=CARD_OK)["outcome"] == "not_open"


def test_expire_by_api_emits_expired_once(sandbox, client, receiver, hook):
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    assert sandbox.control("POST", "/_sandbox/sweep")["expired"] == []
    wait_until(lambda: receiver.events(hook, {session.id}), what="checkout.session.expired")
    time.sleep(0.5)
    events = receiver.events(hook, {session.id})
    assert types_of(events) == ["checkout.session.expired"]
    assert events[0]["request"]["id"].startswith("req_")


# --- bank debit: completes unpaid, settles later ----------------------------------------------------------


@pytest.mark.parametrize(
    "iban, outcome, final_event, payment_status, pi_status",
    [
        ("DE89370400440532013000", "succeeded", "checkout.session.async_payment_succeeded", "paid", "succeeded"),
        (
            "DE62370400440532013001",
            "failed",
            "checkout.session.async_payment_failed",
            "unpaid",
            "requires_payment_method",
        ),
    ],
)
def test_bank_debit_completes_unpaid_then_settles(
    sandbox, client, receiver, hook, iban, outcome, final_event, payment_status, pi_status
):
    session = client.v1.checkout.sessions.create(params=session_params())
    assert sandbox.pay(session.id, iban=iban)["outcome"] == "processing"
    completed = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]})
    assert (completed.status, completed.payment_status) == ("complete", "unpaid")
    assert (completed.payment_intent.status, completed.payment_intent.latest_charge.status) == ("processing", "pending")
    assert completed.payment_intent.latest_charge.payment_method_details.type == "sepa_debit"
    assert_stripe_shape(completed, "checkout.session")
    events = wait_until(
        lambda: [e for e in receiver.events(hook, {session.id}) if e["type"] == "checkout.session.completed"],
        what="completed (unpaid)",
    )
    assert events[0]["data"]["object"]["payment_status"] == "unpaid"

    settled = sandbox.control("POST", f"/_sandbox/payment_intents/{completed.payment_intent.id}/settle", {})
    assert settled["payment_intent"]["status"] == pi_status
    wait_until(lambda: final_event in types_of(receiver.events(hook, {session.id})), what=final_event)
    after = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]})
    assert (after.status, after.payment_status) == ("complete", payment_status)
    assert after.payment_intent.latest_charge.status == outcome
    assert_stripe_shape(after, "checkout.session")
    for event in receiver.events(hook, {session.id, completed.payment_intent.id}):
        assert_stripe_shape(event, "event")
    # Settling twice is refused.
    sandbox.control("POST", f"/_sandbox/payment_intents/{completed.payment_intent.id}/settle", {}, expect=409)


def test_bank_debit_settles_by_itself_after_the_configured_delay(tmp_path, receiver):
    process = SandboxProcess(
        tmp_path / "settle.db", "--settle-seconds", "0.5", "--webhook-url", receiver.base + "/hooks/auto-settle"
    ).start()
    try:
        client = process.client()
        session = client.v1.checkout.sessions.create(params=session_params())
        assert process.pay(session.id, iban="DE89370400440532013000")["outcome"] == "processing"
        wait_until(
            lambda: (
                "checkout.session.async_payment_succeeded"
                in types_of(receiver.events("/hooks/auto-settle", {session.id}))
            ),
            what="the automatic settlement",
        )
        assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    finally:
        process.stop()


# --- what an endpoint subscribes to, and concurrent delivery ----------------------------------


def test_an_endpoint_gets_only_the_enabled_event_types_and_concurrently(tmp_path, receiver):
    """``--webhook-event`` is Stripe's enabled_events: only those types are delivered,
    every event is still listed. With several senders every delivery still arrives once."""
    process = SandboxProcess(
        tmp_path / "subscribed.db",
        "--webhook-url",
        receiver.base + "/subscribed",
        "--webhook-event",
        "checkout.session.completed",
        "--delivery-concurrency",
        "4",
    ).start()
    try:
        client = process.client()
        paid = []
        for _ in range(6):
            session = client.v1.checkout.sessions.create(params=session_params())
            assert process.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
            paid.append(session.id)
        events = wait_until(
            lambda: len(got := receiver.events("/subscribed")) >= 6 and got, what="6 completed sessions delivered"
        )
        time.sleep(0.5)  # nothing else may follow
        events = receiver.events("/subscribed")
        assert sorted(e["data"]["object"]["id"] for e in events) == sorted(paid)
        assert set(types_of(events)) == {"checkout.session.completed"}
        listed = types_of(e.to_dict() for e in client.v1.events.list(params={"limit": 100}).data)
        assert {"charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"} <= set(listed)
    finally:
        process.stop()
