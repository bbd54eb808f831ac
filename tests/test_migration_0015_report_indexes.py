"""Migration 0015: on a database written at 0014 (SQLite and PostgreSQL), a cart gets the
event of the tickets it holds, an empty one none; the dashboard's two indexes exist; the
downgrade restores 0014 and the upgrade runs again."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from storefront.extensions import db

from .migration_support import app_at_revision

BEFORE, REVISION = "0014_reconciliation", "0015_report_indexes"
WHEN = "2026-12-01 10:00:00"


def _write_0014_data() -> None:
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
                {"id": cart_id, "token": f"token-{cart_id}", "when": WHEN},
            )
        # Cart 1 holds event 1's tickets, cart 2 event 2's; cart 3 was emptied.
        conn.execute(text("INSERT INTO cart_items (cart_id, ticket_type_id, quantity) VALUES (1, 1, 2), (2, 2, 1)"))


def test_carts_get_their_event_and_the_downgrade_restores_0014(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0015") as app:
        with app.app_context():
            _write_0014_data()
            upgrade(revision=REVISION)
            with db.engine.connect() as conn:
                rows = conn.execute(text("SELECT id, event_id FROM carts ORDER BY id")).all()
                assert [tuple(r) for r in rows] == [(1, 1), (2, 2), (3, None)]
                indexes = {i["name"] for i in inspect(conn).get_indexes("carts")}
                assert "ix_carts_event_id_created_at" in indexes
                attempt_indexes = {i["name"] for i in inspect(conn).get_indexes("payment_attempts")}
                assert "ix_payment_attempts_event_id_created_at_outcome" in attempt_indexes
            downgrade(revision=BEFORE)
            with db.engine.connect() as conn:
                assert "event_id" not in {c["name"] for c in inspect(conn).get_columns("carts")}
                assert conn.execute(text("SELECT count(*) FROM carts")).scalar_one() == 3
            upgrade(revision=REVISION)
