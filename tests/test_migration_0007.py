"""Migration 0007 (an event's end and cover, hidden ticket types) on a database written at
0006, SQLite and PostgreSQL: existing events get no end and no cover, existing ticket
types stay on sale; the downgrade restores 0006 with the data, and the upgrade runs again."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from storefront.extensions import db

from .migration_support import app_at_revision

BEFORE = "0006_ticket_codes"


@pytest.fixture
def app_at_0006(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0007") as app:
        yield app


def _columns(table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_upgrade_and_downgrade(app_at_0006):
    with db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organisers (id, name, slug, require_two_factor) VALUES (1, 'Org', 'org', false)")
        )
        conn.execute(
            text(
                "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, currency,"
                " status, held, sold) VALUES (1, 1, 'old', 'Old event', '', '', '2027-01-01 20:00:00',"
                " 'Europe/Paris', 'EUR', 'published', 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold,"
                " max_per_order, position) VALUES (1, 1, 'Standard', '', 2500, 100, 0, 0, 10, 0)"
            )
        )
    assert "hidden" not in _columns("ticket_types")

    upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT ends_at, cover_image FROM events")).one() == (None, None)
        assert not conn.execute(text("SELECT hidden FROM ticket_types")).scalar_one()
    with db.engine.begin() as conn:  # a new row gets the default too
        conn.execute(
            text(
                "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold,"
                " max_per_order, position) VALUES (2, 1, 'Late', '', 2500, 10, 0, 0, 10, 1)"
            )
        )
        assert not conn.execute(text("SELECT hidden FROM ticket_types WHERE id = 2")).scalar_one()

    downgrade(revision=BEFORE)
    assert {"ends_at", "cover_image"}.isdisjoint(_columns("events"))
    assert "hidden" not in _columns("ticket_types")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ticket_types")).scalar_one() == 2
        assert conn.execute(text("SELECT title FROM events")).scalar_one() == "Old event"

    upgrade()
    assert "hidden" in _columns("ticket_types")
