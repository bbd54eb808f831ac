"""Shared by the checkout tests: the storefront wired to the sandbox process, served
over real HTTP so the sandbox's signed webhooks reach ``/webhooks/stripe``; a buyer
going through the shop with the test client; and the promise checks.

The storefront runs on SQLite and on PostgreSQL (the ``backend`` fixture); Stripe is
the sandbox process (``sandbox``, this module's own), reached through the real ``stripe``
library. The sandbox's webhook endpoint is configuration, given when it starts, so the
storefront's port is chosen first: one ``ShopServer`` for the whole session, serving
the app of the test that runs now.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from contextlib import contextmanager

import pytest
import stripe
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from storefront.extensions import db
from storefront.models import (
    AttemptStatus,
    Cart,
    CartItem,
    CartStatus,
    Event,
    Order,
    PaymentAttempt,
    Ticket,
    TicketType,
    WebhookEvent,
)
from storefront.payments import gateway as gw

from .conftest import backend_url, clean, make_app
from .sandbox_support import TEST_KEY, WEBHOOK_SECRET, SandboxProcess, Shared, wait_until

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_3DS = "4000002500003155"
IBAN_OK = "DE89370400440532013000"
IBAN_FAILS = "DE62370400440532013001"


class ShopServer:
    """The storefront on a loopback port of its own (werkzeug, threaded), so the sandbox
    process can deliver webhooks to it over HTTP. One port for the whole session, known
    before the sandbox starts; it serves the app of the test running now (``serving``),
    and answers 503 between tests, which the sandbox retries like any failed delivery.
    A test ends only once the requests its app was answering are done, so none of them
    writes to the database while the next test cleans it."""

    IDLE_TIMEOUT_SECONDS = 30

    def __init__(self) -> None:
        self.app = None
        self._active = 0
        self._idle = threading.Condition()
        self._counted = threading.local()
        shop_server = self

        class Handler(WSGIRequestHandler):
            # A request is done when its handler returns, however it ended. Werkzeug calls
            # the answer's close() only on some paths: when the browser resets a connection
            # (a cancelled navigation), the read that drains the socket raises first.
            def handle(self) -> None:
                try:
                    super().handle()
                finally:
                    shop_server._finished()

        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True, request_handler=Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.webhook_url = self.base + "/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, name="storefront-live", daemon=True)
        self.thread.start()

    def _dispatch(self, environ, start_response):
        with self._idle:
            app = self.app
            if app is not None:
                self._active += 1
                self._counted.value = True
        if app is None:
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        return app(environ, start_response)

    def _finished(self) -> None:
        """Called by the handler thread once its connection is done."""
        if not getattr(self._counted, "value", False):
            return
        self._counted.value = False
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    @contextmanager
    def serving(self, app):
        self.app = app
        try:
            yield self.base
        finally:
            with self._idle:
                self.app = None
                idle = self._idle.wait_for(lambda: self._active == 0, timeout=self.IDLE_TIMEOUT_SECONDS)
            assert idle, f"the test's app was still answering {self._active} request(s)"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def _start_shop_sandbox(path) -> SandboxProcess:
    server = ShopServer()
    # Refunds that settle later do so only when a test says (the control API).
    process = SandboxProcess(path, "--webhook-url", server.webhook_url, "--refund-settle-seconds", "-1")
    process.shop_server = server
    try:
        return process.start()
    except BaseException:
        server.close()
        raise


def _stop_shop_sandbox(process: SandboxProcess) -> None:
    try:
        process.stop()
    finally:
        process.shop_server.close()


_shared: dict[str, Shared] = {}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The sandbox process of the checkout tests, delivering its webhooks to the
    storefront's ``/webhooks/stripe`` on ``sandbox.shop_server``."""
    if "sandbox" not in _shared:
        _shared["sandbox"] = Shared(
            lambda: _start_shop_sandbox(tmp_path_factory.mktemp("shop-stripe-sandbox") / "sandbox.db"),
            _stop_shop_sandbox,
        )
    with _shared["sandbox"] as process:
        yield process


@contextmanager
def serving_shop(app, sandbox):
    """``app`` answers on the sandbox's webhook endpoint; afterwards the sandbox forgets
    this test's objects, events, pending deliveries and faults, so none of them reaches
    the next test's app."""
    try:
        with sandbox.shop_server.serving(app) as base:
            yield base
    finally:
        sandbox.control("POST", "/_sandbox/reset")


def shop_app_for(database_urls, backend, sandbox, **overrides):
    return make_app(
        backend_url(database_urls, backend),
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_API_BASE=sandbox.base,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        **overrides,
    )


@pytest.fixture
def shop(database_urls, backend, sandbox, request):
    """The storefront app against the sandbox process, served where the sandbox delivers
    its webhooks for this test only; faults armed by the test are cleared after."""
    marker = request.node.get_closest_marker("app_config")
    app = shop_app_for(database_urls, backend, sandbox, **(marker.kwargs if marker else {}))
    clean(app)
    # Stripe's return URLs and the order links lead to the server the sandbox delivers to.
    app.config["PUBLIC_BASE_URL"] = sandbox.shop_server.base
    try:
        with serving_shop(app, sandbox) as base, app.app_context():
            app.live_url = base
            yield app
            db.session.remove()
    finally:
        clean(app)


def add(client, event, quantities: dict):
    data = {f"quantity-{tt_id}": str(n) for tt_id, n in quantities.items()}
    response = client.post(f"/events/{event.slug}/cart", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


def cart_token(client) -> str:
    """The cart token in a test client's session cookie."""
    with client.session_transaction() as sess:
        return sess["cart"]


def checkout_form(quantity: int, email: str = "ada@example.com") -> dict:
    form = {"email": email}
    for n in range(1, quantity + 1):
        form[f"first-{n}"] = f"Ada{n}"
        form[f"last-{n}"] = f"Lovelace{n}"
    return form


def start_checkout(client, quantity: int, **headers):
    """POST /checkout; returns the response (303 to Stripe's page when it worked)."""
    return client.post("/checkout", data=checkout_form(quantity), headers=headers)


def session_id_of(response) -> str:
    location = response.headers.get("HX-Redirect") or response.headers["Location"]
    assert "/pay/cs_" in location, location
    return location.rsplit("/", 1)[1]


def buy_until_stripe(client, event, quantities: dict) -> str:
    """Add to the cart, give names, press Pay: the Checkout Session's id."""
    add(client, event, quantities)
    response = start_checkout(client, sum(quantities.values()))
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    return session_id_of(response)


def fresh(model, **where):
    db.session.rollback()
    return db.session.execute(select(model).filter_by(**where)).scalars().all()


def order_of(session_id: str) -> Order | None:
    db.session.rollback()
    return db.session.execute(select(Order).where(Order.stripe_checkout_session_id == session_id)).scalar_one_or_none()


def attempt_of(session_id: str) -> PaymentAttempt | None:
    db.session.rollback()
    return db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.stripe_checkout_session_id == session_id)
    ).scalar_one_or_none()


def wait_for_order(session_id: str, timeout: float = 15) -> Order:
    return wait_until(lambda: order_of(session_id), timeout=timeout, what=f"the order of {session_id}")


def webhook_outcomes(session_or_pi_ids: set[str]) -> list[tuple[str, str | None]]:
    from storefront.models import WebhookEvent

    db.session.rollback()
    out = []
    for event in db.session.execute(select(WebhookEvent).order_by(WebhookEvent.id)).scalars():
        obj = json.loads(event.payload)["data"]["object"]
        if obj.get("id") in session_or_pi_ids or obj.get("payment_intent") in session_or_pi_ids:
            out.append((event.type, event.outcome))
    return out


def assert_promises() -> None:
    """The promises, checked on the database and at Stripe (the sandbox):

    1. never oversell: per ticket type and event, sold + held <= capacity; sold equals
       the valid tickets; held equals what holding carts hold;
    2. every paid session of ours has exactly one order or exactly one refund, but for
       one paid otherwise than asked (``amount_mismatch``): neither, it waits for a person;
    3. no order without a paid session.
    """
    db.session.rollback()
    gateway = gw.get_gateway()
    for tt in db.session.execute(select(TicketType)).scalars():
        assert tt.sold + tt.held <= tt.capacity, (tt.name, tt.sold, tt.held, tt.capacity)
        tickets = db.session.execute(
            select(func.count(Ticket.id)).where(Ticket.ticket_type_id == tt.id, Ticket.status == "valid")
        ).scalar_one()
        assert tt.sold == tickets, (tt.name, tt.sold, tickets)
        holding = db.session.execute(
            select(func.coalesce(func.sum(CartItem.quantity), 0))
            .join(Cart, Cart.id == CartItem.cart_id)
            .where(
                CartItem.ticket_type_id == tt.id,
                Cart.status.in_([CartStatus.ACTIVE.value, CartStatus.CHECKING_OUT.value]),
            )
        ).scalar_one()
        assert tt.held == holding, (tt.name, tt.held, holding)
    for ev in db.session.execute(select(Event)).scalars():
        assert ev.capacity is None or ev.sold + ev.held <= ev.capacity
        assert ev.sold == sum(tt.sold for tt in ev.ticket_types)
    attempts = (
        db.session.execute(select(PaymentAttempt).where(PaymentAttempt.stripe_checkout_session_id.is_not(None)))
        .scalars()
        .all()
    )
    orders = Counter(
        db.session.execute(
            select(Order.stripe_checkout_session_id).where(Order.stripe_checkout_session_id.is_not(None))
        ).scalars()
    )
    assert all(n == 1 for n in orders.values()), orders
    for attempt in attempts:
        session = gateway.retrieve_checkout_session(attempt.stripe_checkout_session_id)
        paid = session.payment_status == "paid"
        refunds = []
        if session.payment_intent:
            refunds = list(gateway.list_refunds(payment_intent=session.payment_intent).auto_paging_iter())
        has_order = orders.get(session.id, 0) == 1
        if attempt.status == AttemptStatus.AMOUNT_MISMATCH.value:
            assert not has_order and not refunds, (session.id, has_order, len(refunds))
        elif paid:
            assert has_order != bool(refunds), (session.id, has_order, len(refunds))
            assert len(refunds) <= 1
            if refunds:
                assert attempt.status == AttemptStatus.REFUNDED.value and attempt.stripe_refund_id == refunds[0].id
        else:
            assert not has_order, f"order without a paid session: {session.id}"


def stripe_event(type_: str, object_id: str):
    """The event Stripe made about ``object_id`` (listed through the API, as reconciliation would)."""

    def find():
        for event in gw.get_gateway().list_events(type=type_, limit=100).auto_paging_iter():
            if event.data.object.id == object_id:
                return event
        return None

    return wait_until(find, what=f"{type_} for {object_id}")


def signed(event, *, secret=WEBHOOK_SECRET, timestamp=None) -> tuple[bytes, dict]:
    payload = json.dumps(event.to_dict() if hasattr(event, "to_dict") else event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def deliver(client, event, **kwargs):
    payload, headers = signed(event, **kwargs)
    return client.post("/webhooks/stripe", data=payload, headers=headers)


def stored_events(event_id: str | None = None) -> int:
    """How many webhook events are stored (of this id, if given)."""
    db.session.rollback()
    query = select(func.count(WebhookEvent.id))
    if event_id is not None:
        query = query.where(WebhookEvent.stripe_event_id == event_id)
    return db.session.execute(query).scalar_one()


def drop_completed(sandbox, count: int = 1):
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "drop", "count": count, "event_type": "checkout.session.completed"}
    )


def pay_but_drop_the_completion(sandbox, session_id: str) -> None:
    """The buyer pays with 4242; Stripe's checkout.session.completed never reaches us."""
    drop_completed(sandbox)
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
