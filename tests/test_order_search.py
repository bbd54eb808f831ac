"""The back office's order list, order page and attempts without an order: search by code,
e-mail and attendee name (case and accents folded), filters, keyset pages that stay put
while orders arrive, a limited member's cross-event list, bad parameters ignored with a
message (never a 500), and the reason filter agreeing with ``failure_reasons.explain``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from storefront import order_search
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.failure_reasons import Reason, explain
from storefront.models import (
    AttemptStatus,
    Cart,
    CartItem,
    CartStatus,
    Order,
    OrderStatus,
    PaymentAttempt,
    TicketType,
    utcnow,
)
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user, sign_in_as
from .factories import make_order
from .sandbox_support import FAKE_LIVE_KEY


def _at(order: Order, when) -> None:
    with write_transaction():
        db.session.execute(update(Order).where(Order.id == order.id).values(created_at=when))


@pytest.fixture
def shop_world(app):
    organiser = make_organiser("acme")
    event = make_event_of(organiser, "Gala", slug="gala", timezone="Europe/Paris")
    other = make_event_of(organiser, "Matinee", slug="matinee")
    with write_transaction():
        db.session.add(TicketType(event_id=event.id, name="VIP", price_minor=9000, capacity=10, position=1))
    db.session.rollback()
    return organiser, db.session.get(type(event), event.id), other


def _owner(organiser):
    user = make_user()
    return add_member(user, organiser, Role.OWNER), user


def _codes(page) -> list[str]:
    return [o.code for o in page.rows]


def _find(membership, event=None, **args):
    ticket_types = event.ticket_types if event is not None else None
    filters = order_search.filters_from(MultiDict(args), ticket_types)
    paging, _ = order_search.paging_from(MultiDict(args))
    return order_search.orders(membership, filters, paging, event=event)


def test_search_by_code_email_and_name_with_case_and_accents(shop_world):
    organiser, event, other = shop_world
    membership, _ = _owner(organiser)
    zoe = make_order(event, [("Zoé", "Lefèvre")], email="Zoe.Buyer@Example.com")
    ada = make_order(event, [("Ada", "Lovelace"), ("Émile", "Zola")], email="ada@example.com")
    elsewhere = make_order(other, [("Zoe", "Other")], email="zoe@other.example")
    assert _codes(_find(membership, event, q=zoe.code.lower())) == [zoe.code]
    assert _codes(_find(membership, event, q=zoe.tickets[0].code)) == [zoe.code]  # a ticket's code
    assert _codes(_find(membership, event, q="ZOE.BUYER@")) == [zoe.code]
    for q in ("zoe", "ZOÉ", "lefevre", "LEFÈVRE", "zoe lef", "lefevre z"):
        assert _codes(_find(membership, event, q=q)) == [zoe.code], q
    assert _codes(_find(membership, event, q="emile")) == [ada.code]
    assert _codes(_find(membership, event, q="zola")) == [ada.code]
    assert _codes(_find(membership, event, q="%")) == []  # LIKE's wildcards are text
    assert _codes(_find(membership, event, q="nobody")) == []
    # Across events: both Zoes, newest first.
    assert set(_codes(_find(membership, q="zoe"))) == {zoe.code, elsewhere.code}


def test_filters_by_status_ticket_type_and_dates_in_the_events_zone(shop_world):
    organiser, event, _other = shop_world
    membership, _ = _owner(organiser)
    vip = event.ticket_types[1]
    plain = make_order(event)
    refunded = make_order(event, status=OrderStatus.REFUNDED.value, ticket_type_id=vip.id)
    # 23:30 in Paris on 1 March is 22:30 UTC: the 1st there, whatever UTC says.
    from datetime import UTC, datetime

    _at(plain, datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    _at(refunded, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    assert _codes(_find(membership, event, status="refunded")) == [refunded.code]
    assert _codes(_find(membership, event, ticket_type=str(vip.id))) == [refunded.code]
    assert _codes(_find(membership, event, **{"from": "2026-03-02"})) == [refunded.code]
    assert _codes(_find(membership, event, to="2026-03-01")) == [plain.code]
    assert _codes(_find(membership, event, **{"from": "2026-03-01", "to": "2026-03-02"})) == [
        refunded.code,
        plain.code,
    ]


def test_keyset_pages_stay_put_when_new_orders_arrive(shop_world):
    organiser, event, _other = shop_world
    membership, _ = _owner(organiser)
    base = utcnow() - timedelta(days=1)
    made = []
    for n in range(7):
        order = make_order(event)
        _at(order, base + timedelta(minutes=n // 2))  # pairs share a created_at: the id breaks ties
        made.append(order.code)
    newest_first = list(reversed(made))
    filters, paging = order_search.OrderFilters(), order_search.Paging()
    first = order_search.orders(membership, filters, paging, event=event, limit=3)
    assert _codes(first) == newest_first[:3] and first.newer is None
    second = order_search.orders(membership, filters, order_search.Paging(before=first.older), event=event, limit=3)
    assert _codes(second) == newest_first[3:6]
    make_order(event)  # a new order arrives
    again = order_search.orders(membership, filters, order_search.Paging(before=first.older), event=event, limit=3)
    assert _codes(again) == _codes(second)
    last = order_search.orders(membership, filters, order_search.Paging(before=second.older), event=event, limit=3)
    assert _codes(last) == newest_first[6:] and last.older is None
    back = order_search.orders(membership, filters, order_search.Paging(after=second.newer), event=event, limit=3)
    assert _codes(back) == newest_first[:3]


def test_a_limited_member_sees_only_their_events_orders(shop_world):
    organiser, event, other = shop_world
    mine, theirs = make_order(other), make_order(event)
    limited = add_member(make_user(), organiser, Role.VIEWER, events=[other])
    assert _codes(_find(limited)) == [mine.code]
    owner, _ = _owner(organiser)
    assert set(_codes(_find(owner))) == {mine.code, theirs.code}
    away = make_organiser("away")
    away_event = make_event_of(away)
    make_order(away_event)
    assert set(_codes(_find(owner))) == {mine.code, theirs.code}


@pytest.mark.parametrize(
    "args, words",
    [
        ({"status": "lost"}, "status is not one we know"),
        ({"ticket_type": "999999"}, "not one of this event"),
        ({"ticket_type": "abc"}, "not one of this event"),
        ({"from": "2026-13-45"}, "start date is not a date"),
        ({"to": "yesterday"}, "end date is not a date"),
        ({"before": "1-2-3"}, "page link is not valid"),
        ({"after": "999999999999999999-1"}, "page link is not valid"),
        ({"before": "１２-3"}, "page link is not valid"),
        ({"q": "x" * 500}, "cut to 100"),
    ],
)
def test_bad_parameters_are_ignored_with_a_message(shop_world, client, args, words):
    organiser, event, _other = shop_world
    _, user = _owner(organiser)
    order = make_order(event)
    sign_in_as(client, user)
    for url in ("/admin/o/acme/events/gala/orders", "/admin/o/acme/orders"):
        answer = client.get(url, query_string=args)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200, page[:500]
        if "ticket_type" not in args or url.endswith("gala/orders"):
            assert words in page
        if "q" not in args:
            assert order.code in page


def test_live_search_answers_the_results_fragment(shop_world, client):
    organiser, event, _other = shop_world
    _, user = _owner(organiser)
    ada = make_order(event, [("Ada", "Lovelace")])
    bob = make_order(event, [("Bob", "Babbage")])
    sign_in_as(client, user)
    answer = client.get("/admin/o/acme/events/gala/orders?q=love", headers={"HX-Request": "true"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and page.lstrip().startswith('<div id="order-results"')
    assert ada.code in page and bob.code not in page
    assert "HX-Request" in answer.headers.get("Vary", "")


def _attempt_of_event(event, status: AttemptStatus, *, code=None, decline=None, email="who@example.com") -> int:
    now = utcnow()
    with write_transaction():
        cart = Cart(token=f"c-{now.timestamp()}-{status}-{code}", status=CartStatus.EXPIRED.value, expires_at=now)
        db.session.add(cart)
        db.session.flush()
        db.session.add(CartItem(cart_id=cart.id, ticket_type_id=event.ticket_types[0].id, quantity=1))
        attempt = PaymentAttempt(
            cart_id=cart.id,
            event_id=event.id,
            idempotency_key=f"k-{cart.id}",
            lines=json.dumps([]),
            buyer_email=email,
            amount_minor=2500,
            currency="EUR",
            status=status.value,
            session_expires_at=now,
            error_code=code,
            decline_code=decline,
            stripe_payment_intent_id="pi_test_123",
        )
        db.session.add(attempt)
        db.session.flush()
        return attempt.id


def test_attempts_without_an_order(shop_world, client):
    organiser, event, other = shop_world
    declined = _attempt_of_event(event, AttemptStatus.OPEN, code="card_declined", decline="insufficient_funds")
    expired = _attempt_of_event(event, AttemptStatus.EXPIRED)
    _attempt_of_event(other, AttemptStatus.FAILED, email="elsewhere@example.com")
    ordered = make_order(event)
    with write_transaction():  # an attempt whose cart became an order is on the order's page instead
        db.session.add(
            PaymentAttempt(
                cart_id=ordered.cart_id,
                event_id=event.id,
                idempotency_key="k-ordered",
                lines="[]",
                buyer_email="paid@example.com",
                amount_minor=2500,
                currency="EUR",
                status=AttemptStatus.FAILED.value,  # declined before the payment that made the order
                session_expires_at=utcnow(),
            )
        )
    page = order_search.attempts_without_order(event.id, order_search.AttemptFilters(), order_search.Paging())
    assert [a.id for a in page.rows] == [expired, declined]
    by_reason = order_search.attempts_without_order(
        event.id, order_search.AttemptFilters(reason=Reason.INSUFFICIENT_FUNDS), order_search.Paging()
    )
    assert [a.id for a in by_reason.rows] == [declined]
    _, user = _owner(organiser)
    sign_in_as(client, user)
    answer = client.get("/admin/o/acme/events/gala/attempts")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Card declined: insufficient funds" in html and "insufficient_funds" in html
    assert "elsewhere@example.com" not in html and "paid@example.com" not in html
    bad = client.get("/admin/o/acme/events/gala/attempts?status=nope&reason=nope&before=zz")
    assert bad.status_code == 200 and "failure reason is not one we know" in bad.get_data(as_text=True)


CODE_PAIRS = [
    (None, None),
    ("card_declined", "insufficient_funds"),
    ("card_declined", "generic_decline"),
    ("card_declined", "some_new_decline"),
    ("card_declined", None),
    ("payment_intent_authentication_failure", None),
    ("payment_method_provider_decline", None),
    ("expired_card", None),
    ("expired_card", "expired_card"),
    ("processing_error", "lost_card"),
    ("something_new", None),
    (None, "stolen_card"),
    ("rate_limit", None),
]


def test_the_reason_filter_agrees_with_explain(app):
    organiser = make_organiser("reasons")
    event = make_event_of(organiser)
    ids = {_attempt_of_event(event, AttemptStatus.FAILED, code=c, decline=d): (c, d) for c, d in CODE_PAIRS}
    for reason in Reason:
        found = set(
            db.session.execute(
                select(PaymentAttempt.id).where(PaymentAttempt.id.in_(ids), order_search.reason_condition(reason))
            ).scalars()
        )
        expected = {i for i, (c, d) in ids.items() if (f := explain(c, d, "msg")) is not None and f.reason == reason}
        assert found == expected, reason


@pytest.mark.parametrize(
    "payments, link",
    [
        ({"STRIPE_SECRET_KEY": FAKE_LIVE_KEY, "STRIPE_API_BASE": None}, "https://dashboard.stripe.com/payments/pi_1"),
        (
            {"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_API_BASE": None},
            "https://dashboard.stripe.com/test/payments/pi_1",
        ),
        ({"STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_API_BASE": "http://127.0.0.1:9"}, None),  # a sandbox
    ],
    ids=["live", "test-key-real-stripe", "sandbox"],
)
def test_the_stripe_dashboard_link_follows_the_mode(database_urls, payments, link):
    from storefront.admin.order_views import stripe_dashboard_url

    from .conftest import backend_url, make_app

    app = make_app(backend_url(database_urls, "sqlite"), DEMO_MODE=False, STRIPE_WEBHOOK_SECRET="whsec_x", **payments)
    with app.app_context():
        assert stripe_dashboard_url("pi_1") == link
        assert stripe_dashboard_url(None) is None
