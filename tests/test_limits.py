"""One client must not take an event's stock: the limits, who the client is, and what a
limited buyer is told. SQLite and PostgreSQL; the limits in memory, as by default
(``test_limits_redis.py`` counts them in Redis, across processes).

Each test's app starts a fresh count. A client is an address: test clients get one
each (``client_at``), as real buyers have theirs.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import func, select

from storefront import create_app
from storefront.errors import TooManyRequests
from storefront.extensions import db
from storefront.limits import client_key, limiter
from storefront.models import Cart

from .checkout_support import sandbox, shop  # noqa: F401 (fixtures)
from .conftest import TEST_PAYMENTS, make_app
from .factories import make_event, ticket_type

ATTACKER = "203.0.113.66"
BUYER = "198.51.100.7"


def client_at(app, address: str, htmx: bool = False):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if htmx:
        client.environ_base["HTTP_HX_REQUEST"] = "true"
    return client


def add(client, event, quantities: dict, **headers):
    data = {f"quantity-{tt_id}": str(n) for tt_id, n in quantities.items()}
    return client.post(f"/events/{event.slug}/cart", data=data, headers=headers)


def carts() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(Cart.id))).scalar_one()


def assert_limited(response, words: str, window_s: int) -> None:
    """429, a Retry-After within the window, and the words in what the buyer reads."""
    assert response.status_code == 429, response.get_data(as_text=True)[:500]
    assert 1 <= int(response.headers["Retry-After"]) <= window_s
    body = response.get_data(as_text=True)
    assert words in body
    assert re.search(r"Please try again in \d+ seconds?\.", body)


# --- the attack from the issue ------------------------------------------------------------


@pytest.mark.parametrize("with_htmx", [True, False])
def test_one_client_making_a_new_cart_per_request_cannot_hold_the_events_stock(app, with_htmx):
    """The issue: 281 tickets left, one client held them all with 30 POSTs in 0.4 s,
    each a new cart (no cookie sent back). With the default limits it holds two carts'
    worth, is told why, and a second buyer still gets tickets."""
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 300, "sold": 19, "max_per_order": 10}])
    tt = event.ticket_types[0]
    allowed = app.config["LIMIT_TICKETS_PER_EVENT"]
    assert allowed == 2 * app.config["MAX_TICKETS_PER_CART"] == 20  # the defaults
    answers = [add(client_at(app, ATTACKER, with_htmx), event, {tt.id: 10}) for _ in range(30)]
    held = [a for a in answers if a.status_code in (200, 303)]
    assert len(held) * 10 == allowed == ticket_type(tt.id).held
    assert carts() == 2
    for refused in answers[len(held) :]:
        assert_limited(refused, "One buyer may reserve at most 20 tickets of this event at a time.", 15 * 60)
        body = refused.get_data(as_text=True)
        # A fragment for htmx (the cart box shows the message), the event page otherwise.
        assert ("<html" not in body) if with_htmx else ("<html" in body and "Standard" in body)
    # Someone else is not affected.
    other = add(client_at(app, BUYER, with_htmx), event, {tt.id: 4})
    assert other.status_code in (200, 303)
    assert ticket_type(tt.id).held == allowed + 4


def test_the_same_attack_all_at_once_holds_no_more(app):
    """30 requests at the same moment: the count is taken atomically, so no more get through."""
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 300, "max_per_order": 10}])
    tt = event.ticket_types[0]
    barrier = threading.Barrier(30)
    statuses: list[int] = []

    def attack():
        with app.app_context():
            barrier.wait(30)
            statuses.append(add(client_at(app, ATTACKER, htmx=True), event, {tt.id: 10}).status_code)
            db.session.remove()

    threads = [threading.Thread(target=attack) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == 2
    assert ticket_type(tt.id).held == 20


# --- each limit ---------------------------------------------------------------------------


@pytest.mark.app_config(LIMIT_TICKETS_PER_EVENT=5)
def test_raising_a_quantity_counts_and_refusals_for_want_of_stock_do_not(app):
    event = make_event(ticket_types=[{"name": "A", "capacity": 100}, {"name": "Gone", "capacity": 1, "sold": 1}])
    a, gone = event.ticket_types
    client = client_at(app, BUYER, htmx=True)
    for _ in range(6):  # sold out: told so, and none of it counts
        response = add(client, event, {gone.id: 2})
        assert response.status_code == 409 and "Gone is sold out." in response.get_data(as_text=True)
    assert add(client, event, {a.id: 3}).status_code == 200
    db.session.rollback()
    line = db.session.execute(select(Cart).where(Cart.status == "active")).scalar_one().items[0]
    assert client.post(f"/cart/lines/{line.id}", data={"quantity": "5"}).status_code == 200  # 2 more
    assert client.post(f"/cart/lines/{line.id}", data={"quantity": "4"}).status_code == 200  # fewer: free
    refused = client.post(f"/cart/lines/{line.id}", data={"quantity": "5"})
    assert_limited(refused, "at most 5 tickets of this event", 15 * 60)
    assert 'id="cart"' in refused.get_data(as_text=True)  # the cart fragment, with the message
    assert ticket_type(a.id).held == 4
    # Another event is counted apart.
    other = make_event(ticket_types=[{"name": "B"}])
    assert add(client_at(app, BUYER, htmx=True), other, {other.ticket_types[0].id: 5}).status_code == 200


@pytest.mark.app_config(LIMIT_NEW_CARTS="3 per hour")
def test_new_carts_are_counted_not_additions_to_a_cart(app):
    event = make_event()
    tt = event.ticket_types[0]
    for _ in range(3):
        assert add(client_at(app, ATTACKER), event, {tt.id: 1}).status_code == 303
    keeper = client_at(app, ATTACKER)
    refused = add(keeper, event, {tt.id: 1})
    assert_limited(refused, "Too many new carts were started from your connection.", 3600)
    assert carts() == 3 and ticket_type(tt.id).held == 3
    # A buyer with a cart goes on adding to it.
    holder = client_at(app, BUYER)
    assert add(holder, event, {tt.id: 1}).status_code == 303
    holder.environ_base["REMOTE_ADDR"] = ATTACKER  # even from the limited address (one office, two people)
    assert add(holder, event, {tt.id: 1}).status_code == 303
    assert carts() == 4 and ticket_type(tt.id).held == 5


@pytest.mark.app_config(LIMIT_ADD_TO_CART="4 per minute")
@pytest.mark.parametrize("with_htmx", [True, False])
def test_add_to_cart_requests_are_limited_whatever_their_outcome(app, with_htmx):
    event = make_event()
    tt = event.ticket_types[0]
    client = client_at(app, ATTACKER, with_htmx)
    assert add(client, event, {tt.id: "x"}).status_code == 400  # bad input counts too
    assert add(client, event, {tt.id: 1}).status_code in (200, 303)
    assert add(client, event, {tt.id: 1}).status_code in (200, 303)
    assert add(client, event, {tt.id: 99}).status_code == 409  # not that many left
    refused = add(client, event, {tt.id: 1})
    assert_limited(refused, "Too many requests came from your connection.", 60)
    assert ticket_type(tt.id).held == 2
    assert add(client_at(app, BUYER, with_htmx), event, {tt.id: 1}).status_code in (200, 303)


@pytest.mark.app_config(LIMIT_CHECKOUT="2 per minute")
@pytest.mark.parametrize("with_htmx", [True, False])
def test_checkout_starts_are_limited(app, with_htmx):
    event = make_event()
    client = client_at(app, ATTACKER, with_htmx)
    assert add(client, event, {event.ticket_types[0].id: 1}).status_code in (200, 303)
    for _ in range(2):  # refused for a bad email: nothing reaches Stripe
        assert client.post("/checkout", data={"email": "nope"}).status_code == 400
    refused = client.post("/checkout", data={"email": "nope"})
    assert_limited(refused, "Too many requests came from your connection.", 60)
    assert ("<html" in refused.get_data(as_text=True)) is not with_htmx
    assert 'name="email"' in refused.get_data(as_text=True)  # the form is still there


@pytest.mark.app_config(LIMIT_ADD_TO_CART="1 per 2 seconds")
def test_a_refused_request_does_not_count(app):
    """Moving windows: a client over its limit does not push its own wait further. Its
    refusals come within the second after the one request let through; two seconds
    after that one the window holds only refusals, and lets the client in."""
    event = make_event()
    client = client_at(app, ATTACKER)

    def add_one():
        return add(client, event, {event.ticket_types[0].id: 1}).status_code

    assert add_one() == 303
    let_through = time.monotonic()  # its count was taken before this
    refused = 0
    while time.monotonic() < let_through + 1.0:
        status = add_one()
        if time.monotonic() < let_through + 1.9:  # a slow machine must not make this flaky
            assert status == 429
        refused += 1
        time.sleep(0.1)
    assert refused >= 1
    time.sleep(max(0.0, let_through + 2.2 - time.monotonic()))
    assert add_one() == 303


@pytest.mark.app_config(RATELIMIT_ENABLED=False, LIMIT_ADD_TO_CART="1 per minute")
def test_limits_can_be_turned_off(app):
    event = make_event()
    client = client_at(app, ATTACKER)
    assert all(add(client, event, {event.ticket_types[0].id: 1}).status_code == 303 for _ in range(3))


def test_the_limits_are_on_by_default(database_urls):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_urls["sqlite"], "SECRET_KEY": "x", **TEST_PAYMENTS})
    assert app.config["RATELIMIT_ENABLED"] is True
    assert app.config["RATELIMIT_STORAGE_URI"] == "storefront-memory://"
    assert app.config["TRUSTED_PROXIES"] == 0


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("LIMIT_ADD_TO_CART", "thirty a minute", "LIMIT_ADD_TO_CART must be a limit such as"),
        ("LIMIT_TICKETS_PER_EVENT", 0, "LIMIT_TICKETS_PER_EVENT must be a whole number"),
        ("TRUSTED_PROXIES", -1, "TRUSTED_PROXIES must be the number of proxies"),
    ],
)
def test_a_bad_setting_stops_the_app_saying_which(database_urls, setting, value, words):
    with pytest.raises(RuntimeError, match=words):
        make_app(database_urls["sqlite"], **{setting: value})


# --- who the client is --------------------------------------------------------------------


def _forwarded(client, event, forwarded_for: str):
    return add(client, event, {event.ticket_types[0].id: 1}, **{"X-Forwarded-For": forwarded_for})


@pytest.mark.app_config(LIMIT_ADD_TO_CART="2 per minute")
def test_without_trusted_proxies_a_forged_forwarded_for_changes_nothing(app):
    event = make_event()
    client = client_at(app, ATTACKER)
    assert _forwarded(client, event, "192.0.2.1").status_code == 303
    assert _forwarded(client, event, "192.0.2.2").status_code == 303
    assert _forwarded(client, event, "192.0.2.3").status_code == 429


@pytest.mark.app_config(LIMIT_ADD_TO_CART="2 per minute", TRUSTED_PROXIES=1)
def test_behind_one_proxy_the_client_is_the_address_it_saw(app):
    event = make_event()
    proxy = client_at(app, "10.0.0.2")  # the load balancer's own address: never the client
    # What the client put before the proxy's entry is the client's to choose: ignored.
    assert _forwarded(proxy, event, "192.0.2.1, 203.0.113.9").status_code == 303
    assert _forwarded(proxy, event, "192.0.2.2, 203.0.113.9").status_code == 303
    assert _forwarded(proxy, event, "203.0.113.9").status_code == 429
    # Other clients behind the same proxy are other clients.
    assert _forwarded(proxy, event, "203.0.113.10").status_code == 303


@pytest.mark.parametrize(
    "address, client",
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # the same /64: one household
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4 seen through an IPv6 socket
    ],
)
def test_client_key(app, address, client):
    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        assert client_key() == client


# --- what a limited buyer reads, and the storage failing ----------------------------------------


def test_the_message_names_the_wait(app):
    assert TooManyRequests(TooManyRequests.REQUESTS, 1).message().endswith("Please try again in 1 second.")
    assert TooManyRequests(TooManyRequests.NEW_CARTS, 30).message().endswith("Please try again in 30 seconds.")


@pytest.mark.app_config(LIMIT_ADD_TO_CART="1 per minute", REDIS_URL="redis://127.0.0.1:9/0")
def test_when_the_storage_is_unreachable_buyers_still_buy(app, caplog):
    """Redis down: the requests go through (selling beats counting), and it is logged."""
    event = make_event()
    client = client_at(app, ATTACKER)
    with caplog.at_level("WARNING", logger="storefront.limits"):
        assert all(add(client, event, {event.ticket_types[0].id: 1}).status_code == 303 for _ in range(3))
    assert ticket_type(event.ticket_types[0].id).held == 3
    assert any("rate limit storage unreachable" in m for m in caplog.messages)


def test_flask_limiters_own_decorators_answer_429_with_a_page(database_urls):
    """For routes limited with ``@limiter.limit`` (staff sign-in, later)."""
    app = make_app(database_urls["sqlite"])

    @app.get("/limited-for-test")
    @limiter.limit("1 per minute")
    def limited():
        return "ok"

    client = client_at(app, ATTACKER)
    assert client.get("/limited-for-test").status_code == 200
    refused = client.get("/limited-for-test")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "<html" in refused.get_data(as_text=True) and "Too many requests" in refused.get_data(as_text=True)


def test_flask_limiters_request_hooks_stay_off_the_hot_path(app):
    """They would run on every request, the event page's too, for limits the shop does not declare."""
    hooks = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, [])]
    hooks += app.teardown_request_funcs.get(None, [])
    assert not [hook for hook in hooks if "flask_limiter" in getattr(hook, "__module__", "") or "Limiter" in repr(hook)]


# --- the success page's questions to Stripe ---------------------------------------------------


@pytest.mark.app_config(LIMIT_PAYMENT_CHECKS="2 per minute")
def test_success_page_polls_that_ask_stripe_are_limited(shop, sandbox):
    from .checkout_support import CARD_OK, buy_until_stripe, wait_for_order

    event = make_event()
    client = client_at(shop, BUYER)
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})

    def poll(waited: int):
        started = int(time.time()) - waited
        return client.get(f"/checkout/status?session_id={session_id}&started={started}", headers={"HX-Request": "true"})

    assert all(poll(0).status_code == 200 for _ in range(5))  # before ASK_STRIPE_AFTER: Stripe is not asked
    assert [poll(15).status_code for _ in range(2)] == [200, 200]  # asked, not paid yet
    limited = poll(15)
    assert_limited(limited, "Your payment was checked too often from your connection", 60)
    assert 'hx-trigger="every 2s"' in limited.get_data(as_text=True)  # it goes on polling
    # The webhook makes the order: the next poll shows it, without asking Stripe.
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    shown = poll(15)
    assert shown.status_code == 286 and order.code in shown.get_data(as_text=True)


def test_the_memory_storage_sweeps_every_few_seconds_not_every_10_ms(app):
    """Its sweep walks every client's keys; every 10 ms (limits' own pace) it cost more
    CPU than the requests with thousands of clients. If limits renames what is
    overridden, this fails instead of the sweep silently going back to 10 ms."""
    event = make_event()
    assert add(client_at(app, BUYER), event, {event.ticket_types[0].id: 1}).status_code == 303
    timer = limiter.storage.timer
    assert timer.interval == 5.0 and timer.daemon
