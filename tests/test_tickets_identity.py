"""A ticket's secret and code (storefront.tickets), and migration 0006 that gave every
ticket issued before it a code: distinct, well-formed, required and unique afterwards."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from storefront.extensions import db
from storefront.tickets import (
    format_ticket_code,
    new_ticket_code,
    new_ticket_secret,
    normalise_ticket_code,
)
from storefront.tokens import HUMAN_ALPHABET

from .migration_support import app_at_revision


def test_a_secret_carries_at_least_128_bits():
    secret = new_ticket_secret()
    assert len(secret) * 6 >= 128
    assert len({new_ticket_secret() for _ in range(1000)}) == 1000


def test_a_code_is_read_back_however_it_is_typed():
    code = new_ticket_code()
    assert len(code) == 10 and set(code) <= set(HUMAN_ALPHABET)
    shown = format_ticket_code(code)
    assert shown == f"{code[:5]}-{code[5:]}"
    assert normalise_ticket_code(shown) == code
    assert normalise_ticket_code(f"  {shown.lower()} ") == code
    assert normalise_ticket_code(code[:5] + " " + code[5:]) == code


@pytest.mark.parametrize("typed", ["", "ACDEF", "ACDEF-GHJKMN", "ACDEF-GHJK0", "ACDEF-GHJKO", "ÀCDEF-GHJKM"])
def test_what_cannot_be_a_code_is_none(typed):
    assert normalise_ticket_code(typed) is None


@pytest.fixture
def app_at_0005(database_urls, backend, tmp_path):
    with app_at_revision(database_urls, backend, tmp_path, "0005_staff_accounts", "m0006") as app:
        yield app


def _write_0005_tickets(count: int) -> None:
    when = "2026-12-01 10:00:00"
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisers (id, name, slug) VALUES (1, 'Org', 'org')"))
        conn.execute(
            text(
                "INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, "
                "currency, status, held, sold) VALUES (1, 1, 'gig', 'Gig', '', '', :when, 'UTC', 'EUR', "
                "'published', 0, 0)"
            ),
            {"when": when},
        )
        conn.execute(
            text(
                "INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold, "
                "max_per_order, position) VALUES (1, 1, 'Standard', '', 2500, 100, 0, 0, 10, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO carts (id, token, status, expires_at, created_at, updated_at) "
                "VALUES (1, 'token', 'converted', :when, :when, :when)"
            ),
            {"when": when},
        )
        conn.execute(
            text(
                "INSERT INTO orders (id, code, access_token, cart_id, event_id, buyer_email, status, total_minor, "
                "refunded_minor, currency, created_at) VALUES (1, 'ORDERONE', 'access', 1, 1, 'b@example.com', "
                "'paid', :total, 0, 'EUR', :when)"
            ),
            {"total": 2500 * count, "when": when},
        )
        for n in range(count):
            conn.execute(
                text(
                    "INSERT INTO tickets (order_id, ticket_type_id, attendee_first_name, attendee_last_name, "
                    "price_minor, secret, status) VALUES (1, 1, 'Ada', 'Lovelace', 2500, :secret, 'valid')"
                ),
                {"secret": f"secret-{n}"},
            )


def test_migration_0006_gives_every_existing_ticket_a_code(app_at_0005):
    _write_0005_tickets(50)
    upgrade(revision="0006_ticket_codes")
    with db.engine.connect() as conn:
        codes = [row[0] for row in conn.execute(text("SELECT code FROM tickets"))]
    assert len(codes) == 50 and len(set(codes)) == 50
    assert all(normalise_ticket_code(code) == code for code in codes)

    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tickets (order_id, ticket_type_id, attendee_first_name, attendee_last_name, "
                "price_minor, secret, status, code) VALUES (1, 1, 'Bo', 'Diddley', 2500, 'other', 'valid', :code)"
            ),
            {"code": codes[0]},
        )

    downgrade(revision="0005_staff_accounts")
    assert "code" not in {c["name"] for c in inspect(db.engine).get_columns("tickets")}
    upgrade(revision="0006_ticket_codes")
