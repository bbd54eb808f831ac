"""Run the sandbox as its own process: ``python -m storefront.payments.sandbox --port N``
(or ``flask --app wsgi stripe-sandbox --port N``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from werkzeug.serving import make_server

from .config import LiveKeyError, SandboxConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DB = PROJECT_ROOT / "instance" / "stripe-sandbox.db"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m storefront.payments.sandbox", description="Serve the Stripe sandbox.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111)
    p.add_argument("--db", default=os.environ.get("STRIPE_SANDBOX_DB", str(DEFAULT_DB)), help="its SQLite file")
    p.add_argument("--api-key", default=None, help="the one key accepted (default: any sk_test_ key)")
    p.add_argument(
        "--webhook-url",
        action="append",
        default=None,
        help="deliver events here (repeatable); default: STRIPE_SANDBOX_WEBHOOK_URLS (comma-separated). "
        "The only way to set webhook endpoints: no API adds or removes one",
    )
    p.add_argument(
        "--webhook-event",
        action="append",
        default=[],
        help="deliver only events of this type (repeatable; Stripe's enabled_events); default: all",
    )
    p.add_argument("--webhook-secret", default=os.environ.get("STRIPE_WEBHOOK_SECRET") or "whsec_sandbox")
    p.add_argument("--public-url", default=None, help="the sandbox's address as browsers see it")
    p.add_argument("--retry-base", type=float, default=5.0, help="seconds before the first retry; doubles each time")
    p.add_argument("--max-attempts", type=int, default=6)
    p.add_argument("--delivery-timeout", type=float, default=10.0)
    p.add_argument(
        "--delivery-concurrency",
        type=int,
        default=1,
        help="deliveries sent at once (Stripe sends concurrently, in no guaranteed order)",
    )
    p.add_argument("--tick", type=float, default=1.0, help="seconds between expiry sweeps")
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        help="a bank debit settles by itself after this long; negative: only through the control API",
    )
    p.add_argument(
        "--refund-settle-seconds",
        type=float,
        default=10.0,
        help="a pending refund (or one that will fail) settles after this long; negative: only through the control API",
    )
    return p


def webhook_urls_from_environment() -> list[str]:
    """``STRIPE_SANDBOX_WEBHOOK_URLS``: comma-separated URLs."""
    return [url.strip() for url in os.environ.get("STRIPE_SANDBOX_WEBHOOK_URLS", "").split(",") if url.strip()]


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        db_path=args.db,
        api_key=args.api_key,
        webhook_urls=args.webhook_url if args.webhook_url is not None else webhook_urls_from_environment(),
        webhook_events=args.webhook_event,
        webhook_secret=args.webhook_secret,
        public_url=args.public_url,
        retry_base_seconds=args.retry_base,
        max_attempts=args.max_attempts,
        delivery_timeout_seconds=args.delivery_timeout,
        delivery_concurrency=args.delivery_concurrency,
        tick_seconds=args.tick,
        bank_debit_settle_seconds=None if args.settle_seconds < 0 else args.settle_seconds,
        refund_settle_seconds=None if args.refund_settle_seconds < 0 else args.refund_settle_seconds,
    )


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM, then stop the delivery thread and close the socket."""
    from .app import create_sandbox_app

    app = create_sandbox_app(config)
    server = make_server(host, port, app, threaded=True)
    stopping = threading.Event()

    def _stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"Stripe sandbox on http://{host}:{server.server_port} (state in {config.db_path})", flush=True)
    print("Webhooks go to: " + (", ".join(config.webhook_urls) or "nowhere (no --webhook-url)"), flush=True)
    try:
        server.serve_forever()
    finally:
        app.extensions["stripe_sandbox_deliverer"].stop()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except LiveKeyError as error:
        print(f"Refusing to start: {error}", file=sys.stderr)
        return 2
    serve(config, args.host, args.port)
    return 0
