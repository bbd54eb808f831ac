"""Migration 0012: on a database written at 0011 (SQLite and PostgreSQL), the upgrade gives
each payment attempt the event of its cart's tickets (NULL for a cart left empty), adds the
empty, append-only attempt timeline; the downgrade restores 0011 and the upgrade runs again."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from storefront.extensions import db

from .migration_support import app_at_revision

BEFORE, REVISION = "0011_refunds", "0012_orders_view"
WHEN = "2026-12-01 10:00:00"


@pytest.fixture
def app_at_0011(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0012") as app:
        yield app


def _write_0011_data() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
        for event_id in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, "
                    "currency, status, held, sold) VALUES (:id, 1, :slug, 'Gig', '', '', :when, 'UTC', 'EUR', "
                    "'published', 0, 0)"
                ),
                {"id": event_id, "slug": f"gig-{event_id}", "when": WHEN},
            )
            conn.execute(
                text(
                    "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold, "
                    "max_per_order, position) VALUES (:id, :id, 'Standard', '', 2500, 100, 0, 0, 10, 0)"
                ),
                {"id": event_id},
            )
        for cart_id in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                    "VALUES (:id, :token, 'expired', :when, :when, :when)"
                ),
                {"id": cart_id, "token": f"t{cart_id}", "when": WHEN},
            )
        conn.execute(text("INSERT INTO cart_items (cart_id, ticket_type_id, quantity) VALUES (1, 1, 1), (2, 2, 2)"))
        for attempt_id, cart_id in ((1, 1), (2, 1), (3, 2), (4, 3)):
            conn.execute(
                text(
                    "INSERT INTO payment_attempts (id, cart_id, idempotency_key, lines, buyer_email, amount_minor, "
                    "currency, status, session_expires_at, created_at, updated_at) VALUES (:id, :cart, :key, '[]', "
                    "'b@example.com', 2500, 'EUR', 'expired', :when, :when, :when)"
                ),
                {"id": attempt_id, "cart": cart_id, "key": f"k{attempt_id}", "when": WHEN},
            )


def _events_of_attempts() -> dict[int, int | None]:
    with db.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, event_id FROM payment_attempts ORDER BY id")).all())


def test_upgrade_names_each_attempts_event_and_downgrade_restores(app_at_0011):
    _write_0011_data()
    upgrade(revision=REVISION)
    assert _events_of_attempts() == {1: 1, 2: 1, 3: 2, 4: None}
    assert "attempt_events" in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO attempt_events (attempt_id, created_at, kind, to_status) "
                "VALUES (1, :when, 'moved', 'expired')"
            ),
            {"when": WHEN},
        )
    with pytest.raises(DBAPIError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM attempt_events"))
    downgrade(revision=BEFORE)
    assert "attempt_events" not in inspect(db.engine).get_table_names()
    assert "event_id" not in {c["name"] for c in inspect(db.engine).get_columns("payment_attempts")}
    upgrade(revision=REVISION)
    assert _events_of_attempts() == {1: 1, 2: 1, 3: 2, 4: None}
