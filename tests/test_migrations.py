"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storefront import order_search
from storefront.extensions import db

# Expression indexes the models cannot describe on both backends: PostgreSQL's only,
# made by their migration, and checked by their own test (tests/test_order_search.py).
POSTGRESQL_EXPRESSION_INDEXES = {
    "ix_orders_buyer_email_lower",
    "ix_tickets_attendee_first_last_folded",
    "ix_tickets_attendee_last_first_folded",
}


def _compared(obj, name, type_, reflected, compare_to):
    return not (type_ == "index" and reflected and name in POSTGRESQL_EXPRESSION_INDEXES)


def test_migrated_schema_matches_the_models(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _compared})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_search_indexes_fold_as_the_search_does():
    path = Path(__file__).parent.parent / "migrations" / "versions" / "0012_orders_view.py"
    spec = importlib.util.spec_from_file_location("migration_0012", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert (migration.FOLD_FROM, migration.FOLD_TO) == (order_search.FOLD_FROM, order_search.FOLD_TO)
