"""Migration 0008 (the mail outbox) on a database written at 0006, SQLite and PostgreSQL:
a confirmation or refund notice already sent becomes a ``sent`` row and is never sent
again; one never sent becomes a ``pending`` row, which the mail job then sends once; the
downgrade puts the sent times back on the old markers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text

from storefront import outbox
from storefront.extensions import db
from storefront.models import MailOutbox

from .migration_support import app_at_revision

BEFORE = "0006_ticket_codes"
SENT = "2026-11-30 09:15:00"
WHEN = "2026-11-30 09:00:00"


@pytest.fixture
def app_at_0006(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0008") as app:
        app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
        yield app


def _write_0006_data() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
        conn.execute(
            text(
                "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, "
                "currency, status, held, sold) VALUES (1, 1, 'gig', 'Gig', '', 'Hall', :when, 'UTC', 'EUR', "
                "'published', 0, 0)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold, "
                "max_per_order, position) VALUES (1, 1, 'Standard', '', 2500, 100, 0, 0, 10, 0)"
            )
        )
        for cart_id in (1, 2, 3, 4):
            conn.execute(
                text(
                    "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                    "VALUES (:id, :token, 'converted', :when, :when, :when)"
                ),
                {"id": cart_id, "token": f"token-{cart_id}", "when": WHEN},
            )
        # Order 1 was confirmed; order 2's confirmation never went out; order 3 was refunded.
        for order_id, status, sent in ((1, "paid", SENT), (2, "paid", None), (3, "refunded", None)):
            conn.execute(
                text(
                    "INSERT INTO orders (id, code, access_token, cart_id, event_id, buyer_email, status, "
                    "total_minor, refunded_minor, currency, created_at, confirmation_sent_at) VALUES (:id, :code, "
                    ":token, :id, 1, 'b@example.com', :status, 2500, 0, 'EUR', :when, :sent)"
                ),
                {
                    "id": order_id,
                    "code": f"ORDER{order_id}",
                    "token": f"access-{order_id}",
                    "status": status,
                    "when": WHEN,
                    "sent": sent,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO tickets (order_id, ticket_type_id, attendee_first_name, attendee_last_name, "
                    "price_minor, secret, code, status) VALUES (:id, 1, 'Ada', 'Lovelace', 2500, :secret, :code, "
                    "'valid')"
                ),
                {"id": order_id, "secret": f"secret-{order_id}", "code": f"CODE{order_id}"},
            )
        # A late payment refunded for want of stock, its notice sent.
        lines = json.dumps(
            [
                {
                    "ticket_type_id": 1,
                    "name": "Standard",
                    "quantity": 1,
                    "unit_price_minor": 2500,
                    "attendees": [["A", "L"]],
                }
            ]
        )
        conn.execute(
            text(
                "INSERT INTO payment_attempts (id, cart_id, idempotency_key, lines, buyer_email, amount_minor, "
                "currency, status, session_expires_at, refund_reason, refund_notice_sent_at, created_at, updated_at) "
                "VALUES (1, 4, 'key-1', :lines, 'late@example.com', 2500, 'EUR', 'refunded', :when, "
                "'stock_gone_after_hold_lapsed', :sent, :when, :when)"
            ),
            {"lines": lines, "when": WHEN, "sent": SENT},
        )


def _rows() -> dict:
    db.session.rollback()
    return {(row.kind, row.order_id or row.attempt_id): row for row in db.session.execute(select(MailOutbox)).scalars()}


def test_upgrade_keeps_what_was_sent_sent_and_sends_the_rest_once(app_at_0006, tmp_path):
    _write_0006_data()
    upgrade()
    rows = _rows()
    assert set(rows) == {("order_confirmation", 1), ("order_confirmation", 2), ("refund_notice", 1)}
    sent_at = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    assert rows["order_confirmation", 1].status == "sent" and rows["order_confirmation", 1].sent_at == sent_at
    assert rows["refund_notice", 1].status == "sent" and rows["refund_notice", 1].sent_at == sent_at
    assert rows["order_confirmation", 2].status == "pending"
    order_columns = {c["name"] for c in inspect(db.engine).get_columns("orders")}
    assert "confirmation_sent_at" not in order_columns

    # The mail job: only order 2's confirmation goes out, and only once.
    assert outbox.send_due() == outbox.Sent(confirmations=1, notices=0, failures=0)
    assert outbox.send_due() == outbox.Sent(confirmations=0, notices=0, failures=0)
    [mail] = (tmp_path / "outbox").glob("*.eml")
    assert mail.name.endswith("-ORDER2.eml")

    downgrade(revision=BEFORE)
    assert not {"mail_outbox", "job_leases"} & set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        markers = dict(conn.execute(text("SELECT id, confirmation_sent_at FROM orders ORDER BY id")).all())
        notice = conn.execute(text("SELECT refund_notice_sent_at FROM payment_attempts")).scalar_one()
    assert str(markers[1]).startswith("2026-11-30 09:15:00") and markers[2] is not None and markers[3] is None
    assert str(notice).startswith("2026-11-30 09:15:00")

    upgrade()
    assert {key: row.status for key, row in _rows().items()} == {
        ("order_confirmation", 1): "sent",
        ("order_confirmation", 2): "sent",
        ("refund_notice", 1): "sent",
    }
