"""Fixtures: the app on a real, migrated database, SQLite and PostgreSQL.

Tests that take ``app`` (or ``client``) run once per backend. PostgreSQL is
``TEST_DATABASE_URL`` (default: the local server, database ``storefront_test``,
recreated per run). Without a reachable server those runs skip, saying why, except
when ``STOREFRONT_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from flask import g, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storefront import create_app
from storefront.extensions import db

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront_test"
REQUIRE_PG = os.environ.get("STOREFRONT_REQUIRE_POSTGRES") == "1"

# Children before parents, for cleaning up between tests.
TABLES = [
    "report_carts_daily",
    "report_money_daily",
    "report_attempts_daily",
    "report_rollup_state",
    "report_carts",
    "report_money",
    "report_tickets",
    "report_attempts",
    "reconcile_items",
    "reconcile_runs",
    "attempt_events",
    "cancellation_orders",
    "event_cancellations",
    "refunds",
    "check_ins",
    "audit_entries",
    "recovery_codes",
    "password_resets",
    "invitations",
    "membership_events",
    "memberships",
    "users",
    "webhook_events",
    "job_leases",
    "mail_outbox",
    "tickets",
    "orders",
    "payment_attempts",
    "cart_items",
    "carts",
    "ticket_types",
    "events",
    "organisers",
]


def pg_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", PG_DEFAULT)
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def _recreate_pg_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory):
    """Per backend, a database URL with the schema migrated, or the reason it is missing."""
    urls: dict[str, str] = {}
    sqlite_path = tmp_path_factory.mktemp("db") / "storefront-test.db"
    urls["sqlite"] = f"sqlite:///{sqlite_path}"
    try:
        _recreate_pg_database(pg_url())
        urls["postgresql"] = pg_url()
    except Exception as error:  # no server: remembered, reported by the fixture below
        urls["postgresql_error"] = f"PostgreSQL at {make_url(pg_url()).render_as_string()} unreachable: {error}"
    for backend in ("sqlite", "postgresql"):
        if backend in urls:
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": urls[backend],
                    "SECRET_KEY": "test",
                    "JOBS_SQLITE_PATH": new_job_queue_path(),
                    **TEST_PAYMENTS,
                }
            )
            with app.app_context():
                from flask_migrate import upgrade

                upgrade()
                db.engine.dispose()
    return urls


def backend_url(database_urls, backend: str) -> str:
    if backend not in database_urls:
        reason = database_urls["postgresql_error"]
        if REQUIRE_PG:
            pytest.fail(reason + " (STOREFRONT_REQUIRE_POSTGRES=1: PostgreSQL tests may not skip)")
        pytest.skip(reason)
    return database_urls[backend]


class FreshRequestClient(FlaskClient):
    """A test client whose every request starts with an empty ``g``.

    The ``app`` fixture keeps one app context pushed for the whole test (the factories
    need it), and Flask reuses it for each request the test makes, so ``g`` would carry
    over from one request (and one client) to the next: Flask-Login's loaded user, the
    CSRF token. In production each request has an app context of its own.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            for name in list(g):
                g.pop(name, None)
        return super().open(*args, **kwargs)


_buyers = itertools.count(1)


def buyer_client(app):
    """A test client for one more buyer, from an address of its own (RFC 2544's range
    for benchmarks): the limits count per client, and tests that play many buyers
    play distinct ones."""
    n = next(_buyers)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"198.18.{n // 256 % 256}.{n % 256}"
    return client


_mail_outbox: dict[str, str] = {}
_job_queues = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _default_mail_outbox(tmp_path_factory):
    """Mail written by any test's app goes to a folder of this run, never to instance/;
    each app's job queue (SQLite) is a file of its own in another folder of the run."""
    _mail_outbox["path"] = str(tmp_path_factory.mktemp("outbox"))
    _mail_outbox["queues"] = str(tmp_path_factory.mktemp("job-queues"))


def new_job_queue_path() -> str:
    """A SQLite file for one more app's job queue, in this run's folder."""
    return str(
        Path(_mail_outbox.get("queues") or "/nonexistent/job-queues-fixture-missing") / f"jobs-{next(_job_queues)}.db"
    )


# Test apps run in demo mode, with the built-in sandbox's credentials given rather than
# generated under instance/ (a test that wants Stripe elsewhere overrides these).
TEST_PAYMENTS = {
    "TESTING": True,
    "DEMO_MODE": True,
    "STRIPE_SANDBOX_KEY": "sk_test_test_apps_built_in_sandbox",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_apps_built_in_sandbox",
}


def make_app(url: str, **overrides):
    config = {
        **TEST_PAYMENTS,
        "MAIL_OUTBOX": _mail_outbox.get("path") or "/nonexistent/outbox-fixture-missing",
        "MAIL_SERVER": None,
        # The real queue, in a file of this app's own; no consumer runs unless the test
        # starts one (tests/jobs_support.py).
        "JOBS_SQLITE_PATH": new_job_queue_path(),
        "JOBS_POLL_SECONDS": 0.1,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        # Test apps serve plain http (the test client, loopback servers): a Secure
        # cookie would not come back from a browser. test_http_security.py tests the defaults.
        "SESSION_COOKIE_SECURE": False,
        "HOLD_MINUTES": 15,
        "MAX_TICKETS_PER_CART": 10,
        "LOW_STOCK_THRESHOLD": 10,
    }
    config.update(overrides)
    app = create_app(config)
    app.test_client_class = FreshRequestClient
    return app


# They refuse UPDATE and DELETE by their triggers; only the tests' cleaning gets past them.
APPEND_ONLY = {"audit_entries", "check_ins", "attempt_events"}


def _delete_append_only(conn, table: str) -> None:
    """Empty an append-only table between tests: its triggers are set aside for this
    transaction only (PostgreSQL), or dropped and created again as they were (SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    triggers = conn.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"), {"table": table}
    ).all()
    for name, _sql in triggers:
        conn.execute(text(f'DROP TRIGGER "{name}"'))
    conn.execute(text(f"DELETE FROM {table}"))
    for _name, sql in triggers:
        conn.execute(text(sql))


def clean(app) -> None:
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in TABLES:
                if table in APPEND_ONLY:
                    _delete_append_only(conn, table)
                else:
                    conn.execute(text(f"DELETE FROM {table}"))
        db.engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def backend(request):
    return request.param


@pytest.fixture
def app(database_urls, backend, request):
    marker = request.node.get_closest_marker("app_config")
    app = make_app(backend_url(database_urls, backend), **(marker.kwargs if marker else {}))
    clean(app)
    with app.app_context():
        yield app
        db.session.remove()
    clean(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def htmx_client(app):
    """A test client whose requests carry htmx's header."""
    client = app.test_client()
    client.environ_base["HTTP_HX_REQUEST"] = "true"
    return client


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
