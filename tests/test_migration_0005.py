"""Migration 0005 (staff accounts and the audit log) on a database written at 0004, SQLite
and PostgreSQL: existing organisers get the new settings' defaults, the audit table is
append-only from the start, and the downgrade restores 0004 (and the upgrade runs again)."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DatabaseError

from storefront.extensions import db

from .migration_support import app_at_revision

BEFORE = "0004_money_minor_units"
STAFF_TABLES = {
    "users",
    "memberships",
    "membership_events",
    "invitations",
    "password_resets",
    "recovery_codes",
    "audit_entries",
}


@pytest.fixture
def app_at_0004(database_urls, backend, tmp_path):
    """An app on a database of its own, migrated to 0004 only."""
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0005") as app:
        yield app


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_upgrade_and_downgrade(app_at_0004):
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Old Org', 'old-org')"))
    assert not STAFF_TABLES & _tables()

    upgrade()
    assert STAFF_TABLES <= _tables()
    with db.engine.begin() as conn:
        row = conn.execute(text("SELECT require_two_factor, contact_email FROM organisers WHERE id = 1")).one()
        assert (bool(row[0]), row[1]) == (False, None)
        conn.execute(
            text(
                "INSERT INTO audit_entries (created_at, actor, organiser_id, object_type, action) "
                "VALUES ('2026-12-01 10:00:00', 'command line', 1, 'organiser', 'organiser_created')"
            )
        )
    for statement in ("UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries"):
        with pytest.raises(DatabaseError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(statement))

    downgrade(revision=BEFORE)
    assert not STAFF_TABLES & _tables()
    columns = {c["name"] for c in inspect(db.engine).get_columns("organisers")}
    assert {"require_two_factor", "contact_email"}.isdisjoint(columns)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM organisers")).scalar_one() == "Old Org"

    upgrade()
    assert STAFF_TABLES <= _tables()
