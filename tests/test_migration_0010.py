"""Migration 0010: on a database written at 0006 (SQLite and PostgreSQL), the upgrade adds
an empty, append-only check-in log and leaves the tickets as they were (a ticket used
before keeps its time); the downgrade restores 0006 and the upgrade runs again."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from storefront.extensions import db

from .migration_support import app_at_revision

BEFORE, REVISION = "0006_ticket_codes", "0010_check_ins"
WHEN = "2026-12-01 10:00:00"


@pytest.fixture
def app_at_0006(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0010") as app:
        yield app


def _write_0006_data() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
        conn.execute(
            text(
                "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, "
                "currency, status, held, sold) VALUES (1, 1, 'gig', 'Gig', '', '', :when, 'UTC', 'EUR', "
                "'published', 0, 0)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold, "
                "max_per_order, position) VALUES (1, 1, 'Standard', '', 2500, 100, 0, 2, 10, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                "VALUES (1, 'token', 'converted', :when, :when, :when)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO orders (id, code, access_token, cart_id, event_id, buyer_email, status, total_minor, "
                "refunded_minor, currency, created_at) VALUES (1, 'ORDERONE', 'access', 1, 1, 'b@example.com', "
                "'paid', 5000, 0, 'EUR', :when)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO tickets (id, order_id, ticket_type_id, attendee_first_name, attendee_last_name, "
                "price_minor, secret, code, status, checked_in_at) VALUES "
                "(1, 1, 1, 'Ada', 'Lovelace', 2500, 'secret-one', 'ACDEFGHJKM', 'valid', NULL), "
                "(2, 1, 1, 'Alan', 'Turing', 2500, 'secret-two', 'ACDEFGHJKN', 'used', :when)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, session_version, two_factor_enabled, created_at, "
                "updated_at, password_changed_at) VALUES (1, 'door@example.com', 'x', 'v', false, :when, :when, :when)"
            ),
            {"when": WHEN},
        )


def _tickets() -> list[tuple]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, status, code, checked_in_at FROM tickets ORDER BY id"))]


def test_migration_0010_adds_an_empty_append_only_check_in_log(app_at_0006):
    _write_0006_data()
    tickets = _tickets()
    upgrade(revision=REVISION)
    assert _tickets() == tickets
    columns = {c["name"] for c in inspect(db.engine).get_columns("check_ins")}
    assert {"event_id", "ticket_id", "user_id", "staff_email", "door", "method", "result", "nonce"} <= columns
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM check_ins")).scalar_one() == 0
        conn.execute(
            text(
                "INSERT INTO check_ins (created_at, event_id, ticket_id, user_id, staff_email, door, method, result, "
                "nonce, presented_digest) VALUES (:when, 1, 1, 1, 'door@example.com', 'North', 'code', 'admitted', "
                "'nonce-0001', 'digest')"
            ),
            {"when": WHEN},
        )
    for statement in ("UPDATE check_ins SET door = 'forged'", "DELETE FROM check_ins"):
        with pytest.raises(DBAPIError), db.engine.begin() as conn:
            conn.execute(text(statement))
    with pytest.raises(DBAPIError), db.engine.begin() as conn:  # one nonce per member
        conn.execute(
            text(
                "INSERT INTO check_ins (created_at, event_id, ticket_id, user_id, staff_email, door, method, result, "
                "nonce, presented_digest) VALUES (:when, 1, 2, 1, 'door@example.com', '', 'code', 'already_used', "
                "'nonce-0001', 'other')"
            ),
            {"when": WHEN},
        )

    downgrade(revision=BEFORE)
    assert "check_ins" not in inspect(db.engine).get_table_names()
    assert _tickets() == tickets
    upgrade(revision=REVISION)
    assert "check_ins" in inspect(db.engine).get_table_names()
