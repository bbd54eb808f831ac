#!/usr/bin/env python3
"""The back office at scale: 100,000 orders and 1,000,000 payment attempts in PostgreSQL.

Seeds a database of its own (dropped and recreated) in SQL (``generate_series``, so
seeding takes a minute, not an hour): one organiser with ten events, the first of them
big (60 % of the orders); one paid attempt per order, a declined try before one order in
five, and 300,000 abandoned carts with declined, 3-D Secure failed and expired attempts
until the attempts reach ``--attempts``; 1–2 tickets per order, 3 % of orders refunded.
Then, through the app (the Flask test client, signed in as the organiser's owner), it asks
each back-office page ``--repeat`` times and reports p50 / p95 per page, and the
``EXPLAIN (ANALYZE, BUFFERS)`` of every statement the page ran that took more than
``--explain-ms``. Last, it streams the big event's orders export in a child process and
reports the child's peak RSS.

    .venv/bin/python bench/admin_scale.py                 # seed, measure, report
    .venv/bin/python bench/admin_scale.py --no-seed       # measure again on the seeded database

Before measuring it rebuilds the dashboard's rollup and times the rebuild (`--no-rollup`: empties it,
so the dashboard reads the raw tables; `--only dashboard` measures only those pages).
Pages are named by endpoint; one the app does not have (yet) is reported as missing.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront_bench_admin"
OWNER_EMAIL = "owner@scale.example"

# Which event order i is of (the temp table ``o`` below); bench/export_memory.py seeds another split.
EVENT_OF_ORDER = "CASE WHEN i % 10 < 6 THEN 1 ELSE 2 + i % 9 END"
SEED_SQL = """
INSERT INTO organisers (id, name, slug, require_two_factor) VALUES (1, 'Scale Productions', 'scale', false);
INSERT INTO events (id, organiser_id, slug, title, description, venue, starts_at, timezone, currency, status,
                    held, sold)
SELECT e, 1, 'scale-' || e, 'Scale event ' || e, '', 'Hall ' || e, now() + interval '60 days', 'Europe/Paris',
       'EUR', 'published', 0, 0
FROM generate_series(1, 10) e;
INSERT INTO ticket_types (id, event_id, name, description, price_minor, capacity, held, sold, max_per_order,
                          position, hidden)
SELECT (e - 1) * 3 + t, e, (ARRAY['Standing', 'Seated', 'VIP'])[t], '', (ARRAY[3000, 4500, 12000])[t],
       1000000, 0, 0, 10, t, false
FROM generate_series(1, 10) e, generate_series(1, 3) t;

-- Carts 1..N are the orders' (converted); N+1..N+A the abandoned ones (expired).
INSERT INTO carts (id, token, event_id, status, expires_at, created_at, updated_at)
SELECT c, md5('cart' || c) || md5('cart2' || c), CASE WHEN c % 10 < 6 THEN 1 ELSE 2 + c % 9 END,
       CASE WHEN c <= :orders THEN 'converted' ELSE 'expired' END,
       now() - (c % 86400) * interval '1 minute', now() - (c % 86400) * interval '1 minute',
       now() - (c % 86400) * interval '1 minute'
FROM generate_series(1, :orders + :abandoned) c;

-- Order i: event 1 for 60 %, else 2..10; created over the last 60 days.
CREATE TEMP TABLE o AS
SELECT i,
       CASE WHEN i % 10 < 6 THEN 1 ELSE 2 + i % 9 END AS event_id,
       now() - (:orders - i) * (interval '60 days' / :orders) AS at,
       1 + (i % 2) AS n,
       1 + i % 3 AS t
FROM generate_series(1, :orders) i;

INSERT INTO orders (id, code, access_token, stripe_checkout_session_id, stripe_payment_intent_id, cart_id, event_id,
                    buyer_email, status, total_minor, refunded_minor, currency, created_at)
SELECT i, 'SC' || i, md5('tok' || i) || md5('tok2' || i), 'cs_test_scale_' || i,
       'pi_scale_' || i, i, event_id, 'buyer' || (i % 70000) || '@example.com',
       CASE WHEN i % 33 = 0 THEN 'refunded' ELSE 'paid' END,
       n * (ARRAY[3000, 4500, 12000])[t], CASE WHEN i % 33 = 0 THEN n * (ARRAY[3000, 4500, 12000])[t] ELSE 0 END,
       'EUR', at
FROM o;

-- What the carts held: the order's line, and one ticket of an event for each abandoned cart.
INSERT INTO cart_items (cart_id, ticket_type_id, quantity)
SELECT i, (event_id - 1) * 3 + t, n FROM o;
INSERT INTO cart_items (cart_id, ticket_type_id, quantity)
SELECT c, (CASE WHEN c % 10 < 6 THEN 0 ELSE 1 + c % 9 END) * 3 + 1 + c % 3, 1
FROM generate_series(:orders + 1, :orders + :abandoned) c;

INSERT INTO tickets (order_id, ticket_type_id, attendee_first_name, attendee_last_name, price_minor, secret, code,
                     status)
SELECT i, (event_id - 1) * 3 + t,
       (ARRAY['Ada', 'Grace', 'Alan', 'Hedy', 'Émile', 'Zoë', 'Chloé', 'Jürgen', 'Søren', 'Amélie'])[1 + (i + k) % 10],
       (ARRAY['Lovelace', 'Hopper', 'Turing', 'Lamarr', 'Durand', 'Martin', 'Bernard', 'Müller', 'Kierkegaard',
              'Poulain'])[1 + (i / 10 + k) % 10] || ' ' || (i % 997),
       (ARRAY[3000, 4500, 12000])[t], md5('secret' || i || '-' || k) || md5('s2' || i || '-' || k),
       'T' || i || 'X' || k,
       CASE WHEN i % 33 = 0 THEN 'void' ELSE 'valid' END
FROM o, generate_series(1, 2) k WHERE k <= n;

INSERT INTO refunds (order_id, amount_minor, currency, reason, requested_by, status, idempotency_key,
                     stripe_refund_id, created_at, updated_at)
SELECT id, total_minor, 'EUR', 'Requested by the buyer', 'owner@scale.example', 'succeeded', 'scale-refund-' || id,
       're_scale_' || id, created_at + interval '1 day', created_at + interval '1 day'
FROM orders WHERE status = 'refunded';

-- The attempts: each order's paid one; a decline before one order in five.
INSERT INTO payment_attempts (cart_id, event_id, idempotency_key, lines, buyer_email, amount_minor, currency, status,
                              session_expires_at, stripe_checkout_session_id, stripe_payment_intent_id,
                              created_at, updated_at)
SELECT i, event_id, 'scale-paid-' || i, '[]', 'buyer' || (i % 70000) || '@example.com',
       n * (ARRAY[3000, 4500, 12000])[t],
       'EUR', 'paid', at + interval '30 minutes', 'cs_test_scale_' || i, 'pi_scale_' || i, at, at
FROM o;
INSERT INTO payment_attempts (cart_id, event_id, idempotency_key, lines, buyer_email, amount_minor, currency, status,
                              session_expires_at, error_type, error_code, decline_code, error_message,
                              created_at, updated_at)
SELECT i, event_id, 'scale-declined-' || i, '[]', 'buyer' || (i % 70000) || '@example.com', 4500, 'EUR', 'expired',
       at, 'card_error', 'card_declined', 'insufficient_funds', 'Your card has insufficient funds.',
       at - interval '3 minutes', at - interval '2 minutes'
FROM o WHERE i % 5 = 0;
INSERT INTO payment_attempts (cart_id, event_id, idempotency_key, lines, buyer_email, amount_minor, currency, status,
                              session_expires_at, error_type, error_code, decline_code, error_message,
                              created_at, updated_at)
SELECT c, CASE WHEN a % 10 < 6 THEN 1 ELSE 2 + a % 9 END, 'scale-abandoned-' || a, '[]',
       'walker' || (a % 90000) || '@example.com', 4500, 'EUR',
       CASE WHEN a % 4 = 0 THEN 'failed' ELSE 'expired' END, now() - (a % 86400) * interval '1 minute',
       CASE a % 4 WHEN 1 THEN 'card_error' WHEN 2 THEN 'card_error' END,
       CASE a % 4 WHEN 1 THEN 'card_declined' WHEN 2 THEN 'payment_intent_authentication_failure' END,
       CASE a % 4 WHEN 1 THEN (ARRAY['generic_decline', 'expired_card', 'stolen_card'])[1 + a % 3] END,
       CASE a % 4 WHEN 1 THEN 'Your card was declined.' WHEN 2 THEN 'Authentication failed.' END,
       now() - (a % 86400) * interval '1 minute', now() - (a % 86400) * interval '1 minute'
FROM generate_series(1, :attempts - :orders - :orders / 5) a,
     LATERAL (SELECT :orders + 1 + a % :abandoned AS c) carts;

SELECT setval(pg_get_serial_sequence('organisers', 'id'), 1);
SELECT setval(pg_get_serial_sequence('events', 'id'), 10);
SELECT setval(pg_get_serial_sequence('ticket_types', 'id'), 30);
SELECT setval(pg_get_serial_sequence('carts', 'id'), :orders + :abandoned);
SELECT setval(pg_get_serial_sequence('orders', 'id'), :orders);
UPDATE ticket_types tt SET sold = s.n FROM (SELECT ticket_type_id, count(*) n FROM tickets
                                             WHERE status <> 'void' GROUP BY 1) s WHERE s.ticket_type_id = tt.id;
UPDATE events e SET sold = s.n FROM (SELECT event_id, sum(sold) n FROM ticket_types GROUP BY 1) s
WHERE s.event_id = e.id;
"""


def pages(orders: int) -> list[tuple[str, str, dict]]:
    """(label, endpoint, arguments) of the pages measured; {code}/{email}/{name} are filled below."""
    big = {"organiser": "scale", "event": "scale-1"}
    return [
        ("events list", "admin.events", {"organiser": "scale"}),
        ("order list, event", "admin.event_orders", big),
        ("order list, event, deep page", "admin.event_orders", {**big, "_deep": True}),
        ("order list, organiser", "admin.orders", {"organiser": "scale"}),
        ("search by code", "admin.event_orders", {**big, "q": "{code}"}),
        ("search by email", "admin.orders", {"organiser": "scale", "q": "{email}"}),
        ("search by attendee name", "admin.event_orders", {**big, "q": "Kierkegaard 7"}),
        ("order detail", "admin.order", {**big, "order_code": "{code}"}),
        ("attempts without an order", "admin.event_attempts", big),
        ("payments dashboard, organiser", "admin.organiser_report", {"organiser": "scale"}),
        ("payments dashboard, event", "admin.event_report", big),
        ("live view", "admin.event_live", big),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--abandoned", type=int, default=300_000, help="abandoned carts (default 300,000)")
    ap.add_argument("--repeat", type=int, default=40, help="requests per page (default 40)")
    ap.add_argument("--explain-ms", type=float, default=5.0, help="EXPLAIN statements slower than this")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--no-seed", action="store_true", help="measure the database seeded by an earlier run")
    ap.add_argument(
        "--no-rollup", action="store_true", help="drop the dashboard's rollup: it answers from the raw tables"
    )
    ap.add_argument("--only", help="measure only the pages whose label contains this (e.g. dashboard)")
    ap.add_argument("--no-export", action="store_true", help="skip the export's peak RSS")
    ap.add_argument("--export-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    url = urlsplit(args.database_url)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.path.strip("/").startswith("storefront_bench"):
        ap.error("give a loopback PostgreSQL database named storefront_bench…; it is dropped and recreated")
    if args.attempts < args.orders + args.orders // 5 or args.orders < 10 or args.abandoned < 1:
        ap.error("attempts must be at least orders × 1.2, orders at least 10")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(16))
    app = _app(args.database_url)
    if args.export_child:
        return _export_child(app, args.export_child)
    if not args.no_seed:
        _seed(app, args)
    _rollup(app, drop=args.no_rollup)
    _measure(app, args)
    if not args.no_export:
        _export_rss(args)
    return 0


def _rollup(app, *, drop: bool) -> None:
    """Rebuild the dashboard's rollup from the first row (what ``flask reports rebuild``
    does after a migration), then as the periodic job does (the last 14 days), timing
    both; or with ``drop``, empty it, so the dashboard reads the raw tables."""
    from datetime import timedelta

    from sqlalchemy import text

    from storefront import report_rollup
    from storefront.database import write_transaction
    from storefront.extensions import db

    with app.app_context():
        if drop:
            with write_transaction():
                for table in (
                    "report_rollup_state",
                    "report_attempts",
                    "report_tickets",
                    "report_money",
                    "report_carts",
                    "report_attempts_daily",
                    "report_money_daily",
                    "report_carts_daily",
                ):
                    db.session.execute(text(f"DELETE FROM {table}"))
            print("rollup dropped: the dashboard reads the raw tables")
        else:
            started = time.perf_counter()
            full = report_rollup.rebuild(None)
            full_s = time.perf_counter() - started
            started = time.perf_counter()
            report_rollup.rebuild_recent(timedelta(days=14))
            recent_s = time.perf_counter() - started
            rows = {
                t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("report_attempts", "report_tickets", "report_money", "report_carts", "report_attempts_daily")
            }
            print(
                f"rollup: full rebuild {full_s:.1f} s ({full.ranges} transactions), the periodic job's 14 days"
                f" {recent_s:.1f} s; rolled up until {full.rolled_up_until:%Y-%m-%d %H:%M} UTC; "
                + ", ".join(f"{n:,} {t}" for t, n in rows.items())
            )
        db.session.remove()


def _app(database_url: str):
    from storefront import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "STRIPE_SECRET_KEY": "sk_test_admin_scale",
            "STRIPE_API_BASE": "http://127.0.0.1:9",  # never called by these pages
            "STRIPE_WEBHOOK_SECRET": "whsec_admin_scale",
            "JOBS_SQLITE_PATH": f"/tmp/admin-scale-jobs-{os.getpid()}.db",
        }
    )


def _seed(app, args, seed_sql: str = SEED_SQL) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storefront import passwords
    from storefront.extensions import db

    target = make_url(args.database_url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    started = time.monotonic()
    with app.app_context():
        upgrade()
        sql = (
            seed_sql.replace(":orders", str(args.orders))
            .replace(":attempts", str(args.attempts))
            .replace(":abandoned", str(args.abandoned))
        )
        with db.engine.begin() as conn:
            # One script, no parameters: the driver sends it as it is (its % are SQL's modulo).
            conn.connection.driver_connection.execute(sql)
            conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, session_version, two_factor_enabled, created_at, "
                    "updated_at, password_changed_at) VALUES (:e, :h, :v, false, now(), now(), now())"
                ),
                {"e": OWNER_EMAIL, "h": passwords.hash_password(secrets.token_urlsafe(16)), "v": secrets.token_hex(8)},
            )
            conn.exec_driver_sql(
                "INSERT INTO memberships (user_id, organiser_id, role, all_events, created_at) "
                "SELECT id, 1, 'owner', true, now() FROM users WHERE email = 'owner@scale.example'"
            )
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        counts = {
            t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("orders", "tickets", "payment_attempts", "carts", "cart_items", "refunds")
        }
        db.session.remove()
        db.engine.dispose()
    print(f"seeded in {time.monotonic() - started:.0f} s: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))


def _client(app):
    from flask_login import login_user  # noqa: F401  (the sign-in is the session Flask-Login reads)

    from storefront.admin import sessions
    from storefront.extensions import db
    from storefront.staff_models import User

    client = app.test_client()
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=OWNER_EMAIL)).scalar_one()
        user_id = user.get_id()
        db.session.remove()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
        session[sessions.SEEN_KEY] = int(time.time())
    return client


def _measure(app, args) -> None:
    from flask import url_for
    from sqlalchemy import event, text

    from storefront.extensions import db

    client = _client(app)
    with app.app_context():
        code, email = db.session.execute(
            text(
                "SELECT code, buyer_email FROM orders WHERE event_id = 1 ORDER BY id DESC LIMIT 1 "
                "OFFSET (SELECT count(*) / 20 FROM orders WHERE event_id = 1)"
            )
        ).one()
        db.session.remove()
    statements: list[tuple[float, str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        context._bench_started = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        statements.append(((time.perf_counter() - context._bench_started) * 1000, statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    print(f"\n{'page':34} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    explains: list[tuple[str, float, str]] = []
    for label, endpoint, arguments in pages(args.orders):
        if args.only and args.only not in label:
            continue
        arguments = {k: (v.format(code=code, email=email) if isinstance(v, str) else v) for k, v in arguments.items()}
        deep = arguments.pop("_deep", False)
        with app.test_request_context():
            try:
                path = url_for(endpoint, **arguments)
            except Exception:  # noqa: BLE001  (werkzeug's BuildError: the page is not there yet)
                print(f"{label:34} {'missing':>8}")
                continue
        if deep:
            path = _deep_page(client, path)
            if path is None:
                print(f"{label:34} {'no older-page link found':>8}")
                continue
        times = []
        for _ in range(args.repeat):
            statements.clear()
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                print(f"{label:34} answered {response.status_code} for {path}")
                break
        else:
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"{label:34} {statistics.median(times):8.1f} {p95:8.1f} {len(statements):8}")
            for ms, statement, parameters in statements:
                if ms >= args.explain_ms:
                    explains.append((label, ms, _explain(app, statement, parameters)))
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    for label, ms, plan in explains:
        print(f"\n--- {label}: a statement of {ms:.1f} ms (last request)\n{plan}")


def _deep_page(client, path: str) -> str | None:
    """Follow the "older" link 20 times: a page 20 deep, which OFFSET would make slow."""
    import re

    for _ in range(20):
        page = client.get(path).get_data(as_text=True)
        found = re.search(r'href="([^"]*(?:after|before|cursor)=[^"]*)"[^>]*>\s*(?:Older|Next|Earlier)', page)
        if not found:
            return None if _ == 0 else path
        path = found.group(1).replace("&amp;", "&")
    return path


def _explain(app, statement: str, parameters) -> str:
    from storefront.extensions import db

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            raw.close()


def _export_rss(args) -> None:
    child = subprocess.run(
        [sys.executable, __file__, "--database-url", args.database_url, "--export-child", "admin.event_export"],
        capture_output=True,
        text=True,
    )
    print("\n" + (child.stdout.strip() or child.stderr.strip()[-2000:]))


def _export_child(app, endpoint: str) -> int:
    from flask import url_for

    client = _client(app)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with app.test_request_context():
        try:
            path = url_for(endpoint, organiser="scale", event="scale-1", kind="orders")
        except Exception:  # noqa: BLE001
            print(f"export: {endpoint} is not there yet")
            return 0
    started = time.perf_counter()
    response = client.get(path, buffered=False)
    size = rows = 0
    for chunk in response.response:
        size += len(chunk)
        rows += chunk.count(b"\n")
    response.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"export of the big event's orders ({path}): status {response.status_code}, {rows:,} lines, "
        f"{size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s; peak RSS {peak / 1024:.0f} MB "
        f"(the process before the export: {base_rss / 1024:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
