"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from storefront import order_search
from storefront.extensions import db

from .migration_support import schema_diff


def test_migrated_schema_matches_the_models(app):
    with db.engine.connect() as conn:
        assert schema_diff(conn) == []


def test_the_search_indexes_fold_as_the_search_does():
    path = Path(__file__).parent.parent / "migrations" / "versions" / "0012_orders_view.py"
    spec = importlib.util.spec_from_file_location("migration_0012", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert (migration.FOLD_FROM, migration.FOLD_TO) == (order_search.FOLD_FROM, order_search.FOLD_TO)
