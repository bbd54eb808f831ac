"""Per-event CSV exports over HTTP: streamed, audited, parsed back, safe in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import insert, update

from storefront import exports
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Cart, Order, Organiser, PaymentAttempt, Refund, Ticket
from storefront.staff_models import Role
from storefront.tickets import format_ticket_code

from .admin_support import add_member, audit_entries, make_event_of, make_organiser, quick_users, sign_in_as
from .factories import make_order
from .test_queries import counting_queries

# 19:30 UTC on 1 June is 21:30 in Paris (summer time) and 04:30 the next day in Tokyo.
AT = datetime(2026, 6, 1, 19, 30, 5, tzinfo=UTC)
PARIS = "2026-06-01 21:30:05"


@pytest.fixture
def shop(app):
    organiser = make_organiser("hall", "Concert Hall")
    event = make_event_of(organiser, "Tonight", slug="tonight", timezone="Europe/Paris")
    owner, door = quick_users("owner@hall.example", "door@hall.example")
    add_member(owner, organiser, Role.OWNER)
    add_member(door, organiser, Role.DOOR)
    return event, owner, door


def client_as(app, user):
    client = app.test_client()
    sign_in_as(client, user)
    return client


BASE = "/admin/o/hall/events/tonight/exports"


def table_of(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.status_code
    assert answer.is_streamed and answer.mimetype == "text/csv"
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def set_rows(model, row_id: int, **values) -> None:
    with write_transaction():
        db.session.execute(update(model).where(model.id == row_id).values(**values))


def attempt_of(event, cart_id: int, **fields) -> int:
    values = {
        "cart_id": cart_id,
        "event_id": event.id,
        "idempotency_key": f"export-test-{cart_id}-{fields.get('status')}-{fields.get('created_at')}",
        "lines": "[]",
        "buyer_email": "buyer@example.com",
        "amount_minor": 2500,
        "currency": event.currency,
        "session_expires_at": AT,
        "created_at": AT,
        "updated_at": AT,
    }
    values.update(fields)
    with write_transaction():
        return db.session.execute(insert(PaymentAttempt).values(**values).returning(PaymentAttempt.id)).scalar_one()


def refund_of(order, **fields) -> int:
    values = {
        "order_id": order.id,
        "amount_minor": 1000,
        "currency": order.currency,
        "reason": "Requested by the buyer",
        "requested_by": "owner@hall.example",
        "status": "succeeded",
        "idempotency_key": f"export-test-refund-{order.id}-{fields.get('status')}",
        "stripe_refund_id": f"re_export_{order.id}_{fields.get('status', 'succeeded')}",
        "created_at": AT,
        "updated_at": AT,
    }
    values.update(fields)
    with write_transaction():
        return db.session.execute(insert(Refund).values(**values).returning(Refund.id)).scalar_one()


def test_orders_export_streams_parses_back_and_is_audited(app, shop):
    event, owner, _door = shop
    order = make_order(event, [("Ada", "Lovelace"), ("Alan", "Turing")], email="=cmd@example.com")
    set_rows(Order, order.id, created_at=AT, refunded_minor=1000, status="partially_refunded")
    table = table_of(client_as(app, owner).get(f"{BASE}/orders.csv"))
    assert table == [
        ["Order", "Created (Europe/Paris)", "Buyer email", "Status", "Total", "Refunded", "Currency"],
        [order.code, PARIS, "'=cmd@example.com", "partially_refunded", "50.00", "10.00", "EUR"],
    ]
    (entry,) = audit_entries(action="event_exported")
    assert entry.event_id == event.id and '"kind": "orders"' in entry.after


DANGEROUS_NAMES = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTabbed", "\rReturned"]


def test_attendees_export_is_the_door_list_with_buyers_and_formulas_arrive_as_text(app, shop):
    event, owner, _door = shop
    named = make_order(event, [(name, "Evil") for name in DANGEROUS_NAMES], email="attacker@example.com")
    plain = make_order(event, [("Zoë", "Dupont, Jean")])
    refunded = make_order(event, [("Grace", "Hopper")], status="refunded")
    used = plain.tickets[0]
    set_rows(Ticket, used.id, status="used", checked_in_at=AT)
    set_rows(Ticket, named.tickets[1].id, status="void")
    table = table_of(client_as(app, owner).get(f"{BASE}/attendees.csv"))
    assert table[0] == [
        "Ticket code",
        "First name",
        "Last name",
        "Ticket type",
        "Status",
        "Checked in (Europe/Paris)",
        "Order",
        "Buyer email",
    ]
    expected = [
        [format_ticket_code(t.code), "'" + name, "Evil", "Standard", "void" if i == 1 else "not yet", "", named.code]
        + ["attacker@example.com"]
        for i, (t, name) in enumerate(zip(named.tickets, DANGEROUS_NAMES, strict=True))
    ]
    expected.append(
        [format_ticket_code(used.code), "Zoë", "Dupont, Jean", "Standard", "checked in", PARIS, plain.code]
        + ["buyer@example.com"]
    )
    expected.append(
        [format_ticket_code(refunded.tickets[0].code), "Grace", "Hopper", "Standard", "refunded", "", refunded.code]
        + ["buyer@example.com"]
    )
    assert table[1:] == expected
    # Every one of them is a cell a spreadsheet shows as text: it starts with the apostrophe.
    assert all(row[1].startswith("'") for row in table[1:7])


def test_attempts_export_lists_every_attempt_with_the_failure_in_words(app, shop):
    event, owner, _door = shop
    order = make_order(event, [("Ada", "Lovelace")])
    declined = attempt_of(
        event,
        order.cart_id,
        status="failed",
        error_type="card_error",
        error_code="card_declined",
        decline_code="insufficient_funds",
        error_message="Your card has insufficient funds.",
        stripe_checkout_session_id="cs_test_declined",
        stripe_payment_intent_id="pi_declined",
    )
    paid = attempt_of(
        event,
        order.cart_id,
        status="paid",
        stripe_checkout_session_id="cs_test_paid",
        stripe_payment_intent_id="pi_paid",
        stripe_charge_id="ch_paid",
        created_at=datetime(2026, 6, 1, 19, 40, tzinfo=UTC),
    )
    with write_transaction():
        cart_id = db.session.execute(
            insert(Cart).values(token="abandoned-cart", status="expired", expires_at=AT).returning(Cart.id)
        ).scalar_one()
    abandoned = attempt_of(
        event,
        cart_id,
        status="expired",
        error_code="payment_intent_authentication_failure",
        buyer_email="@walker@example.com",
        created_at=datetime(2026, 6, 1, 20, 0, tzinfo=UTC),
    )
    other_event = make_event_of(make_organiser("elsewhere"), "Elsewhere")
    attempt_of(other_event, cart_id, status="paid", idempotency_key="not-this-event")
    assert declined < paid < abandoned
    table = table_of(client_as(app, owner).get(f"{BASE}/attempts.csv"))
    assert table[0] == [
        "Created (Europe/Paris)",
        "Status",
        "Failure",
        "Stripe error code",
        "Stripe decline code",
        "Stripe Checkout Session",
        "Stripe PaymentIntent",
        "Stripe charge",
        "Amount",
        "Currency",
        "Buyer email",
        "Order",
    ]
    assert table[1:] == [
        [PARIS, "Failed", "Card declined: insufficient funds", "card_declined", "insufficient_funds"]
        + ["cs_test_declined", "pi_declined", "", "25.00", "EUR", "buyer@example.com", order.code],
        ["2026-06-01 21:40:00", "Paid", "", "", "", "cs_test_paid", "pi_paid", "ch_paid", "25.00", "EUR"]
        + ["buyer@example.com", order.code],
        [
            "2026-06-01 22:00:00",
            "Expired",
            "3-D Secure failed: the buyer did not confirm",
            "payment_intent_authentication_failure",
            "",
        ]
        + ["", "", "", "25.00", "EUR", "'@walker@example.com", ""],
    ]


def test_refunds_export_lists_each_refund_with_who_asked(app, shop):
    event, owner, _door = shop
    order = make_order(event, [("Ada", "Lovelace"), ("Alan", "Turing")])
    refund_of(order, reason="-Double booking", requested_by="owner@hall.example")
    refund_of(order, status="failed", failure_reason="charge_for_pending_refund_disputed", stripe_refund_id=None)
    make_order(event)  # no refund: no row
    table = table_of(client_as(app, owner).get(f"{BASE}/refunds.csv"))
    assert table == [
        ["Created (Europe/Paris)", "Order", "Amount", "Currency", "Status", "Reason", "Asked by", "Stripe refund"],
        [PARIS, order.code, "10.00", "EUR", "succeeded", "'-Double booking", "owner@hall.example"]
        + [f"re_export_{order.id}_succeeded"],
        [PARIS, order.code, "10.00", "EUR", "failed (charge_for_pending_refund_disputed)", "Requested by the buyer"]
        + ["owner@hall.example", ""],
    ]


def test_zero_decimal_amounts_and_the_events_own_timezone(app, shop):
    _event, owner, _door = shop
    hall = db.session.get(Organiser, _event.organiser_id)
    tokyo = make_event_of(hall, "Tokyo", slug="tokyo", timezone="Asia/Tokyo", currency="JPY")
    order = make_order(tokyo, [("Ada", "Lovelace"), ("Alan", "Turing")])  # 2 × ¥2,500
    set_rows(Order, order.id, created_at=AT)
    refund_of(order, amount_minor=2500)
    attempt_of(tokyo, order.cart_id, status="paid", amount_minor=5000)
    client = client_as(app, owner)
    base = "/admin/o/hall/events/tokyo/exports"
    orders = table_of(client.get(f"{base}/orders.csv"))
    assert orders[0][1] == "Created (Asia/Tokyo)"
    assert orders[1][1:] == ["2026-06-02 04:30:05", "buyer@example.com", "paid", "5000", "0", "JPY"]
    refunds = table_of(client.get(f"{base}/refunds.csv"))
    assert refunds[1][:4] == ["2026-06-02 04:30:05", order.code, "2500", "JPY"]
    attempts = table_of(client.get(f"{base}/attempts.csv"))
    assert attempts[1][0] == "2026-06-02 04:30:05" and attempts[1][8:10] == ["5000", "JPY"]


def test_each_export_is_audited_with_its_kind(app, shop):
    event, owner, _door = shop
    client = client_as(app, owner)
    for kind in exports.KINDS:
        table_of(client.get(f"{BASE}/{kind}.csv"))
    entries = audit_entries(action="event_exported")
    assert [e.after for e in entries] == [f'{{"kind": "{kind}"}}' for kind in exports.KINDS]
    assert {(e.event_id, e.organiser_id) for e in entries} == {(event.id, event.organiser_id)}
    assert list(exports.KINDS) == ["orders", "attendees", "attempts", "refunds"]


def test_unknown_kind_foreign_event_and_door_role_are_refused_and_not_audited(app, shop):
    _event, owner, door = shop
    other = make_organiser("other", "Other Hall")
    make_event_of(other, "Theirs", slug="theirs")
    owner_client, door_client = client_as(app, owner), client_as(app, door)
    assert owner_client.get(f"{BASE}/secrets.csv").status_code == 404
    for kind in exports.KINDS:
        assert owner_client.get(f"/admin/o/hall/events/theirs/exports/{kind}.csv").status_code == 404
        assert owner_client.get(f"/admin/o/other/events/theirs/exports/{kind}.csv").status_code == 404
        assert door_client.get(f"{BASE}/{kind}.csv").status_code == 404  # the door's role: "not found"
    assert audit_entries(action="event_exported") == []


def test_exports_are_throttled_per_member_with_retry_after_and_nothing_written(app, shop):
    event, owner, _door = shop
    (manager,) = quick_users("manager@hall.example")
    add_member(manager, db.session.get(Organiser, event.organiser_id), Role.MANAGER)
    client = client_as(app, owner)
    answers = [client.get(f"{BASE}/{kind}.csv") for _ in range(3) for kind in exports.KINDS]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
    limited = answers[-1]
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.mimetype == "text/html" and "Too many attempts" in limited.get_data(as_text=True)
    assert len(audit_entries(action="event_exported")) == 10  # the refused ones wrote nothing
    # Counted per member: another member of the organiser still exports.
    assert client_as(app, manager).get(f"{BASE}/orders.csv").status_code == 200


def test_export_runs_the_same_statements_for_1_or_40_rows_of_each_kind(app, shop):
    event, owner, _door = shop
    client = client_as(app, owner)

    def statements() -> dict[str, list[str]]:
        ran = {}
        for kind in exports.KINDS:
            with counting_queries() as seen:
                table_of(client.get(f"{BASE}/{kind}.csv"))
            # Transaction control aside (the test's own session may open one on SQLite).
            ran[kind] = [" ".join(s.split())[:90] for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")]
        return ran

    order = make_order(event)
    attempt_of(event, order.cart_id, status="paid")
    refund_of(order)
    client.get(f"{BASE}/orders.csv")  # warm up
    small = statements()
    for i in range(39):
        more = make_order(event, [("Ada", f"Lovelace {i}")])
        attempt_of(event, more.cart_id, status="paid")
        refund_of(more)
    big = statements()
    assert big == small, (big, small)
    assert max(len(ran) for ran in small.values()) <= 12, small


def _many_orders(event, count: int) -> None:
    with write_transaction():
        cart_ids = db.session.execute(
            insert(Cart).returning(Cart.id),
            [{"token": f"many-{i}", "status": "converted", "expires_at": AT} for i in range(count)],
        ).scalars()
        db.session.execute(
            insert(Order),
            [
                {
                    "code": f"M{i:07d}",
                    "access_token": f"many-access-{i}",
                    "cart_id": cart_id,
                    "event_id": event.id,
                    "buyer_email": f"buyer{i}@example.com",
                    "total_minor": 2500,
                    "currency": "EUR",
                    "created_at": AT,
                }
                for i, cart_id in enumerate(cart_ids)
            ],
        )


@contextmanager
def orders_export_cursors():
    """The (connection, DBAPI cursor) of each orders-export query run meanwhile."""
    cursors = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM orders" in statement and "ORDER BY orders.id" in statement:
            cursors.append((conn, cursor))

    sa_event.listen(db.engine, "after_cursor_execute", seen)
    try:
        yield cursors
    finally:
        sa_event.remove(db.engine, "after_cursor_execute", seen)


def test_the_first_lines_arrive_while_the_query_is_still_open(app, shop):
    """The response is produced as the rows come: after its first lines the export's own
    connection is still in its transaction, and (PostgreSQL) the server-side cursor has
    handed over one chunk of rows, not the event's 1,500."""
    event, owner, _door = shop
    total = 3 * exports.CHUNK
    _many_orders(event, total)
    client = client_as(app, owner)
    with orders_export_cursors() as cursors:
        answer = client.get(f"{BASE}/orders.csv", buffered=False)
        lines = iter(answer.response)
        first = [next(lines) for _ in range(11)]  # the header and 10 orders
        assert b"M0000009" in first[-1]
        ((conn, cursor),) = cursors
        assert not conn.closed and conn.in_transaction()
        if db.engine.dialect.name == "postgresql":
            assert cursor.name  # a named cursor: the rows stay on the server until fetched
            # One chunk fetched (and the one row SQLAlchemy reads ahead when the result opens).
            assert cursor.rownumber == exports.CHUNK + 1 < total
        rest = list(lines)
        assert len(first) + len(rest) == total + 1
        answer.close()
        assert conn.closed


def test_an_abandoned_download_closes_its_cursor_and_connection(app, shop):
    event, owner, _door = shop
    _many_orders(event, 2 * exports.CHUNK)
    client = client_as(app, owner)
    with orders_export_cursors() as cursors:
        answer = client.get(f"{BASE}/orders.csv", buffered=False)
        lines = iter(answer.response)
        next(lines), next(lines)
        answer.close()  # the client went away after the first order
    ((conn, cursor),) = cursors
    assert conn.closed
    if db.engine.dialect.name == "postgresql":
        assert cursor.closed


def test_the_event_page_links_every_export_for_members_who_read_orders(app, shop):
    _event, _owner, door = shop
    (viewer,) = quick_users("viewer@hall.example")
    add_member(viewer, db.session.get(Organiser, _event.organiser_id), Role.VIEWER)
    client = client_as(app, viewer)
    page = client.get("/admin/o/hall/events/tonight")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    section = html[html.index('<section class="admin-exports"') :]
    section = section[: section.index("</section>")]
    links = re.findall(r'href="([^"]+)">([^<]+)</a>', section)
    assert links == [
        (f"{BASE}/orders.csv", "Orders (CSV)"),
        (f"{BASE}/attendees.csv", "Attendees, the door list (CSV)"),
        (f"{BASE}/attempts.csv", "Payment attempts (CSV)"),
        (f"{BASE}/refunds.csv", "Refunds (CSV)"),
    ]
    assert "Europe/Paris" in section
    for href, _label in links:
        table_of(client.get(href))
    # The door's role has no VIEW_ORDERS: no event page, no exports (its own door list only).
    assert client_as(app, door).get("/admin/o/hall/events/tonight").status_code == 404
