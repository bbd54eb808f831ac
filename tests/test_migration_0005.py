"""Migration 0005 (staff accounts and the audit log) on a database written at 0004, SQLite
and PostgreSQL: existing organisers get the new settings' defaults, the audit table is
append-only from the start, and the downgrade restores 0004 (and the upgrade runs again)."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from storefront.extensions import db

from .conftest import _recreate_pg_database, backend_url, make_app

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
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'at-0004.db'}"
    else:
        base = make_url(backend_url(database_urls, "postgresql"))
        url = base.set(database=f"{base.database}_m0005").render_as_string(hide_password=False)
        _recreate_pg_database(url)
    app = make_app(url)
    with app.app_context():
        upgrade(revision=BEFORE)
        yield app
        db.session.remove()
        db.engine.dispose()
    if backend != "sqlite":
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


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
