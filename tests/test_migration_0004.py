"""Migration 0004 (money in minor units) on data written at 0003, SQLite and PostgreSQL:
ticket type prices of zero- and three-decimal currencies are converted to Stripe's
minor units; what Stripe was asked for and charged (attempts, their lines, orders,
tickets) is kept, only renamed; the wrongly charged payments are logged and listed by
``flask payment-review``; the CHECK constraints still hold; the downgrade restores 0003."""

from __future__ import annotations

import json

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from storefront.extensions import db
from storefront.models import Order, PaymentAttempt, TicketType

from .migration_support import app_at_revision, schema_diff

BEFORE = "0003_mail_sent_markers"


@pytest.fixture
def app_at_0003(database_urls, backend, tmp_path):
    """An app on a database of its own, migrated to 0003 only."""
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0004") as app:
        yield app


def _lines(tt_id: int, name: str, quantity: int, unit: int) -> str:
    attendees = [[f"Ada{n}", "Lovelace"] for n in range(quantity)]
    return json.dumps(
        [
            {
                "ticket_type_id": tt_id,
                "name": name,
                "quantity": quantity,
                "unit_price_cents": unit,
                "attendees": attendees,
            }
        ]
    )


def _write_0003_rows() -> None:
    """What a shop had written at 0003: the old convention (stored / 100 shown) everywhere."""
    when = "2026-12-01 10:00:00"
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
        for event_id, slug, currency in [(1, "tokyo", "JPY"), (2, "paris", "EUR"), (3, "kuwait", "KWD")]:
            conn.execute(
                text(
                    "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, "
                    "currency, status, held, sold) VALUES (:id, 1, :slug, :slug, '', '', '2027-03-01 10:00:00', "
                    "'UTC', :currency, 'published', 0, 0)"
                ),
                {"id": event_id, "slug": slug, "currency": currency},
            )
        for tt_id, event_id, name, price in [
            (1, 1, "Early bird", 1200000),  # shown ¥12,000, charged ¥1,200,000
            (2, 1, "Odd", 1250),  # shown ¥12 (12.5 rounded half to even)
            (3, 2, "Standard", 2500),  # €25.00 shown and charged: nothing to convert
            (4, 3, "Gallery", 2500),  # shown KWD 25.000, charged KWD 2.500
        ]:
            conn.execute(
                text(
                    "INSERT INTO ticket_types (id, event_id, name, description, price_cents, capacity, held, sold, "
                    "max_per_order, position) VALUES (:id, :event, :name, '', :price, 100, 0, 0, 10, 0)"
                ),
                {"id": tt_id, "event": event_id, "name": name, "price": price},
            )
        for cart_id in (1, 2, 3, 4):
            conn.execute(
                text(
                    "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                    "VALUES (:id, :token, 'converted', :when, :when, :when)"
                ),
                {"id": cart_id, "token": f"token-{cart_id}", "when": when},
            )
        for attempt_id, cart_id, status, amount, currency, session, lines in [
            (1, 1, "paid", 2400000, "JPY", "cs_jpy_paid", _lines(1, "Early bird", 2, 1200000)),
            (2, 2, "open", 1200000, "JPY", "cs_jpy_open", _lines(1, "Early bird", 1, 1200000)),
            (3, 3, "expired", 1200000, "JPY", "cs_jpy_expired", _lines(1, "Early bird", 1, 1200000)),
            (4, 4, "paid", 5000, "EUR", "cs_eur_paid", _lines(3, "Standard", 2, 2500)),
        ]:
            conn.execute(
                text(
                    "INSERT INTO payment_attempts (id, cart_id, idempotency_key, lines, buyer_email, amount_cents, "
                    "currency, status, session_expires_at, stripe_checkout_session_id, created_at, updated_at) "
                    "VALUES (:id, :cart, :key, :lines, :email, :amount, :currency, :status, :when, :session, "
                    ":when, :when)"
                ),
                {
                    "id": attempt_id,
                    "cart": cart_id,
                    "key": f"key-{attempt_id}",
                    "lines": lines,
                    "email": f"buyer{attempt_id}@example.com",
                    "amount": amount,
                    "currency": currency,
                    "status": status,
                    "when": when,
                    "session": session,
                },
            )
        for order_id, code, cart_id, event_id, session, total, currency, tt_id, price in [
            (1, "JPYORDER", 1, 1, "cs_jpy_paid", 2400000, "JPY", 1, 1200000),
            (2, "EURORDER", 4, 2, "cs_eur_paid", 5000, "EUR", 3, 2500),
        ]:
            conn.execute(
                text(
                    "INSERT INTO orders (id, code, access_token, stripe_checkout_session_id, cart_id, event_id, "
                    "buyer_email, status, total_cents, refunded_cents, currency, created_at) VALUES (:id, :code, "
                    ":code, :session, :cart, :event, 'buyer@example.com', 'paid', :total, 0, :currency, :when)"
                ),
                {
                    "id": order_id,
                    "code": code,
                    "session": session,
                    "cart": cart_id,
                    "event": event_id,
                    "total": total,
                    "currency": currency,
                    "when": when,
                },
            )
            for n in range(2):
                conn.execute(
                    text(
                        "INSERT INTO tickets (order_id, ticket_type_id, attendee_first_name, attendee_last_name, "
                        "price_cents, secret, status) VALUES (:order, :tt, 'Ada', 'Lovelace', :price, :secret, 'valid')"
                    ),
                    {"order": order_id, "tt": tt_id, "price": price, "secret": f"secret-{order_id}-{n}"},
                )


def _column_names(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def _all(sql: str) -> list[tuple]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_upgrade_converts_prices_keeps_charges_and_lists_the_wrong_ones(app_at_0003, capfd):
    _write_0003_rows()
    capfd.readouterr()
    upgrade()
    log = capfd.readouterr().err

    # Prices: the organiser's price in Stripe's minor units now.
    assert _all("SELECT id, price_minor FROM ticket_types ORDER BY id") == [(1, 12000), (2, 12), (3, 2500), (4, 25000)]
    # What Stripe was asked for and charged: the same numbers, under the new names.
    assert _all("SELECT id, amount_minor, displayed_amount_minor FROM payment_attempts ORDER BY id") == [
        (1, 2400000, 24000),
        (2, 1200000, 12000),
        (3, 1200000, 12000),
        (4, 5000, None),
    ]
    assert _all("SELECT code, total_minor, refunded_minor FROM orders ORDER BY id") == [
        ("JPYORDER", 2400000, 0),
        ("EURORDER", 5000, 0),
    ]
    assert _all("SELECT DISTINCT price_minor FROM tickets ORDER BY price_minor") == [(2500,), (1200000,)]
    lines = json.loads(_all("SELECT lines FROM payment_attempts WHERE id = 1")[0][0])
    assert lines[0]["unit_price_minor"] == 1200000 and "unit_price_cents" not in lines[0]
    assert lines[0]["attendees"] == [["Ada0", "Lovelace"], ["Ada1", "Lovelace"]]
    for table in ("ticket_types", "payment_attempts", "orders", "tickets"):
        assert not any(name.endswith("_cents") for name in _column_names(table)), table

    # Read back through the models.
    db.session.rollback()
    assert db.session.get(TicketType, 1).price_minor == 12000
    assert db.session.get(Order, 1).total_minor == 2400000
    assert db.session.get(PaymentAttempt, 2).displayed_amount_minor == 12000

    # The payments charged otherwise than shown are logged, and listed for a person.
    assert "attempt 1 (paid, order JPYORDER, session cs_jpy_paid" in log and "attempt 2 (open" in log
    assert "attempt 3 (" not in log and "attempt 4 (" not in log
    assert "ticket type 2 (Odd, tokyo): 1250 JPY was shown rounded, now 12" in log
    review = app_at_0003.test_cli_runner().invoke(args=["payment-review"])
    assert review.exit_code == 1
    assert (
        "charged_other_than_shown: attempt 1 (paid), order JPYORDER, session cs_jpy_paid, buyer1@example.com: "
        "charged ¥2,400,000, shown ¥24,000"
    ) in review.output
    assert "attempt 2 (open), order -, session cs_jpy_open" in review.output
    assert "attempt 3" not in review.output and "attempt 4" not in review.output
    assert "2 payment(s) to review." in review.output

    # The schema is the models' and its CHECK constraints name the new columns.
    with db.engine.connect() as conn:
        assert schema_diff(conn) == []
    for statement in (
        "UPDATE ticket_types SET price_minor = -1 WHERE id = 1",
        "UPDATE payment_attempts SET amount_minor = -1 WHERE id = 1",
        "UPDATE orders SET refunded_minor = -1 WHERE id = 1",
        "UPDATE tickets SET price_minor = -1",
    ):
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(statement))


def test_downgrade_restores_0003(app_at_0003):
    _write_0003_rows()
    upgrade()
    downgrade(revision=BEFORE)
    assert _all("SELECT id, price_cents FROM ticket_types ORDER BY id") == [
        (1, 1200000),
        (2, 1200),  # the rounding of 1250 to ¥12 is not undone
        (3, 2500),
        (4, 2500),
    ]
    assert _all("SELECT id, amount_cents FROM payment_attempts ORDER BY id")[0] == (1, 2400000)
    assert "displayed_amount_minor" not in _column_names("payment_attempts")
    assert json.loads(_all("SELECT lines FROM payment_attempts WHERE id = 1")[0][0])[0]["unit_price_cents"] == 1200000
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("UPDATE orders SET total_cents = -1 WHERE id = 1"))
    upgrade()  # and up again
    assert _all("SELECT price_minor FROM ticket_types WHERE id = 1") == [(12000,)]
