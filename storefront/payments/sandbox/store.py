"""The sandbox's state: one SQLite file of its own, so a restart loses nothing.

Stripe objects are stored as the JSON the API renders (``data``) plus sandbox-only
state (``internal``: line items, card outcome, when a session lapses). Every write is
one ``BEGIN IMMEDIATE`` transaction on a short-lived connection; a process lock in
front of it keeps the sandbox's own threads from queueing on SQLite's busy timeout.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS objects_kind_seq ON objects (kind, seq);
-- The sweep looks for open sessions and processing payments on every tick.
CREATE INDEX IF NOT EXISTS objects_kind_status ON objects (kind, json_extract(data, '$.status'));
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    body TEXT,
    headers TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    endpoint_url TEXT NOT NULL,
    secret TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    fault TEXT,
    hold_group INTEGER,
    last_status INTEGER,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    remaining INTEGER NOT NULL,
    params TEXT NOT NULL,
    created REAL NOT NULL
);
"""

RESET_TABLES = ("objects", "idempotency", "deliveries", "delivery_attempts", "faults")


class Tx:
    """A write transaction: the connection, and work to run once it has committed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)


class Store:
    """The SQLite file; the schema is created on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._write_lock = threading.RLock()
        self._ready = False
        self._ready_lock = threading.Lock()
        # Held open for the store's life: when the last connection to a WAL database
        # closes, SQLite checkpoints and removes the WAL, about 1 ms per request.
        self._anchor: sqlite3.Connection | None = self._connect()

    def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        # WAL + NORMAL: a commit survives the sandbox crashing (what tests simulate), not
        # the machine losing power; it spares an fsync per commit (3 per API call).
        conn.execute("PRAGMA synchronous = NORMAL")
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.executescript(SCHEMA)
                    self._ready = True
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (WAL: readers see the last commit, never wait)."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction; ``after_commit`` callbacks run once it is durable."""
        with self._write_lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                tx = Tx(conn)
                try:
                    yield tx
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()
        for fn in tx._after_commit:
            fn()

    def reset(self) -> None:
        """Forget every object, event, delivery, fault and idempotency key."""
        with self.write() as tx:
            for table in RESET_TABLES:
                tx.execute(f"DELETE FROM {table}")


# --- objects -------------------------------------------------------------------------


def insert_object(tx: Tx, obj: dict[str, Any], internal: dict[str, Any] | None = None) -> None:
    tx.execute(
        "INSERT INTO objects (id, kind, created, data, internal) VALUES (?, ?, ?, ?, ?)",
        (obj["id"], obj["object"], obj["created"], json.dumps(obj), json.dumps(internal or {})),
    )


def save_object(tx: Tx, obj: dict[str, Any], internal: dict[str, Any] | None = None) -> None:
    if internal is None:
        tx.execute("UPDATE objects SET data = ? WHERE id = ?", (json.dumps(obj), obj["id"]))
    else:
        tx.execute(
            "UPDATE objects SET data = ?, internal = ? WHERE id = ?",
            (json.dumps(obj), json.dumps(internal), obj["id"]),
        )


def load(conn: sqlite3.Connection | Tx, object_id: str, kind: str) -> tuple[dict, dict] | None:
    """The object and its sandbox-only state, or None."""
    row = conn.execute("SELECT data, internal FROM objects WHERE id = ? AND kind = ?", (object_id, kind)).fetchone()
    if row is None:
        return None
    return json.loads(row["data"]), json.loads(row["internal"])


def load_data(conn: sqlite3.Connection | Tx, object_id: str, kind: str) -> dict | None:
    found = load(conn, object_id, kind)
    return found[0] if found else None


def page(
    conn: sqlite3.Connection,
    kind: str,
    *,
    where: list[str],
    args: list[Any],
    limit: int,
    starting_after: int | None = None,
    ending_before: int | None = None,
) -> tuple[list[dict], bool]:
    """One page of ``kind``, newest first (Stripe's order), and whether more follow.

    ``starting_after``/``ending_before`` are the ``seq`` of the cursor object.
    """
    clauses = ["kind = ?", *where]
    params: list[Any] = [kind, *args]
    order = "DESC"
    if starting_after is not None:
        clauses.append("seq < ?")
        params.append(starting_after)
    elif ending_before is not None:
        clauses.append("seq > ?")
        params.append(ending_before)
        order = "ASC"
    rows = conn.execute(
        f"SELECT data FROM objects WHERE {' AND '.join(clauses)} ORDER BY seq {order} LIMIT ?",
        (*params, limit + 1),
    ).fetchall()
    items = [json.loads(r["data"]) for r in rows[:limit]]
    if order == "ASC":
        items.reverse()
    return items, len(rows) > limit


def seq_of(conn: sqlite3.Connection, object_id: str, kind: str) -> int | None:
    row = conn.execute("SELECT seq FROM objects WHERE id = ? AND kind = ?", (object_id, kind)).fetchone()
    return row["seq"] if row else None
