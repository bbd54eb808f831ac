"""The promises under faults: webhooks duplicated, reordered, delayed past the hold,
dropped, forged or stale; the database failing in the middle of fulfilment; the app
stopping between Stripe's answer and our commit; two fulfilments at the same moment.
Each test ends with ``assert_promises`` (no oversell; each paid session has exactly
one order or one refund; no order without a paid session). SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select, text

from storefront import cart as carts
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, CartStatus, Order, PaymentAttempt, WebhookEvent
from storefront.payments import gateway as gw

from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    add,
    assert_promises,
    attempt_of,
    buy_until_stripe,
    cart_token,
    deliver,
    order_of,
    pay_but_drop_the_completion,
    sandbox,
    session_id_of,
    shop,
    signed,
    start_checkout,
    stored_events,
    stripe_event,
    wait_for_order,
)
from .conftest import backend_url, clean, make_app
from .factories import cart_by_id, cart_by_token, make_event, ticket_type
from .sandbox_support import TEST_KEY, WEBHOOK_SECRET, wait_until

# --- signatures ---------------------------------------------------------------------------


def test_badly_signed_stale_or_unsigned_webhooks_are_refused_and_nothing_is_stored(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    completed = stripe_event("checkout.session.completed", session_id)

    assert deliver(client, completed, secret="whsec_someone_else").status_code == 400
    assert deliver(client, completed, timestamp=int(time.time()) - 600).status_code == 400
    payload, headers = signed(completed)
    tampered = payload.replace(b'"paid"', b'"unpaid"')
    assert client.post("/webhooks/stripe", data=tampered, headers=headers).status_code == 400
    assert client.post("/webhooks/stripe", data=payload).status_code == 400  # no signature
    assert stored_events(completed.id) == 0 and order_of(session_id) is None
    # The same event, properly signed, is taken (so the refusals were the signature's).
    assert deliver(client, completed).status_code == 200
    assert order_of(session_id) is not None
    assert_promises()


# --- duplicates and order ------------------------------------------------------------------


def test_a_duplicated_webhook_makes_one_order(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    sandbox.control("POST", "/_sandbox/faults", {"kind": "duplicate", "event_type": "checkout.session.completed"})
    sandbox.pay(session_id, card=CARD_OK)
    wait_for_order(session_id)
    completed = stripe_event("checkout.session.completed", session_id)
    wait_until(
        lambda: len([d for d in sandbox.deliveries(completed.id) if d["last_status"] == 200]) >= 2,
        what="both copies answered 200",
    )
    # And once more by hand: answered 200, nothing done.
    again = deliver(client, completed)
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    db.session.rollback()
    assert db.session.execute(select(func.count(Order.id))).scalar_one() == 1
    rows = db.session.execute(select(WebhookEvent).where(WebhookEvent.stripe_event_id == completed.id)).scalars().all()
    assert len(rows) == 1 and rows[0].outcome == "order" and rows[0].processed_at is not None
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (2, 0)
    assert_promises()


@pytest.mark.parametrize("reorder", [True, False])
def test_completed_and_an_older_sessions_expiry_in_either_order(shop, sandbox, reorder):
    """The buyer left session 1 (closed when they changed the cart) and paid session 2.
    Whichever of "1 expired" and "2 completed" arrives first, one order, right stock."""
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 4}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    first = buy_until_stripe(client, event, {tt_id: 1})
    if reorder:
        # Hold the next deliveries (1's expiry, then 2's charge, intent, completion), newest first.
        sandbox.control("POST", "/_sandbox/faults", {"kind": "reorder", "count": 4})
    cart = cart_by_token(cart_token(client))
    line_id = cart.items[0].id
    assert client.post(f"/cart/lines/{line_id}", data={"quantity": "2"}).status_code == 303
    response = start_checkout(client, 2)
    second = response.headers["Location"].rsplit("/", 1)[1]
    sandbox.pay(second, card=CARD_OK)
    order = wait_for_order(second)
    wait_until(lambda: attempt_of(first).status == AttemptStatus.EXPIRED.value, what="the first attempt expired")
    expired = stripe_event("checkout.session.expired", first)
    wait_until(
        lambda: (
            stored_events(expired.id)
            and db.session.execute(
                select(WebhookEvent.outcome).where(WebhookEvent.stripe_event_id == expired.id)
            ).scalar_one_or_none()
        ),
        what="the expiry processed",
    )
    assert len(order.tickets) == 2
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (2, 0)
    assert cart_by_id(cart.id).status == CartStatus.CONVERTED.value
    assert_promises()


# --- late payments -----------------------------------------------------------------------------


def _pay_late(shop, sandbox, capacity: int, other_buyer_takes_it: bool):
    """A buyer pays, but the completion arrives after the hold was released (the sweep
    or an expiry got there first). Returns (session id, ticket type id, client)."""
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 3000, "capacity": capacity}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "delay", "seconds": 2.5, "event_type": "checkout.session.completed"}
    )
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    # Meanwhile the hold is released, as when it lapsed.
    cart_id = cart_by_token(cart_token(client)).id
    with write_transaction():
        from storefront.models import utcnow

        assert carts.release_checking_out(cart_id, utcnow())
    assert ticket_type(tt_id).held == 0
    if other_buyer_takes_it:
        rival = shop.test_client()
        add(rival, event, {tt_id: capacity})
    return session_id, tt_id, client


def test_late_payment_with_the_stock_gone_is_refunded(shop, sandbox):
    session_id, tt_id, client = _pay_late(shop, sandbox, capacity=1, other_buyer_takes_it=True)
    attempt = wait_until(
        lambda: (a := attempt_of(session_id)) and a.status == "refunded" and a, timeout=15, what="the automatic refund"
    )
    assert attempt.refund_reason == "stock_gone_after_hold_lapsed" and attempt.stripe_refund_id.startswith("re_")
    assert order_of(session_id) is None
    refund = gw.get_gateway().list_refunds(payment_intent=attempt.stripe_payment_intent_id).data
    assert len(refund) == 1 and refund[0].amount == 3000
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 1)  # the rival's hold is intact
    told = client.get(f"/checkout/status?session_id={session_id}", headers={"HX-Request": "true"})
    assert told.status_code == 286 and "refunded" in told.get_data(as_text=True)
    assert_promises()


def test_late_payment_with_stock_left_still_gets_its_order(shop, sandbox):
    session_id, tt_id, _ = _pay_late(shop, sandbox, capacity=2, other_buyer_takes_it=False)
    order = wait_for_order(session_id)
    assert len(order.tickets) == 1
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (1, 0)
    assert_promises()


# --- lost webhooks ----------------------------------------------------------------------------------


def test_a_dropped_webhook_is_made_good_by_the_success_page(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    stripe_event("checkout.session.completed", session_id)
    time.sleep(0.5)
    # Within the first 10 s the page only waits for the webhook...
    early = client.get(f"/checkout/status?session_id={session_id}", headers={"HX-Request": "true"})
    assert early.status_code == 200 and order_of(session_id) is None
    # ...after that it asks Stripe, and fulfils.
    started = int(time.time()) - 11
    late = client.get(f"/checkout/status?session_id={session_id}&started={started}", headers={"HX-Request": "true"})
    order = order_of(session_id)
    assert late.status_code == 286 and order is not None and order.code in late.get_data(as_text=True)
    assert_promises()


def test_after_30_seconds_the_page_stops_and_promises_a_mail(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    started = int(time.time()) - 31
    answer = client.get(f"/checkout/status?session_id={session_id}&started={started}", headers={"HX-Request": "true"})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 286 and "confirmation will come by email" in body and "every 2s" not in body


def test_a_dropped_webhook_is_made_good_by_reconcile_which_is_idempotent(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    stripe_event("checkout.session.completed", session_id)
    assert order_of(session_id) is None
    runner = shop.test_cli_runner()
    first = runner.invoke(args=["reconcile", "--hours", "1"])
    assert first.exit_code == 0, first.output
    assert f"fixed: {session_id}: paid without an order -> order" in first.output
    assert order_of(session_id) is not None
    second = runner.invoke(args=["reconcile", "--hours", "1"])
    assert second.exit_code == 0 and session_id not in second.output
    assert_promises()


def test_crash_after_stripe_accepted_the_session_reconcile_recovers(shop, sandbox):
    """Stripe made the session but our app never heard back (every try of the request
    lost its answer), so the attempt never learnt its session; the buyer still paid it
    (e.g. from another tab), and the completion webhook was lost too."""
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    add(client, event, {tt_id: 1})
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"kind": "connection_error", "when": "after", "count": 3, "method": "POST", "path": "/v1/checkout/sessions"},
    )
    assert start_checkout(client, 1).status_code == 503
    db.session.rollback()
    [attempt] = db.session.execute(select(PaymentAttempt)).scalars().all()
    assert attempt.stripe_checkout_session_id is None and attempt.status == "creating"
    made = [
        s
        for s in gw.get_gateway().list_checkout_sessions(limit=100).auto_paging_iter()
        if s.metadata and "attempt_key" in s.metadata and s.metadata["attempt_key"] == attempt.idempotency_key
    ]
    assert len(made) == 1  # the library's retries reused the key: one session
    pay_but_drop_the_completion(sandbox, made[0].id)
    stripe_event("checkout.session.completed", made[0].id)
    assert order_of(made[0].id) is None

    output = shop.test_cli_runner().invoke(args=["reconcile", "--hours", "1"]).output
    assert f"{made[0].id}: recorded on attempt {attempt.id}" in output
    assert f"{made[0].id}: paid without an order -> order" in output
    assert len(order_of(made[0].id).tickets) == 1
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (1, 0)
    assert_promises()


# --- the database failing ------------------------------------------------------------------------


def _arm_ticket_insert_failure(shop):
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION fail_ticket_insert() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fail_ticket_insert BEFORE INSERT ON tickets "
                    "FOR EACH ROW EXECUTE FUNCTION fail_ticket_insert()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER fail_ticket_insert BEFORE INSERT ON tickets "
                    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                )
            )


def _disarm_ticket_insert_failure():
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER IF EXISTS fail_ticket_insert ON tickets"))
            conn.execute(text("DROP FUNCTION IF EXISTS fail_ticket_insert()"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS fail_ticket_insert"))


def test_the_database_failing_mid_fulfilment_answers_500_then_the_retry_succeeds(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    pay_but_drop_the_completion(sandbox, session_id)
    completed = stripe_event("checkout.session.completed", session_id)
    db.session.remove()
    _arm_ticket_insert_failure(shop)
    try:
        failed = deliver(client, completed)
    finally:
        _disarm_ticket_insert_failure()
    assert failed.status_code == 500
    # Nothing of the fulfilment stayed: no order, stock still held, cart still paying.
    assert order_of(session_id) is None
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 2)
    assert cart_by_token(cart_token(client)).status == CartStatus.CHECKING_OUT.value
    row = db.session.execute(select(WebhookEvent).where(WebhookEvent.stripe_event_id == completed.id)).scalar_one()
    assert row.outcome == "error" and "injected failure" in row.error and row.processed_at is None

    retried = deliver(client, completed)  # Stripe's retry
    assert retried.status_code == 200 and retried.get_json()["outcome"] == "order"
    assert len(order_of(session_id).tickets) == 2
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (2, 0)
    assert_promises()


# --- two fulfilments at once ------------------------------------------------------------------------


def test_success_page_and_webhook_fulfilling_at_the_same_moment_make_one_order(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    buyer = shop.test_client()
    session_id = buy_until_stripe(buyer, event, {tt_id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    completed = stripe_event("checkout.session.completed", session_id)
    stripe_side = shop.test_client()
    barrier = threading.Barrier(2)
    answers = {}

    def webhook():
        with shop.app_context():
            barrier.wait()
            answers["webhook"] = deliver(stripe_side, completed).status_code

    def page():
        with shop.app_context():
            barrier.wait()
            started = int(time.time()) - 11
            answers["page"] = buyer.get(
                f"/checkout/status?session_id={session_id}&started={started}", headers={"HX-Request": "true"}
            ).status_code

    threads = [threading.Thread(target=webhook), threading.Thread(target=page)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert answers == {"webhook": 200, "page": 286}
    db.session.rollback()
    assert db.session.execute(select(func.count(Order.id))).scalar_one() == 1
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (1, 0)
    assert_promises()


def test_the_sweep_expires_the_session_of_a_lapsed_checkout(shop, sandbox):
    from .factories import lapse

    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    lapse(cart_token(client))
    output = shop.test_cli_runner().invoke(args=["sweep-holds"]).output
    assert "Released 1 lapsed cart hold(s)." in output
    assert gw.get_gateway().retrieve_checkout_session(session_id).status == "expired"
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "not_open"  # no payment can start late
    assert attempt_of(session_id).status == AttemptStatus.EXPIRED.value
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 0)
    assert_promises()


def test_a_session_expiring_at_stripe_releases_the_hold(shop, sandbox):
    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 2})
    assert ticket_type(tt_id).held == 2
    # Stripe's clock passes the session's expires_at: it expires it and says so.
    sandbox.control("POST", f"/_sandbox/checkout/sessions/{session_id}/lapse", {})
    wait_until(lambda: attempt_of(session_id).status == AttemptStatus.EXPIRED.value, what="the attempt expired")
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (0, 0)
    assert cart_by_token(cart_token(client)).status == CartStatus.EXPIRED.value
    page = client.get("/cart").get_data(as_text=True)
    assert "Your reservation lapsed" in page
    assert_promises()


def test_the_sweep_fulfils_a_lapsed_checkout_that_was_paid(shop, sandbox):
    from .factories import lapse

    event = make_event()
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    stripe_event("checkout.session.completed", session_id)
    lapse(cart_token(client))
    output = shop.test_cli_runner().invoke(args=["sweep-holds"]).output
    assert "Released 0 lapsed cart hold(s)." in output
    assert len(order_of(session_id).tickets) == 1
    assert (ticket_type(tt_id).sold, ticket_type(tt_id).held) == (1, 0)
    assert_promises()


def test_reconcile_expires_a_session_we_ended_but_stripe_still_has_open(shop, sandbox):
    """The app stopped after ending the attempt and before telling Stripe."""
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    with write_transaction():
        db.session.get(PaymentAttempt, attempt_of(session_id).id).status = AttemptStatus.EXPIRED.value
    output = shop.test_cli_runner().invoke(args=["reconcile", "--hours", "1"]).output
    assert f"{session_id}: open at Stripe but attempt" in output and "-> expired at Stripe" in output
    assert gw.get_gateway().retrieve_checkout_session(session_id).status == "expired"
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "not_open"


# --- Stripe's answer without a page to pay on ---------------------------------------------------


class NullUrlProxy:
    """Between the ``stripe`` library and the sandbox: forwards every call as it is, but
    while ``null_url`` is set answers a created Checkout Session with ``"url": null``
    (as Stripe does for sessions that have no hosted page)."""

    def __init__(self, target: str) -> None:
        proxy = self
        self.null_url = True

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(
                    target + self.path, data=body or None, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, answer_headers, payload = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, answer_headers, payload = error.code, error.headers, error.read()
                    error.close()
                if proxy.null_url and self.command == "POST" and self.path == "/v1/checkout/sessions" and status == 200:
                    payload = json.dumps({**json.loads(payload), "url": None}).encode()
                self.send_response(status)
                for name, value in answer_headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="null-url-proxy", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.mark.parametrize("with_htmx", [True, False])
def test_a_session_without_a_url_is_told_to_the_buyer_and_the_hold_kept(database_urls, backend, sandbox, with_htmx):
    """It used to answer ``303 Location: None``."""
    proxy = NullUrlProxy(sandbox.base)
    app = make_app(
        backend_url(database_urls, backend),
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_API_BASE=proxy.base,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    clean(app)
    try:
        with app.app_context():
            event = make_event()
            tt_id = event.ticket_types[0].id
            client = app.test_client()
            add(client, event, {tt_id: 1})
            headers = {"HX-Request": "true"} if with_htmx else {}
            response = start_checkout(client, 1, **headers)
            body = response.get_data(as_text=True)
            assert response.status_code == 503, body[:500]
            assert "Location" not in response.headers and "HX-Redirect" not in response.headers
            assert "could not reach the payment service" in body and "still held" in body
            assert ("<html" in body) is not with_htmx
            [attempt] = db.session.execute(select(PaymentAttempt)).scalars().all()
            assert (attempt.status, attempt.error_type) == (AttemptStatus.FAILED.value, "missing_url")
            # Nobody could pay it, and nobody can now: it is closed at Stripe.
            assert gw.get_gateway().retrieve_checkout_session(attempt.stripe_checkout_session_id).status == "expired"
            assert cart_by_token(cart_token(client)).status == CartStatus.ACTIVE.value
            assert ticket_type(tt_id).held == 1

            proxy.null_url = False  # Stripe answers as usual again: pressing Pay works
            session_id = session_id_of(start_checkout(client, 1))
            assert session_id != attempt.stripe_checkout_session_id
            db.session.rollback()
            assert cart_by_token(cart_token(client)).status == CartStatus.CHECKING_OUT.value
            db.session.remove()
    finally:
        proxy.close()
        # The closed session's expiry event must not reach the next test's app.
        sandbox.control("POST", "/_sandbox/reset")
        clean(app)
