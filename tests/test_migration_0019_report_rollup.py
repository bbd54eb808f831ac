"""Migration 0019: on a database written at 0018 (SQLite and PostgreSQL), the dashboard's
rollup tables exist, empty, with no watermark (so the dashboard reads the raw tables
until the first rebuild); the schema matches the models; the downgrade restores 0018 and
the upgrade runs again."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from storefront.extensions import db

from .migration_support import app_at_revision, schema_diff

BEFORE, REVISION = "0018_order_locale", "0019_report_rollup"
ROLLUP = {
    "report_attempts_daily",
    "report_money_daily",
    "report_carts_daily",
    "report_attempts",
    "report_tickets",
    "report_money",
    "report_carts",
    "report_rollup_state",
}


def test_rollup_tables_and_the_downgrade_restores_0018(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0019") as app:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
            upgrade(revision=REVISION)
            with db.engine.connect() as conn:
                assert ROLLUP <= set(inspect(conn).get_table_names())
                for table in ROLLUP:
                    assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
                assert schema_diff(conn) == []
                assert conn.execute(text("SELECT count(*) FROM organisers")).scalar_one() == 1
            downgrade(revision=BEFORE)
            with db.engine.connect() as conn:
                assert not ROLLUP & set(inspect(conn).get_table_names())
            upgrade(revision=REVISION)
