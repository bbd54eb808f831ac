"""Settings, read from the environment in one place.

Every setting has a default that runs the demo on a fresh machine: SQLite under
``instance/``, a secret key generated once and kept there, holds of 15 minutes. Payments
have none: either a Stripe key (``STRIPE_SECRET_KEY`` and ``STRIPE_WEBHOOK_SECRET``) or
demo mode (``STOREFRONT_DEMO=1``), which alone mounts the built-in Stripe sandbox.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class ConfigurationError(RuntimeError):
    """The settings cannot run the storefront; the message says what to set."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from None


def _flag(name: str) -> bool | None:
    """``1``/``0`` from the environment; None when unset (the default decides)."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return None
    if raw not in ("0", "1"):
        raise RuntimeError(f"{name} must be 1 or 0, got {raw!r}")
    return raw == "1"


def database_url(instance_path: str) -> str:
    """DATABASE_URL, with the psycopg 3 driver chosen for plain postgresql:// URLs."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "storefront.db")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, else one generated once under instance/."""
    return os.environ.get("SECRET_KEY") or generated_once(instance_path, "secret_key", "", nbytes=32)


def generated_once(instance_path: str, filename: str, prefix: str, nbytes: int = 24) -> str:
    """``prefix`` + a random token, generated once into instance/``filename``.

    Several worker processes may start at once: the file is created exclusively and
    whoever loses the race reads the winner's value, so all workers agree.
    """
    path = Path(instance_path) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(prefix + secrets.token_hex(nbytes))
    return path.read_text().strip()


def stripe_settings(instance_path: str) -> dict:
    """Where payments go (see storefront/payments/gateway.py): Stripe with STRIPE_SECRET_KEY
    (at STRIPE_API_BASE, if set), else the built-in sandbox, in demo mode only."""
    return {
        # STOREFRONT_DEMO=1: the demo (bin/demo) or development. The only way to mount the
        # built-in Stripe sandbox; every page then says that no real payment is taken.
        "DEMO_MODE": os.environ.get("STOREFRONT_DEMO", "").strip() == "1",
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", "").strip() or None,
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/") or None,
        # The origin of the hosted payment page, when it is not where the rest implies
        # (a custom Checkout domain; a sandbox with --public-url): the CSP's form-action.
        "STRIPE_CHECKOUT_ORIGIN": os.environ.get("STRIPE_CHECKOUT_ORIGIN", "").strip().rstrip("/") or None,
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip() or None,
        "STRIPE_SANDBOX_DB": os.environ.get("STRIPE_SANDBOX_DB", "").strip()
        or str(Path(instance_path) / "stripe-sandbox.db"),
        # Where the built-in sandbox delivers its webhooks (comma-separated); `flask demo`
        # adds the storefront's own /webhooks/stripe when this is empty.
        "STRIPE_SANDBOX_WEBHOOK_URLS": [
            url.strip() for url in os.environ.get("STRIPE_SANDBOX_WEBHOOK_URLS", "").split(",") if url.strip()
        ],
    }


# The built-in sandbox's test key and webhook secret: (file under instance/, prefix).
SANDBOX_CREDENTIALS = {
    "STRIPE_SANDBOX_KEY": ("stripe_sandbox_key", "sk_test_"),
    "STRIPE_WEBHOOK_SECRET": ("stripe_sandbox_webhook_secret", "whsec_"),
}


def sandbox_credential(instance_path: str, name: str) -> str:
    """One of ``SANDBOX_CREDENTIALS``, generated once under instance/ (so every worker of
    the demo agrees on it). Only demo mode asks for them."""
    filename, prefix = SANDBOX_CREDENTIALS[name]
    return generated_once(instance_path, filename, prefix)


def mail_settings(instance_path: str) -> dict:
    """Where mail goes (storefront/mail.py): without MAIL_SERVER, .eml files in
    MAIL_OUTBOX; with it, SMTP."""
    return {
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", "").strip() or None,
        "MAIL_PORT": _int("MAIL_PORT", 587 if os.environ.get("MAIL_USE_TLS", "") == "1" else 25),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", "").strip() or None,
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": os.environ.get("MAIL_USE_TLS", "") == "1",
        "MAIL_FROM": os.environ.get("MAIL_FROM", "").strip() or "Storefront <tickets@localhost>",
        # Seconds an SMTP connection may take (a job sends the mail, not the webhook).
        "MAIL_TIMEOUT": _int("MAIL_TIMEOUT", 5),
        # The outbox (storefront/outbox.py): how long a sender's claim on a mail lasts (a
        # sender that died is replaced after it), the first retry's wait (doubling, up to
        # the most), and the tries before a mail waits for a person.
        "MAIL_CLAIM_SECONDS": _float("MAIL_CLAIM_SECONDS", 300),
        "MAIL_RETRY_SECONDS": _float("MAIL_RETRY_SECONDS", 60),
        "MAIL_RETRY_MAX_SECONDS": _float("MAIL_RETRY_MAX_SECONDS", 3600),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 10),
        "MAIL_OUTBOX": os.environ.get("MAIL_OUTBOX", "").strip() or str(Path(instance_path) / "outbox"),
        # The shop's address as buyers reach it: links in mails are built from it.
        "PUBLIC_BASE_URL": (os.environ.get("PUBLIC_BASE_URL", "").strip() or "http://127.0.0.1:5000").rstrip("/"),
    }


def request_limits() -> dict:
    """How much of a request is read (Flask's own settings; larger is a 413, unread).

    The shop's forms are small and urlencoded: the largest, checkout, is an email and
    two names of at most 100 characters per ticket (under 20 KiB encoded for 10
    tickets in any script). Werkzeug holds multipart bodies, which no page sends, to
    the part count and to the field memory too (it checks the latter per read chunk,
    so a multipart body much larger than it is refused whole). Stripe's events are a
    few kilobytes.
    """
    return {
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 64 * 1024),
        "MAX_FORM_MEMORY_SIZE": _int("MAX_FORM_MEMORY_SIZE", 16 * 1024),
        "MAX_FORM_PARTS": _int("MAX_FORM_PARTS", 200),
        "WEBHOOK_MAX_CONTENT_LENGTH": _int("WEBHOOK_MAX_CONTENT_LENGTH", 512 * 1024),
        # An event's cover image as uploaded in the back office (its route alone reads
        # a body this large, plus the form's envelope; storefront/cover_images.py).
        "COVER_IMAGE_MAX_BYTES": _int("COVER_IMAGE_MAX_BYTES", 5 * 1024 * 1024),
    }


def _text(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def limit_settings(max_tickets_per_cart: int) -> dict:
    """Anti-automation limits per client (storefront/limits.py), where they are counted,
    and who the client is. Sized so that a buyer never meets them, and one client
    cannot hold an event's stock."""
    return {
        "RATELIMIT_ENABLED": True,
        # Add-to-cart requests, refused or not: a buyer clicks a few times a minute.
        "LIMIT_ADD_TO_CART": _text("LIMIT_ADD_TO_CART", "30 per minute"),
        # Carts started: one per purchase, or after a hold lapsed.
        "LIMIT_NEW_CARTS": _text("LIMIT_NEW_CARTS", "10 per hour"),
        # Tickets of one event newly held within HOLD_MINUTES: two full carts.
        "LIMIT_TICKETS_PER_EVENT": _int("LIMIT_TICKETS_PER_EVENT", 2 * max_tickets_per_cart),
        # Presses of "Pay", form errors included.
        "LIMIT_CHECKOUT": _text("LIMIT_CHECKOUT", "10 per minute"),
        # Success-page polls that ask Stripe: at most one every 2 s, from 10 s to 30 s.
        "LIMIT_PAYMENT_CHECKS": _text("LIMIT_PAYMENT_CHECKS", "30 per minute"),
        # The door, per member: a door scans every few seconds at the busiest; a live
        # search asks at each pause in typing, and the counters refresh on their own.
        "LIMIT_DOOR_SCANS": _text("LIMIT_DOOR_SCANS", "120 per minute"),
        "LIMIT_DOOR_LOOKUPS": _text("LIMIT_DOOR_LOOKUPS", "240 per minute"),
        "LIMIT_DOOR_EXPORTS": _text("LIMIT_DOOR_EXPORTS", "10 per 10 minutes"),
        # An event's CSV exports, per member: each streams a whole event from the database.
        "LIMIT_STAFF_EXPORTS": _text("LIMIT_STAFF_EXPORTS", "10 per minute"),
        # Downloads of an order's PDF and calendar file: each PDF costs a render.
        "LIMIT_TICKET_DOWNLOADS": _text("LIMIT_TICKET_DOWNLOADS", "20 per minute"),
        # "Lost your tickets?" mails asked for, per client and per email address.
        "LIMIT_LOST_TICKETS_CLIENT": _text("LIMIT_LOST_TICKETS_CLIENT", "5 per 15 minutes"),
        "LIMIT_LOST_TICKETS_ADDRESS": _text("LIMIT_LOST_TICKETS_ADDRESS", "3 per hour"),
        # Cover images uploaded from one address (each is decoded and re-encoded: CPU).
        "LIMIT_COVER_UPLOADS": _text("LIMIT_COVER_UPLOADS", "20 per hour"),
        # Confirmations sent again from the back office: per member, and per order (the
        # order's cap is counted from the outbox, so it holds without the limiter's storage).
        "LIMIT_RESEND_MAIL": _text("LIMIT_RESEND_MAIL", "30 per hour"),
        "RESEND_PER_ORDER_PER_HOUR": _int("RESEND_PER_ORDER_PER_HOUR", 3),
        # Where the limits are counted: unset, in each process's memory; with Redis,
        # across every process and host.
        "REDIS_URL": os.environ.get("REDIS_URL", "").strip() or None,
        # Every key the shop writes in Redis starts with it (one per shop sharing a Redis).
        "REDIS_KEY_PREFIX": _text("REDIS_KEY_PREFIX", "storefront"),
        # Proxies in front of the app (load balancer, CDN): the client is the address
        # the outermost of them saw (storefront/proxies.py). 0: X-Forwarded-For is ignored.
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
    }


def job_settings(instance_path: str) -> dict:
    """The job queue (storefront/jobs.py): in Redis with REDIS_URL, else in a SQLite file."""
    return {
        "JOBS_SQLITE_PATH": os.environ.get("JOBS_SQLITE_PATH", "").strip() or str(Path(instance_path) / "jobs.db"),
        # The longest a SQLite queue's consumer waits before looking for a new job.
        "JOBS_POLL_SECONDS": _float("JOBS_POLL_SECONDS", 1.0),
        # Worker threads of `flask worker`.
        "JOBS_WORKERS": _int("JOBS_WORKERS", 2),
        # The reconciliation job: how often (minutes, a divisor of 60) and how far back.
        "JOBS_RECONCILE_MINUTES": _int("JOBS_RECONCILE_MINUTES", 5),
        # The dashboard's rollup is rebuilt every 5 minutes over this many days back.
        "REPORT_ROLLUP_LOOKBACK_DAYS": _int("REPORT_ROLLUP_LOOKBACK_DAYS", 14),
        "JOBS_RECONCILE_HOURS": _int("JOBS_RECONCILE_HOURS", 24),
    }


DEJAVU = "/usr/share/fonts/truetype/dejavu"
DROID_FALLBACK = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"


def pdf_settings() -> dict:
    """The fonts embedded in the tickets' PDF (storefront/ticket_pdf.py): Debian's
    fonts-dejavu-core, and fonts-droid-fallback for Chinese, Japanese and Korean."""
    fallbacks = os.environ.get("TICKET_PDF_FALLBACK_FONTS")
    return {
        "TICKET_PDF_FONT": _text("TICKET_PDF_FONT", f"{DEJAVU}/DejaVuSans.ttf"),
        "TICKET_PDF_FONT_BOLD": _text("TICKET_PDF_FONT_BOLD", f"{DEJAVU}/DejaVuSans-Bold.ttf"),
        "TICKET_PDF_FALLBACK_FONTS": [p.strip() for p in fallbacks.split(",") if p.strip()]
        if fallbacks is not None
        else [DROID_FALLBACK],
    }


def from_environment(instance_path: str) -> dict:
    max_tickets_per_cart = _int("MAX_TICKETS_PER_CART", 10)
    return {
        **stripe_settings(instance_path),
        **mail_settings(instance_path),
        **limit_settings(max_tickets_per_cart),
        **job_settings(instance_path),
        **pdf_settings(),
        "SECRET_KEY": secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url(instance_path),
        # Minutes a cart holds its tickets after the last addition.
        "HOLD_MINUTES": _int("HOLD_MINUTES", 15),
        # Most tickets one cart may hold, over all ticket types.
        "MAX_TICKETS_PER_CART": max_tickets_per_cart,
        # Under this many left, a ticket type says "only N left".
        "LOW_STOCK_THRESHOLD": _int("LOW_STOCK_THRESHOLD", 10),
        "DB_POOL_SIZE": _int("DB_POOL_SIZE", 5),
        # Minutes without a request after which a staff session ends.
        "ADMIN_IDLE_MINUTES": _int("ADMIN_IDLE_MINUTES", 30),
        # Seconds a reading of the live on-sale view is kept per event and process
        # (storefront/live_sales.py): N organisers watching cost about one. 0: no cache.
        "LIVE_VIEW_CACHE_SECONDS": _float("LIVE_VIEW_CACHE_SECONDS", 2.0),
        # Staff sign-in throttling (storefront/admin/throttle.py), counted like the
        # buyer's limits (limit_settings: REDIS_URL).
        # Wrong staff passwords per account, and wrong passwords or codes per client address.
        "LIMIT_STAFF_SIGN_IN_ACCOUNT": os.environ.get("LIMIT_STAFF_SIGN_IN_ACCOUNT") or "5 per 15 minutes",
        "LIMIT_STAFF_SIGN_IN_ADDRESS": os.environ.get("LIMIT_STAFF_SIGN_IN_ADDRESS") or "20 per 15 minutes",
        # Wrong second-factor codes per account.
        "LIMIT_STAFF_CODES_ACCOUNT": os.environ.get("LIMIT_STAFF_CODES_ACCOUNT") or "5 per 15 minutes",
        # Password-reset mails asked for, per email and per client address.
        "LIMIT_STAFF_RESET_ACCOUNT": os.environ.get("LIMIT_STAFF_RESET_ACCOUNT") or "3 per hour",
        "LIMIT_STAFF_RESET_ADDRESS": os.environ.get("LIMIT_STAFF_RESET_ADDRESS") or "10 per hour",
        # Changes one signed-in member makes in the back office (every POST but the door's,
        # which has its own limits): far above a person's pace, low enough that a stolen
        # session or a runaway script cannot hammer refunds or mails.
        "LIMIT_STAFF_ACTIONS": os.environ.get("LIMIT_STAFF_ACTIONS") or "60 per minute",
        **request_limits(),
        # None: Secure unless in demo mode (storefront/http_security.py settles it).
        "SESSION_COOKIE_SECURE": _flag("SESSION_COOKIE_SECURE"),
        "BABEL_DEFAULT_LOCALE": "en",
        "LANGUAGES": ["en", "fr"],
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    }
