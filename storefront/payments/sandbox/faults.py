"""Misbehaviour on demand, for tests: each fault is a row that counts down as it fires.

Delivery faults act on the webhook deliveries created while they are armed:
``duplicate`` (deliver twice), ``delay`` (by ``seconds``), ``drop`` (never deliver),
``reorder`` (hold the next ``count`` deliveries, then send them newest first).
API faults act on the next matching ``/v1`` call: ``api_error`` (answer ``status``,
500 by default) and ``connection_error`` (close the connection without an answer,
``when`` = ``before`` the request runs or ``after`` it has run and been saved).

Counts are at most ``MAX_COUNT`` and delays at most ``MAX_DELAY_SECONDS``; a fault with
a field of the wrong type, or one its kind does not take, is refused.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from .store import Tx

DELIVERY_KINDS = ("duplicate", "delay", "drop", "reorder")
API_KINDS = ("api_error", "connection_error")
KINDS = DELIVERY_KINDS + API_KINDS


class FaultSpecError(ValueError):
    """A fault request the sandbox cannot arm."""


# Bounds, so that no caller can arm a fault that outlives the test run.
MAX_COUNT = 1000
MAX_DELAY_SECONDS = 600
MAX_TEXT = 200  # event_type and path
# The fields each kind takes besides ``kind`` and ``count``.
FIELDS = {
    "duplicate": {"event_type"},
    "delay": {"event_type", "seconds"},
    "drop": {"event_type"},
    "reorder": {"event_type"},
    "api_error": {"method", "path", "status"},
    "connection_error": {"method", "path", "when"},
}
METHODS = ("GET", "POST", "DELETE")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check(spec: Any) -> dict[str, Any]:
    """The fault described by ``spec`` (a JSON object), with its defaults; raises
    ``FaultSpecError`` saying what is wrong with it."""
    if not isinstance(spec, dict):
        raise FaultSpecError("the fault must be a JSON object")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}")
    unknown = sorted(set(spec) - FIELDS[kind] - {"kind", "count"})
    if unknown:
        raise FaultSpecError(
            f"a {kind} fault takes no {', '.join(unknown)} (it takes {', '.join(sorted(FIELDS[kind]))})"
        )
    count = spec.get("count", 1)
    if not _integer(count) or not 1 <= count <= MAX_COUNT:
        raise FaultSpecError(f"count must be an integer from 1 to {MAX_COUNT}")
    params = {k: v for k, v in spec.items() if k not in ("kind", "count")}
    for name in ("event_type", "path"):
        if name in params and (not isinstance(params[name], str) or not 1 <= len(params[name]) <= MAX_TEXT):
            raise FaultSpecError(f"{name} must be a string of 1 to {MAX_TEXT} characters")
    if "path" in params and not params["path"].startswith("/v1"):
        raise FaultSpecError("path must start with /v1 (API faults act on Stripe's API only)")
    if "method" in params and params["method"] not in METHODS:
        raise FaultSpecError(f"method must be one of {', '.join(METHODS)}")
    if kind == "delay":
        seconds = params.get("seconds")
        if seconds is None:
            raise FaultSpecError("delay needs seconds")
        if not _number(seconds) or not 0 < seconds <= MAX_DELAY_SECONDS:
            raise FaultSpecError(f"seconds must be a number above 0 and at most {MAX_DELAY_SECONDS}")
    if kind == "connection_error" and params.setdefault("when", "before") not in ("before", "after"):
        raise FaultSpecError("when must be before or after")
    if kind == "api_error":
        status = params.setdefault("status", 500)
        if not _integer(status) or not 400 <= status <= 599:
            raise FaultSpecError("status must be an HTTP error status, an integer from 400 to 599")
    return {"kind": kind, "count": count, **params}


def arm(tx: Tx, spec: Any) -> dict[str, Any]:
    """Store a fault from its JSON description (checked by ``check``); returns it with its id."""
    fault = check(spec)
    params = {k: v for k, v in fault.items() if k not in ("kind", "count")}
    cur = tx.execute(
        "INSERT INTO faults (kind, remaining, params, created) VALUES (?, ?, ?, ?)",
        (fault["kind"], fault["count"], json.dumps(params), time.time()),
    )
    return {"id": cur.lastrowid, **fault}


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
