"""Migration 0018: on a database written at 0017 (SQLite and PostgreSQL), the upgrade gives
payment attempts and orders a language, English for the rows already there (every mail
went out in English before); the schema is then the models'; the downgrade restores 0017
and the upgrade runs again."""

from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from storefront.extensions import db

from .migration_support import app_at_revision, schema_diff

BEFORE, REVISION = "0017_mail_resends", "0018_order_locale"
WHEN = "2026-12-01 10:00:00"


def _write_0014_data() -> None:
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
                "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                "VALUES (1, 't1', 'converted', :when, :when, :when)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO payment_attempts (id, cart_id, event_id, idempotency_key, lines, buyer_email, "
                "amount_minor, currency, status, session_expires_at, created_at, updated_at) VALUES (1, 1, 1, 'k1', "
                "'[]', 'b@example.com', 2500, 'EUR', 'paid', :when, :when, :when)"
            ),
            {"when": WHEN},
        )
        conn.execute(
            text(
                "INSERT INTO orders (id, code, access_token, cart_id, event_id, buyer_email, status, total_minor, "
                "refunded_minor, currency, created_at) VALUES (1, 'ABCDEFGH', 'tok', 1, 1, 'b@example.com', 'paid', "
                "2500, 0, 'EUR', :when)"
            ),
            {"when": WHEN},
        )


def _locales() -> tuple[list, list]:
    with db.engine.connect() as conn:
        return (
            conn.execute(text("SELECT id, locale FROM payment_attempts ORDER BY id")).all(),
            conn.execute(text("SELECT id, locale FROM orders ORDER BY id")).all(),
        )


def test_upgrade_gives_existing_rows_english_and_downgrade_restores(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0018"):
        _write_0014_data()
        upgrade(revision=REVISION)
        assert _locales() == ([(1, "en")], [(1, "en")])
        upgrade()  # and any later migration: the models are the head's
        with db.engine.connect() as conn:
            assert schema_diff(conn) == []
        with db.engine.begin() as conn:  # a new row without a language is English too
            conn.execute(
                text(
                    "INSERT INTO payment_attempts (id, cart_id, idempotency_key, lines, buyer_email, amount_minor, "
                    "currency, status, session_expires_at, created_at, updated_at) VALUES (2, 1, 'k2', '[]', "
                    "'b@example.com', 2500, 'EUR', 'expired', :when, :when, :when)"
                ),
                {"when": WHEN},
            )
        downgrade(revision=BEFORE)
        for table in ("payment_attempts", "orders"):
            assert "locale" not in {c["name"] for c in inspect(db.engine).get_columns(table)}
        upgrade(revision=REVISION)
        assert _locales() == ([(1, "en"), (2, "en")], [(1, "en")])
