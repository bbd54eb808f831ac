"""Any input to any route gives a 2xx, 3xx or 4xx, never a 5xx; and a 4xx changes nothing.

The routes come from ``app.url_map`` (every rule but ``static``, every method it
takes), so a new route is covered the day it is added; a route whose URL converter
the test does not know fails until a strategy for it is written here. Each example
starts from a fresh world (an event with two ticket types, and a cart holding two
tickets that this browser owns, or no cart), sends one request with generated path
values, form fields, query parameters and htmx headers, and compares a snapshot of
every table before and after a 4xx. The webhook gets bodies of its own: bytes,
signed JSON of any shape, and signed events of every type with objects of any shape.

Inputs mix valid values (real ids, the event's slug, good emails and names), so that
deep paths are reached, with what broke the shop before: Unicode digits, huge
numbers, control characters, very long strings, lists of addresses.

SQLite, a bounded number of examples, derandomized (the same examples every run) so
that CI stays fast and stable; ``STOREFRONT_HYPOTHESIS=deep`` explores 20 times more
with fresh randomness. The fixed cases in ``test_bad_input.py`` run on PostgreSQL too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.routing.converters import NumberConverter, PathConverter, UnicodeConverter, UUIDConverter

from storefront import create_app
from storefront.extensions import db
from storefront.parsing import IdConverter, SlugConverter, TokenConverter
from storefront.stripe_events import HANDLED_EVENTS

from .conftest import TEST_PAYMENTS, buyer_client, clean, make_app
from .factories import cart_by_token, make_event

SECRET = "whsec_property_tests"
settings.register_profile(
    "storefront-ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "storefront-deep",
    max_examples=800,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = "storefront-deep" if os.environ.get("STOREFRONT_HYPOTHESIS") == "deep" else "storefront-ci"


def _routes() -> list[tuple[str, str]]:
    """(endpoint, method) of every rule of the app, read from a throwaway app's url_map."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x", **TEST_PAYMENTS})
    return sorted(
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


ROUTES = _routes()


# --- the world each example starts from --------------------------------------------------------


@dataclass
class World:
    stage: str
    slug: str
    ticket_type_ids: list[int]
    client: object
    line_id: int | None = None
    session_id: str | None = None
    order_token: str | None = None

    @property
    def real_ids(self) -> list[int]:
        return [i for i in [*self.ticket_type_ids, self.line_id] if i]


STAGES = ["empty", "cart", "cart", "cart", "checking_out", "ordered"]
CHECKOUT = {"email": "ada@example.com", "first-1": "Ada", "last-1": "Lovelace"} | {"first-2": "Ch", "last-2": "B"}


@pytest.fixture(scope="module")
def property_app(database_urls, tmp_path_factory):
    app = make_app(
        database_urls["sqlite"],
        STRIPE_SECRET_KEY=None,
        STRIPE_API_BASE=None,
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_SANDBOX_KEY="sk_test_property",
        STRIPE_SANDBOX_DB=str(tmp_path_factory.mktemp("sandbox") / "sandbox.db"),
    )
    with app.app_context():
        yield app
        db.session.remove()
    clean(app)
    app.extensions["stripe_sandbox"].stop()


def new_world(app, stage: str) -> World:
    """Empty tables, an event, and this browser at ``stage``: no cart; two tickets held;
    those two being paid for (a Checkout Session at the in-process sandbox); or a free
    order made."""
    clean(app)
    event = make_event(
        ticket_types=[
            {"name": "Standard", "capacity": 50, "max_per_order": 6},
            {"name": "VIP", "capacity": 5, "price_minor": 6000},
            {"name": "Free", "capacity": 20, "price_minor": 0},
        ]
    )
    standard, _, free = ids = [tt.id for tt in event.ticket_types]
    world = World(stage, event.slug, ids, buyer_client(app))  # each example a buyer of its own
    if stage == "empty":
        return world
    quantities = {free: 1} if stage == "ordered" else {standard: 2}
    form = {f"quantity-{i}": str(n) for i, n in quantities.items()}
    added = world.client.post(f"/events/{event.slug}/cart", data=form)
    assert added.status_code == 303
    with world.client.session_transaction() as sess:
        world.line_id = cart_by_token(sess["cart"]).items[0].id
    if stage in ("checking_out", "ordered"):
        response = world.client.post("/checkout", data=CHECKOUT)
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        location = response.headers["Location"]
        if stage == "ordered":
            world.order_token = location.rsplit("/", 1)[1]
        else:
            world.session_id = location.rsplit("/", 1)[1]
    return world


def valid_form(endpoint: str, world: World) -> dict[str, str]:
    """What the page's own form would send (mutated by the test), so deep paths are reached."""
    return {
        "shop.add_to_cart": {f"quantity-{world.ticket_type_ids[0]}": "1", f"quantity-{world.ticket_type_ids[1]}": "0"},
        "shop.update_line": {"quantity": "3", "next": f"/events/{world.slug}"},
        "shop.remove_line": {"next": "/cart"},
        "shop.empty_cart": {"next": "/cart"},
        "shop.lapse": {"next": "/cart"},
        "shop.start_checkout": dict(CHECKOUT),
    }.get(endpoint, {})


def valid_query(endpoint: str, world: World) -> dict[str, str]:
    if endpoint in ("shop.checkout_success", "shop.checkout_status"):
        return {"session_id": world.session_id or "cs_test_none", "started": str(int(time.time()) - 12)}
    return {}


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, as committed now."""
    db.session.rollback()
    return {
        table.name: [tuple(row) for row in db.session.execute(select(table).order_by(*table.primary_key.columns))]
        for table in db.metadata.sorted_tables
    }


# --- inputs --------------------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "0",
    "-1",
    "²",
    "١",
    "٣",
    "１",
    "𝟑",
    "3²",
    "1e3",
    "0x10",
    "1.5",
    str(2**31),
    str(2**63),
    str(2**63 + 5),
    "9" * 40,
    "\x00",
    "\r\n",
    "a\x00b",
    "/\t/evil.example",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "/cart\r\nSet-Cookie: x=1",
    "a@example.com,root",
    "x <evil@attacker.example>",
    "evil@attacker.example\r\nBcc: root@example.com",
    "\u202e",
    "\ufeff",
    "x" * 300,
    "é" * 5000,
    "%00",
    "%2F%2Fevil.example",
    "'; DROP TABLE carts; --",
    "{{ 7*7 }}",
    "<script>alert(1)</script>",
]
VALID = ["1", "2", "3", "/cart", "/", "ada@example.com", "Ada", "Lovelace", "cs_test_abc", str(int(time.time()))]
# Text the test client can send: any character but lone surrogates (not encodable).
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


# Kinds of input that broke the shop before, each a branch of its own so every kind is
# drawn often: digits that are not ASCII, numbers beyond any column, control characters
# around ordinary text, very long text.
NOT_ASCII_DIGITS = st.one_of(
    st.sampled_from(["²", "³", "¹", "½", "⑶", "١", "٣", "١٢", "１", "３", "𝟑", "3²", "٣3"]),
    st.text(st.characters(categories=["Nd", "No"], exclude_characters="0123456789"), min_size=1, max_size=4),
)
HUGE_NUMBERS = st.one_of(
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30]), st.integers(2**31, 2**80)
).map(str)
# Redirect targets that are not a plain path of this site.
ODD_TARGETS = st.sampled_from(
    ["/cart\r\nSet-Cookie: x=1", "/cart\n", "/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil"]
)
WITH_CONTROLS = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "1", "/cart", "/", "ada@example.com", "Ada"]),
    st.sampled_from(["\r\n", "\n", "\r", "\t", "\x00", "\x0b", "\x7f", "\x85"])
    | st.text(st.characters(categories=["Cc"]), min_size=1, max_size=3),
    st.sampled_from(["", "2", "/evil.example", "x", "Set-Cookie: x=1"]),
)
LONG_TEXT = st.sampled_from(["x" * 300, "é" * 5000, "/" + "a" * 3000, "1" * 100])


def values(world: World):
    real = [str(i) for i in world.real_ids] + [v for v in (world.session_id, world.order_token) if v]
    return st.one_of(
        NOT_ASCII_DIGITS,
        HUGE_NUMBERS,
        WITH_CONTROLS,
        ODD_TARGETS,
        LONG_TEXT,
        st.sampled_from(NASTY),
        st.sampled_from(VALID + real),
        TEXT,
        st.integers(-(2**70), 2**70).map(str),
    )


def field_names(world: World):
    known = [f"quantity-{i}" for i in world.ticket_type_ids] + [
        "quantity",
        "next",
        "email",
        "csrf_token",
        "session_id",
        "started",
        *(f"{part}-{n}" for part in ("first", "last") for n in range(1, 4)),
    ]
    odd = ["quantity-", "quantity-²", "quantity-١", f"quantity-{2**63}", "quantity-0", "first-0", "last-999"]
    return st.one_of(st.sampled_from(known + odd), TEXT.map(lambda t: "quantity-" + t), TEXT)


# A rule's variable: ``<name>`` or ``<converter:name>`` (no converter arguments in our rules).
_VARIABLE = re.compile(r"<(?:(\w+):)?(\w+)>")


def path_value(converter: type, world: World):
    """A value for one path segment: real ones the world has, or anything."""
    anything = st.one_of(st.sampled_from(NASTY), TEXT)
    if issubclass(converter, IdConverter):
        # The cart's line most often: the routes with an id are about it.
        line = st.just(str(world.line_id)) if world.line_id else st.nothing()
        real = st.sampled_from([str(i) for i in world.real_ids])
        return st.one_of(line, line, real, st.integers(-5, 2**70).map(str), anything)
    if issubclass(converter, SlugConverter):
        return st.one_of(st.just(world.slug), anything)
    if issubclass(converter, TokenConverter):
        return st.one_of(st.just(world.order_token or "A" * 43), anything)
    if issubclass(converter, NumberConverter):
        real = st.sampled_from([str(i) for i in world.real_ids])
        return st.one_of(real, NOT_ASCII_DIGITS, HUGE_NUMBERS, st.integers(-5, 2**70).map(str), anything)
    if issubclass(converter, UnicodeConverter | PathConverter | UUIDConverter):
        return st.one_of(st.uuids().map(str), anything)
    raise AssertionError(f"no strategy for the URL converter {converter.__name__}: add one to this test")


def signed(body: bytes, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1=" + hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from(NASTY) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
OBJECT_FIELDS = st.sampled_from(
    [
        "id",
        "metadata",
        "payment_status",
        "status",
        "payment_intent",
        "customer_details",
        "customer_email",
        "amount_total",
        "currency",
        "last_payment_error",
        "amount_refunded",
        "refunded",
        "object",
    ]
)
# Values Stripe would send, so that events get past the shape checks into the handlers.
PLAUSIBLE = {
    "id": st.sampled_from(["cs_test_abc", "pi_abc", "ch_abc"]),
    "metadata": st.dictionaries(st.sampled_from(["attempt_key", "cart_id", "attempt_id"]), TEXT, max_size=3),
    "payment_status": st.sampled_from(["paid", "unpaid", "no_payment_required"]),
    "status": st.sampled_from(["complete", "open", "expired"]),
    "payment_intent": st.sampled_from([None, "pi_abc", {"id": "pi_abc"}]),
    "customer_details": st.just({"email": "ada@example.com"}),
    "customer_email": st.sampled_from(["ada@example.com", None]),
    "amount_total": st.integers(0, 10**6),
    "currency": st.sampled_from(["eur", "jpy"]),
    "last_payment_error": st.just({"type": "card_error", "code": "card_declined", "message": "Declined."}),
    "amount_refunded": st.integers(0, 10**6),
    "refunded": st.booleans(),
}
OBJECT_IDS = st.sampled_from(["cs_test_abc", "pi_abc", "ch_abc", "evt_x", "cs_\x00", "", "cs_" + "a" * 300])


@st.composite
def webhook_body(draw) -> tuple[bytes, str | None]:
    kind = draw(st.sampled_from(["bytes", "json", "event", "event", "event"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=200))
        header = draw(st.sampled_from([None, "", "t=1,v1=00", "garbage", signed(body)]))
        return body, header
    if kind == "json":
        body = json.dumps(draw(JSON)).encode()
    else:
        names = draw(st.sets(OBJECT_FIELDS, max_size=6))
        obj = {name: draw(st.one_of(PLAUSIBLE.get(name, JSON), JSON)) for name in names}
        obj.setdefault("id", draw(OBJECT_IDS))
        event = {
            "id": draw(st.sampled_from(["evt_property_1", "evt_property_2", "evt_\x00", 7, None])),
            "object": "event",
            "type": draw(st.sampled_from([*HANDLED_EVENTS, "customer.created", "", "x" * 200, 3])),
            "data": {"object": obj},
        }
        body = json.dumps(event).encode()
    ahead = draw(st.sampled_from([0, 0, 0, 3600, -3600]))
    return body, signed(body, timestamp=int(time.time()) + ahead)


def mutated(data, valid: dict[str, str], world: World, label: str) -> dict[str, str]:
    """Mostly ``valid`` with one field given another value (so each bad value meets the
    code that reads it); else ``valid`` as it is, or each field kept, dropped or changed,
    or fields made up from scratch; sometimes with fields added."""
    how = data.draw(st.sampled_from(["one", "one", "one", "as is", "each", "scratch"]), label=f"{label} how")
    if how == "scratch" or not valid:
        return data.draw(st.dictionaries(field_names(world), values(world), max_size=8), label=label)
    fields = dict(valid)
    if how == "one":
        name = data.draw(st.sampled_from(sorted(fields)), label=f"{label} field")
        fields[name] = data.draw(values(world), label=f"{label} {name}")
    elif how == "each":
        for name in sorted(valid):
            fate = data.draw(st.sampled_from(["keep", "drop", "change"]), label=f"{label} {name}")
            if fate == "drop":
                del fields[name]
            elif fate == "change":
                fields[name] = data.draw(values(world), label=f"{label} {name}")
    if data.draw(st.integers(0, 2), label=f"{label} more") == 0:
        fields.update(data.draw(st.dictionaries(field_names(world), values(world), max_size=3), label=f"{label} added"))
    return fields


# --- the property --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint,method", ROUTES, ids=[f"{e}-{m}" for e, m in ROUTES])
@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_any_input_is_answered_below_500_and_a_refusal_changes_nothing(property_app, endpoint, method, data):
    app = property_app
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint and method in r.methods]
    world = new_world(app, data.draw(st.sampled_from(STAGES), label="stage"))

    def segment(match: re.Match) -> str:
        converter = app.url_map.converters[match.group(1) or "default"]
        return quote(data.draw(path_value(converter, world), label=match.group(2)), safe="")

    path = _VARIABLE.sub(segment, rule.rule)
    query = mutated(data, valid_query(endpoint, world), world, "query")
    headers = {}
    if data.draw(st.booleans(), label="htmx"):
        headers["HX-Request"] = "true"
        if data.draw(st.integers(0, 9), label="history") == 0:
            headers["HX-History-Restore-Request"] = "true"
    kwargs: dict = {"method": method, "query_string": query, "headers": headers}
    if endpoint == "webhooks.stripe_webhook" and method == "POST":
        body, signature = data.draw(webhook_body(), label="webhook")
        kwargs["data"] = body
        kwargs["content_type"] = "application/json"
        if signature is not None:
            headers["Stripe-Signature"] = signature
    elif method == "POST":
        kwargs["data"] = mutated(data, valid_form(endpoint, world), world, "form")

    before = snapshot()
    response = world.client.open(path, **kwargs)
    status = response.status_code
    assert status < 500, f"{method} {path} answered {status}: {response.get_data(as_text=True)[:500]}"
    if 400 <= status < 500:
        assert snapshot() == before, f"{method} {path} answered {status} but changed the database"


def test_a_refused_change_of_a_cart_being_paid_for_leaves_the_payment_open(property_app):
    world = new_world(property_app, "checking_out")
    before = snapshot()
    response = world.client.post(f"/cart/lines/{world.line_id + 1000}/remove")  # no line of this cart
    assert response.status_code == 404
    assert snapshot() == before
