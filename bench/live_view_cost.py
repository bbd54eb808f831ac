#!/usr/bin/env python3
"""CPU per poll of the live on-sale view's fragment, in-process: what one organiser's poll
costs the shop, without HTTP, beside what an add-to-cart costs (``bench/cpu_per_add.py``).

Seeds a PostgreSQL database of its own with one event in the middle of its sale: 600 orders
(1,200 tickets) over the last 15 minutes and 5,000 before, 400 carts holding tickets (40 of
them lapsed, not swept), 60 payments in flight among 20,000 ended attempts. Then a signed-in
owner polls ``/admin/o/<organiser>/events/<event>/live`` as htmx does (``HX-Request``), and
it prints ``time.process_time`` and the wall time per poll, best of ``--rounds`` rounds,
with the per-event cache off (every poll reads) and on (LIVE_VIEW_CACHE_SECONDS=2, the
default: the polls of one process within 2 s share a reading), and the statements per poll.

    .venv/bin/python bench/live_view_cost.py
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront_bench_live_cost"


def seed(now) -> tuple[str, str]:
    """The event and its sale so far; returns (organiser slug, event slug)."""
    from sqlalchemy import insert

    from storefront.database import write_transaction
    from storefront.extensions import db
    from storefront.models import (
        Cart,
        CartItem,
        Event,
        EventStatus,
        Order,
        Organiser,
        PaymentAttempt,
        Ticket,
        TicketType,
    )

    with write_transaction():
        event = Event(
            organiser=Organiser(name="Bench", slug="bench"),
            slug="live",
            title="Live",
            venue="Bench",
            starts_at=now + timedelta(days=30),
            timezone="Europe/Paris",
            currency="EUR",
            status=EventStatus.PUBLISHED.value,
        )
        event.ticket_types = [
            TicketType(name="Standing", price_minor=4500, capacity=20_000, max_per_order=10, position=1),
            TicketType(name="Seated", price_minor=6500, capacity=10_000, max_per_order=10, position=2),
        ]
        db.session.add(event)
    tt_ids = [tt.id for tt in event.ticket_types]
    event_id = event.id
    with write_transaction():
        carts = [
            {"token": f"c{n}", "status": "converted", "expires_at": now, "created_at": now, "updated_at": now}
            for n in range(5600)
        ]
        carts += [
            {
                "token": f"h{n}",
                "status": "active",
                "expires_at": now + timedelta(minutes=-1 if n < 40 else 10),
                "created_at": now,
                "updated_at": now,
            }
            for n in range(400)
        ]
        db.session.execute(insert(Cart), carts)
    cart_ids = dict(db.session.query(Cart.token, Cart.id).all())
    with write_transaction():
        db.session.execute(
            insert(CartItem),
            [{"cart_id": cart_ids[f"h{n}"], "ticket_type_id": tt_ids[n % 2], "quantity": 2} for n in range(400)],
        )
        for tt_id in tt_ids:
            db.session.query(TicketType).filter_by(id=tt_id).update({"held": 400, "sold": 0})
        orders = [
            {
                "code": f"O{n:07d}",
                "access_token": f"a{n}",
                "cart_id": cart_ids[f"c{n}"],
                "event_id": event_id,
                "buyer_email": f"b{n}@example.com",
                "status": "paid",
                "total_minor": 9000,
                "refunded_minor": 0,
                "currency": "EUR",
                "created_at": now - (timedelta(seconds=n * 1.5) if n < 600 else timedelta(hours=1, minutes=n)),
            }
            for n in range(5600)
        ]
        db.session.execute(insert(Order), orders)
    order_ids = dict(db.session.query(Order.code, Order.id).all())
    with write_transaction():
        db.session.execute(
            insert(Ticket),
            [
                {
                    "order_id": order_ids[f"O{n:07d}"],
                    "ticket_type_id": tt_ids[k],
                    "attendee_first_name": "Ada",
                    "attendee_last_name": "Lovelace",
                    "price_minor": 4500,
                    "secret": secrets.token_hex(16),
                    "code": f"T{n:07d}{k}",
                    "status": "valid",
                }
                for n in range(5600)
                for k in (0, 1)
            ],
        )
        db.session.query(TicketType).filter(TicketType.id.in_(tt_ids)).update({"sold": 5600})
        db.session.execute(
            insert(PaymentAttempt),
            [
                {
                    "cart_id": cart_ids[f"c{n % 5600}"],
                    "event_id": event_id,
                    "idempotency_key": f"k{n}",
                    "lines": "[]",
                    "buyer_email": "b@example.com",
                    "amount_minor": 9000,
                    "currency": "EUR",
                    "status": ("open" if n % 2 else "processing") if n < 60 else ("paid" if n % 3 else "expired"),
                    "session_expires_at": now + timedelta(minutes=30),
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(20_060)
            ],
        )
    return "bench", "live"


def explain(db, now) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the four queries of one reading, on the seeded event."""
    from storefront import live_sales
    from storefront.models import Event, TicketType

    event = db.session.query(Event).filter_by(slug="live").one()
    tt_ids = [tt.id for tt in db.session.query(TicketType).filter_by(event_id=event.id)]
    queries = {
        "ticket types": (live_sales._TYPES, {"event_id": event.id}),
        "lapsed holds": (live_sales._LAPSED, {"now": now, "ticket_type_ids": tt_ids}),
        "last 15 minutes' orders": (
            live_sales._RECENT_ORDERS,
            {"event_id": event.id, "since": now - timedelta(minutes=live_sales.MINUTES - 1)},
        ),
        "payments in flight": (live_sales._IN_FLIGHT, {"event_id": event.id}),
    }
    conn = db.session.connection()
    for name, (statement, params) in queries.items():
        sql = statement.params(**params).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
        print(f"--- {name}\n{plan}\n")
    db.session.rollback()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="polls per round (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each kind; the best is reported (default 3)")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of a reading's queries")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= 5000 or not 1 <= args.rounds <= 20:
        ap.error("requests must be 1..5000, rounds 1..20")
    url = urlsplit(args.database_url)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.path.strip("/").startswith("storefront_bench"):
        ap.error("give a loopback PostgreSQL database named storefront_bench…; it is dropped and recreated")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(16))

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.engine import make_url

    from storefront import accounts, create_app, teams
    from storefront.audit import Actor
    from storefront.extensions import db
    from storefront.models import Organiser, utcnow
    from storefront.staff_models import Role

    target = make_url(args.database_url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": args.database_url,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "DEMO_MODE": True,
            "LIVE_VIEW_CACHE_SECONDS": 0,
        }
    )
    with app.app_context():
        upgrade()
        organiser, event_slug = seed(utcnow())
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        password = secrets.token_urlsafe(18)
        user = accounts.create_user("owner@bench.example", password, Actor.command_line())
        org_id = db.session.query(Organiser.id).filter_by(slug=organiser).scalar()
        teams.add_member(org_id, user.id, Role.OWNER, Actor.command_line())
        db.session.remove()

        client = app.test_client()
        answer = client.post("/admin/sign-in", data={"email": "owner@bench.example", "password": password})
        assert answer.status_code == 303, answer.status_code
        path = f"/admin/o/{organiser}/events/{event_slug}/live"
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

        def run() -> tuple[float, float, float]:
            """(CPU ms, wall ms, statements) per poll."""
            statements.clear()
            p0, w0 = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                answer = client.get(path, headers={"HX-Request": "true"})
                if answer.status_code != 200 or b'id="live-sales"' not in answer.data:
                    sys.exit(f"the live fragment answered {answer.status_code}")
            n = args.requests
            return (time.process_time() - p0) * 1000 / n, (time.perf_counter() - w0) * 1000 / n, len(statements) / n

        if args.explain:
            explain(db, utcnow())
        results = {}
        for cache in (0, 2):
            app.config["LIVE_VIEW_CACHE_SECONDS"] = cache
            run()  # warm up: templates, compiled statements
            results[cache] = min(run() for _ in range(args.rounds))
        db.engine.dispose()
    for cache, (cpu, wall, n) in results.items():
        print(
            f"live fragment, cache {'off' if not cache else f'{cache} s'}: CPU {cpu:.2f} ms, wall {wall:.2f} ms, "
            f"{n:.1f} statements per poll (best of {args.rounds} rounds of {args.requests})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
