"""``Idempotency-Key`` as Stripe keeps it: same key and parameters → the first answer
again (``Idempotent-Replayed: true``); same key, other parameters → ``idempotency_error``;
a request still running with that key → 409. A request refused with a 400
``invalid_request_error`` saves nothing, so its key can be used again. Keys last 24 h."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from flask import Response

from .errors import ApiError
from .events import RequestInfo
from .store import Store

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
MAX_KEY_LENGTH = 255


def run_idempotent(
    store: Store,
    key: str,
    method: str,
    path: str,
    params: dict[str, Any],
    req: RequestInfo,
    run: Callable[[], dict],
) -> Response:
    """Answer ``run()`` once per key; later requests with the key get what it answered."""
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(400, "invalid_request_error", "Idempotency-Key must be at most 255 characters long.")
    fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
    now = time.time()
    with store.write() as tx:
        tx.execute("DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL_SECONDS,))
        row = tx.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
        if row is None:
            tx.execute(
                "INSERT INTO idempotency (key, method, path, fingerprint, state, created) VALUES (?, ?, ?, "
                "?, 'running', ?)",
                (key, method, path, fingerprint, now),
            )
    if row is not None:
        if row["fingerprint"] != fingerprint:
            raise ApiError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
            )
        if row["state"] == "running":
            raise ApiError(
                409,
                "invalid_request_error",
                "There is currently another in-progress request using this Stripe token (probably the same "
                "idempotency key). Please try again.",
                code="idempotency_key_in_use",
            )
        response = Response(row["body"], status=row["status"], mimetype="application/json")
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Original-Request"] = row["headers"] or ""
        response.headers["Idempotency-Key"] = key
        return response
    try:
        status, body = 200, run()
    except ApiError as error:
        if error.status == 400 and error.type == "invalid_request_error":
            # Failed validation: Stripe saves nothing, so the key may be used again.
            with store.write() as tx:
                tx.execute("DELETE FROM idempotency WHERE key = ?", (key,))
            raise
        status, body = error.status, error.body()
    except BaseException:
        with store.write() as tx:
            tx.execute("DELETE FROM idempotency WHERE key = ?", (key,))
        raise
    text = json.dumps(body, indent=2)
    with store.write() as tx:
        tx.execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ?, headers = ? WHERE key = ?",
            (status, text, req.id, key),
        )
    response = Response(text, status=status, mimetype="application/json")
    response.headers["Idempotency-Key"] = key
    response.headers["Original-Request"] = req.id
    return response
