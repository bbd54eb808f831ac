#!/usr/bin/env python3
"""CPU per add-to-cart request, in-process: the hot path's own cost, without HTTP.

Runs N add-to-cart requests through the Flask test client (as htmx sends them, each
from a new buyer with an address of its own) against a PostgreSQL database of its
own, and prints ``time.process_time`` per request, for a held add (a new cart each)
and a refused one (the ticket type sold out): the best of ``--rounds`` rounds, for the
whole process (``time.process_time``, background threads included) and for the
request's thread alone (``time.thread_time``). ``--limits`` chooses how the limits are
counted: ``off``, ``memory`` (the default storage) or ``redis`` (``--redis-url``, keys
under a prefix of this run, deleted after).

    .venv/bin/python bench/cpu_per_add.py --limits off
    .venv/bin/python bench/cpu_per_add.py --limits redis
    .venv/bin/python bench/cpu_per_add.py --root /path/to/other/checkout   # the same on other code

The numbers move with the machine (bench/REPORT.md): compare runs made one after the
other, and run each a few times.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront_bench_cpu"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500, help="requests per round (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each kind; the best is reported (default 3)")
    ap.add_argument("--limits", choices=["off", "memory", "redis"], default="memory")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--database-url", default=DEFAULT_DB)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose storefront package to measure")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= 20_000 or not 1 <= args.rounds <= 20:
        ap.error("requests must be 1..20000, rounds 1..20")
    url = urlsplit(args.database_url)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.path.strip("/").startswith("storefront_bench"):
        ap.error("give a loopback PostgreSQL database named storefront_bench…; it is dropped and recreated")
    sys.path.insert(0, str(args.root.resolve()))
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(16))

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storefront import create_app
    from storefront.database import write_transaction
    from storefront.extensions import db
    from storefront.models import Event, EventStatus, Organiser, TicketType, utcnow

    target = make_url(args.database_url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()

    prefix = f"bench-cpu-{secrets.token_hex(4)}"
    config = {
        "SQLALCHEMY_DATABASE_URI": args.database_url,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": args.limits != "off",
        "REDIS_URL": args.redis_url if args.limits == "redis" else None,
        "REDIS_KEY_PREFIX": prefix,
        "STRIPE_SECRET_KEY": "sk_test_cpu_per_add",
        "STRIPE_API_BASE": "http://127.0.0.1:9",  # never called by adding to a cart
        "STRIPE_WEBHOOK_SECRET": "whsec_cpu_per_add",
    }
    app = create_app(config)
    with app.app_context():
        upgrade()
        with write_transaction():
            event = Event(
                organiser=Organiser(name="Bench", slug="bench"),
                slug="cpu",
                title="CPU",
                venue="Bench",
                starts_at=utcnow().replace(year=utcnow().year + 1),
                timezone="Europe/Paris",
                currency="EUR",
                status=EventStatus.PUBLISHED.value,
            )
            price = {"price_minor" if hasattr(TicketType, "price_minor") else "price_cents": 4500}
            event.ticket_types = [
                TicketType(
                    name="Plenty", capacity=(args.rounds + 1) * args.requests, max_per_order=10, position=1, **price
                ),
                TicketType(name="Gone", capacity=0, max_per_order=10, position=2, **price),
            ]
            db.session.add(event)
        plenty, gone = (tt.id for tt in event.ticket_types)
        db.session.remove()

        buyers = iter(range(1, 10**9))

        def run(tt_id: int, expect: int) -> tuple[float, float]:
            """CPU ms per request: (the whole process's, this thread's alone)."""
            clients = []
            for _ in range(args.requests):
                client = app.test_client()
                n = next(buyers)
                client.environ_base["REMOTE_ADDR"] = f"198.18.{n // 256 % 256}.{n % 256}"
                clients.append(client)
            body = {f"quantity-{tt_id}": "1"}
            p0, t0 = time.process_time(), time.thread_time()
            for client in clients:
                status = client.post("/events/cpu/cart", data=body, headers={"HX-Request": "true"}).status_code
                if status != expect:
                    sys.exit(f"add to cart answered {status}, expected {expect}")
            return (time.process_time() - p0) * 1000 / len(clients), (time.thread_time() - t0) * 1000 / len(clients)

        run(plenty, 200)  # warm up: the first requests load templates and compile statements
        # The best of a few rounds: other work on the machine only ever adds to a round.
        held = min(run(plenty, 200) for _ in range(args.rounds))
        refused = min(run(gone, 409) for _ in range(args.rounds))
        db.engine.dispose()
    if args.limits == "redis":
        import redis

        r = redis.Redis.from_url(args.redis_url)
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)
    print(
        f"root {args.root}, limits {args.limits}: CPU per add-to-cart (process / this thread): "
        f"held {held[0]:.2f} / {held[1]:.2f} ms, refused {refused[0]:.2f} / {refused[1]:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
