"""Misbehaviour on demand, for tests: each fault is a row that counts down as it fires.

Delivery faults act on the webhook deliveries created while they are armed:
``duplicate`` (deliver twice), ``delay`` (by ``seconds``), ``drop`` (never deliver),
``reorder`` (hold the next ``count`` deliveries, then send them newest first).
API faults act on the next matching ``/v1`` call: ``api_error`` (answer ``status``,
500 by default) and ``connection_error`` (close the connection without an answer,
``when`` = ``before`` the request runs or ``after`` it has run and been saved).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .store import Tx

DELIVERY_KINDS = ("duplicate", "delay", "drop", "reorder")
API_KINDS = ("api_error", "connection_error")
KINDS = DELIVERY_KINDS + API_KINDS


class FaultSpecError(ValueError):
    """A fault request the sandbox cannot arm."""


def arm(tx: Tx, spec: dict[str, Any]) -> dict[str, Any]:
    """Store a fault from its JSON description; returns it with its id."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}")
    count = spec.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise FaultSpecError("count must be a positive integer")
    params = {k: v for k, v in spec.items() if k not in ("kind", "count")}
    if kind == "delay" and not isinstance(params.get("seconds"), (int, float)):
        raise FaultSpecError("delay needs seconds")
    if kind == "connection_error" and params.setdefault("when", "before") not in ("before", "after"):
        raise FaultSpecError("when must be before or after")
    if kind == "api_error":
        params.setdefault("status", 500)
    cur = tx.execute(
        "INSERT INTO faults (kind, remaining, params, created) VALUES (?, ?, ?, ?)",
        (kind, count, json.dumps(params), time.time()),
    )
    return {"id": cur.lastrowid, "kind": kind, "count": count, **params}


def take(
    tx: Tx, kinds: tuple[str, ...], *, event_type: str | None = None, method: str | None = None, path: str | None = None
) -> dict[str, Any] | None:
    """Fire the oldest armed fault of ``kinds`` that matches, counting it down; None if none."""
    rows = tx.execute(
        "SELECT id, kind, remaining, params FROM faults WHERE remaining > 0 AND kind IN "
        f"({','.join('?' * len(kinds))}) ORDER BY id",
        kinds,
    ).fetchall()
    for row in rows:
        params = json.loads(row["params"])
        if event_type and params.get("event_type") not in (None, event_type):
            continue
        if method and params.get("method") not in (None, method):
            continue
        if path and not path.startswith(params.get("path") or ""):
            continue
        tx.execute("UPDATE faults SET remaining = remaining - 1 WHERE id = ?", (row["id"],))
        return {"id": row["id"], "kind": row["kind"], "remaining": row["remaining"] - 1, **params}
    return None


def any_armed(store, kinds: tuple[str, ...]) -> bool:
    """Whether a fault of ``kinds`` is waiting (cheap: the common answer is no)."""
    with store.read() as conn:
        row = conn.execute(
            f"SELECT 1 FROM faults WHERE remaining > 0 AND kind IN ({','.join('?' * len(kinds))}) LIMIT 1", kinds
        ).fetchone()
    return row is not None


def listing(tx_or_conn) -> list[dict[str, Any]]:
    rows = tx_or_conn.execute("SELECT id, kind, remaining, params FROM faults ORDER BY id").fetchall()
    return [{"id": r["id"], "kind": r["kind"], "remaining": r["remaining"], **json.loads(r["params"])} for r in rows]


def clear(tx: Tx) -> None:
    tx.execute("DELETE FROM faults")
