"""Engine settings per backend, and the one way to open a write transaction.

SQLite: WAL so readers never wait for the writer, a busy timeout so writers queue
instead of failing, and ``BEGIN IMMEDIATE`` for write transactions. A deferred
transaction that reads first and writes later fails at once with "database is
locked" when another writer committed in between; taking the write lock at BEGIN
makes it wait its turn instead.

PostgreSQL: reads outside ``write_transaction`` run in autocommit, one round trip
per statement, without the BEGIN and ROLLBACK round trips a transaction adds around
a page's one or two SELECTs (each statement reads committed data, as it would in a
READ COMMITTED transaction). ``write_transaction`` opens a real READ COMMITTED
transaction. Stock changes are single conditional UPDATEs, which re-check their
WHERE clause against the latest committed row, so no stronger isolation is needed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

SQLITE_BUSY_TIMEOUT_MS = 30_000

_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_immediate", default=False)


def engine_options(uri: str, pool_size: int) -> dict:
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    # No pre-ping: it is a round trip on every checkout, and a request checks out
    # once or twice. A connection broken by a server restart fails its one request;
    # SQLAlchemy then drops the whole pool, and the next request reconnects.
    return {"pool_size": pool_size, "max_overflow": pool_size, "pool_recycle": 3600, "isolation_level": "AUTOCOMMIT"}


# Execution options of a write transaction's connection. On PostgreSQL it leaves
# autocommit (the engine's default, for reads); the pool restores that on return.
_WRITE_OPTIONS = {"postgresql": {"isolation_level": "READ COMMITTED"}}


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        # PostgreSQL's translate(), which SQLite lacks: the back office's search folds
        # accents with it (storefront.order_search.fold).
        dbapi_conn.create_function("translate", 3, _translate, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")


def _translate(text: str | None, source: str | None, target: str | None) -> str | None:
    """PostgreSQL's translate(text, from, to): each character of ``from`` becomes the one
    at its place in ``to``, or goes when ``to`` is shorter."""
    if text is None or source is None or target is None:
        return None
    table = {ord(a): (target[i] if i < len(target) else None) for i, a in reversed(list(enumerate(source)))}
    return text.translate(table)


# A read transaction that sees one snapshot. PostgreSQL reads are otherwise autocommit: each
# statement sees the database as it is when the statement starts.
_SNAPSHOT_OPTIONS = {"postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}}


@contextmanager
def read_snapshot() -> Iterator[None]:
    """Run the block's reads in one read-only transaction: every query sees the database as
    the first one did (SQLite's deferred BEGIN in WAL mode does the same). For answers made
    of several queries that must agree, such as the payments dashboard's."""
    session = db.session
    session.rollback()
    session.connection(execution_options=_SNAPSHOT_OPTIONS.get(db.engine.dialect.name, {}))
    try:
        yield
    finally:
        session.rollback()


@contextmanager
def rehearsal() -> Iterator[None]:
    """Run the block in a write transaction that is always rolled back: to learn what a
    change would answer without keeping any of it (its exceptions pass through)."""
    session = db.session
    session.rollback()
    token = _immediate.set(True)
    try:
        session.connection(execution_options=_WRITE_OPTIONS.get(db.engine.dialect.name))
    finally:
        _immediate.reset(token)
    try:
        yield
    finally:
        session.rollback()


@contextmanager
def write_transaction(*, durable: bool = True) -> Iterator[None]:
    """Run the block in its own transaction: commit at the end, roll back on error.

    Whatever read transaction the request had open is ended first, so the block
    starts from fresh data and (on SQLite) holds the write lock from its first
    statement.

    ``durable=False`` (PostgreSQL) commits without waiting for the WAL to reach the
    disk. For cart holds only: a crash may lose the last fraction of a second of
    them, whole transactions at a time (counters and carts together), and the buyer
    adds again; while the commit no longer waits on the disk, neither does every
    other buyer queued on the same ticket type's row lock. Orders and payments are
    always durable.
    """
    session = db.session
    session.rollback()
    token = _immediate.set(True)
    try:
        # BEGIN (IMMEDIATE on SQLite) now, while the flag is set
        connection = session.connection(execution_options=_WRITE_OPTIONS.get(db.engine.dialect.name))
    finally:
        _immediate.reset(token)
    try:
        yield
        if not durable and connection.dialect.name == "postgresql":
            # Read at COMMIT, so set just before it: a block that fails never pays for it.
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        session.commit()
    except BaseException:
        session.rollback()
        raise
