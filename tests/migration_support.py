"""For the tests of one migration: an app on a database of its own, migrated up to the
revision before it (SQLite in a temporary folder; on PostgreSQL a database named after
the test database and the revision, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storefront.extensions import db

from .conftest import _recreate_pg_database, backend_url, make_app

# Expression indexes the models cannot describe on both backends: PostgreSQL's only,
# made by their migration, and checked by their own test (tests/test_order_search.py).
POSTGRESQL_EXPRESSION_INDEXES = {
    "ix_orders_buyer_email_lower",
    "ix_tickets_attendee_first_last_folded",
    "ix_tickets_attendee_last_first_folded",
}


def _compared(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "index" and reflected and name in POSTGRESQL_EXPRESSION_INDEXES)


def schema_diff(conn) -> list:
    """What differs between the migrated schema on ``conn`` and the models (empty when none)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _compared})
    return compare_metadata(context, db.metadata)


@contextmanager
def app_at_revision(database_urls, backend: str, tmp_path, revision: str, name: str) -> Iterator[Flask]:
    """The app (its context pushed) on a fresh database at ``revision``; ``name`` tells it apart."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'at-{name}.db'}"
    else:
        base = make_url(backend_url(database_urls, "postgresql"))
        url = base.set(database=f"{base.database}_{name}").render_as_string(hide_password=False)
        _recreate_pg_database(url)
    app = make_app(url)
    try:
        with app.app_context():
            upgrade(revision=revision)
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        if backend != "sqlite":
            admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            admin.dispose()
