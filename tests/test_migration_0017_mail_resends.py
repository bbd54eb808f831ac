"""Migration 0017 (numbered resends of a mail) on a database written at 0016, SQLite and
PostgreSQL: every existing row is the mail itself (``resend`` 0) and the models match the
migrated schema; fulfilment's uniqueness still holds for the mail itself while numbered
resends of it are accepted, each number once; the downgrade drops the resends and puts the
old constraint back, and the upgrade runs again."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from storefront.extensions import db

from .migration_support import app_at_revision, schema_diff

BEFORE, REVISION = "0016_live_sales", "0017_mail_resends"
WHEN = "2026-12-01 10:00:00"


@pytest.fixture
def app_at_0014(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, BEFORE, "m0017") as app:
        yield app


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
                "INSERT INTO orders (id, code, access_token, cart_id, event_id, buyer_email, status, total_minor, "
                "refunded_minor, currency, created_at) VALUES (1, 'ORDER1', 'token1', 1, 1, 'b@example.com', "
                "'paid', 2500, 0, 'EUR', :when)"
            ),
            {"when": WHEN},
        )
        _insert_mail(conn, "m1", "sent")


def _insert_mail(conn, message_id: str, status: str = "pending", resend: int | None = None) -> None:
    columns = "kind, order_id, status, attempts, due_at, message_id, created_at"
    values = "'order_confirmation', 1, :status, 0, :when, :mid, :when"
    if resend is not None:
        columns, values = columns + ", resend", values + ", :resend"
    conn.execute(
        text(f"INSERT INTO mail_outbox ({columns}) VALUES ({values})"),
        {"status": status, "when": WHEN, "mid": message_id, "resend": resend},
    )


def _resends() -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT resend, status FROM mail_outbox ORDER BY id"))]


def test_upgrade_numbers_the_mails_and_downgrade_drops_the_resends(app_at_0014):
    _write_0014_data()
    upgrade(revision=REVISION)
    upgrade()  # and any later migration: the models are the head's
    with db.engine.connect() as conn:
        assert schema_diff(conn) == []
    assert _resends() == [(0, "sent")]
    # The mail itself stays one per order and kind (two fulfilments racing): refused.
    with pytest.raises(IntegrityError):
        with db.engine.begin() as conn:
            _insert_mail(conn, "m2")
    with db.engine.begin() as conn:
        _insert_mail(conn, "m3", resend=1)
        _insert_mail(conn, "m4", resend=2)
    # The same resend twice (a double click) is refused by the constraint too.
    with pytest.raises(IntegrityError):
        with db.engine.begin() as conn:
            _insert_mail(conn, "m5", resend=2)
    assert _resends() == [(0, "sent"), (1, "pending"), (2, "pending")]

    downgrade(revision=BEFORE)
    assert "resend" not in {c["name"] for c in inspect(db.engine).get_columns("mail_outbox")}
    with db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT message_id, status FROM mail_outbox"))] == [("m1", "sent")]
    with pytest.raises(IntegrityError):
        with db.engine.begin() as conn:
            _insert_mail(conn, "m6")

    upgrade(revision=REVISION)
    assert _resends() == [(0, "sent")]
