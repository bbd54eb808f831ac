"""Signed webhook deliveries, sent by one background thread, retried with backoff.

A delivery is a row (``deliveries``) created with the event; every try is logged in
``delivery_attempts``. The thread also runs the sweep (expiry, bank-debit
settlement), so "a session whose expires_at passed becomes expired" needs no cron.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from .service import Sandbox
from .store import load_data

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
# Endpoints are reached directly, whatever *_proxy variables the environment carries.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.payload" keyed by the secret>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Deliverer:
    """The background loop: sweep, then send every delivery that is due."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders: list[threading.Thread] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stripe-sandbox-deliveries", daemon=True)
            self._thread.start()
            # More senders, each taking the next due delivery as soon as it is free.
            self._senders = [
                threading.Thread(target=self._send_loop, name=f"stripe-sandbox-sender-{n}", daemon=True)
                for n in range(1, self.sandbox.config.delivery_concurrency)
            ]
            for sender in self._senders:
                sender.start()

    def stop(self, timeout: float = 10) -> None:
        """Stop the loop, then close the sandbox's database."""
        self._stop.set()
        self.sandbox.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for sender in self._senders:
            sender.join(timeout)
        self._senders = []
        self.sandbox.store.close()

    def _run(self) -> None:
        """The sweep, and the first (with ``delivery_concurrency`` 1, the only) sender."""
        tick = self.sandbox.config.tick_seconds
        while not self._stop.is_set():
            self.sandbox.wake.clear()
            try:
                self.sandbox.sweep()
                self.run_due()
            except Exception:  # the loop must outlive one bad row
                log.exception("stripe sandbox: delivery loop failed; continuing")
            self.sandbox.wake.wait(min(tick, self._seconds_to_next_due()))

    def _send_loop(self) -> None:
        tick = self.sandbox.config.tick_seconds
        while not self._stop.is_set():
            # Cleared before looking, so a delivery made after the look wakes the wait.
            self.sandbox.wake.clear()
            try:
                if self.run_due():
                    continue
            except Exception:
                log.exception("stripe sandbox: delivery sender failed; continuing")
            self.sandbox.wake.wait(min(tick, self._seconds_to_next_due()))

    def _seconds_to_next_due(self) -> float:
        with self.sandbox.store.read() as conn:
            row = conn.execute("SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE state = 'pending'").fetchone()
        if row["due"] is None:
            return self.sandbox.config.tick_seconds
        return max(0.0, row["due"] - time.time())

    def run_due(self) -> int:
        """Send every delivery due now, oldest due first; returns how many were tried.
        With several senders, each runs this; a claim is a write transaction, so no
        delivery is sent twice."""
        tried = 0
        while not self._stop.is_set():
            claimed = self._claim()
            if claimed is None:
                return tried
            self._send(claimed)
            tried += 1
        return tried

    def _claim(self) -> dict[str, Any] | None:
        with self.sandbox.store.write() as tx:
            row = tx.execute(
                "SELECT * FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, id LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            tx.execute("UPDATE deliveries SET state = 'sending', updated = ? WHERE id = ?", (time.time(), row["id"]))
            payload = tx.execute("SELECT data FROM objects WHERE id = ?", (row["event_id"],)).fetchone()["data"]
            return {**dict(row), "payload": payload}

    def _send(self, delivery: dict[str, Any]) -> None:
        config = self.sandbox.config
        # The stored JSON is sent byte for byte: the signature covers exactly these bytes.
        payload: str = delivery["payload"]
        signature = sign(payload, delivery["secret"])
        request = urllib.request.Request(
            delivery["endpoint_url"],
            data=payload.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) storefront-sandbox",
            },
        )
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            with _OPENER.open(request, timeout=config.delivery_timeout_seconds) as response:
                status = response.status
                response.read()
        except urllib.error.HTTPError as http_error:
            status = http_error.code
            http_error.close()
        except Exception as exc:  # connection refused, timeout, reset …
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - started) * 1000)
        attempt = delivery["attempts"] + 1
        ok = status is not None and 200 <= status < 300
        now = time.time()
        with self.sandbox.store.write() as tx:
            tx.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, duration_ms, status, error, "
                "signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (delivery["id"], attempt, now, duration_ms, status, error, signature),
            )
            if ok:
                state, due = "delivered", None
            elif attempt >= config.max_attempts:
                state, due = "failed", None
            else:
                state = "pending"
                due = now + min(config.retry_base_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            tx.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, "
                "last_error = ?, updated = ? WHERE id = ?",
                (state, attempt, due, status, error, now, delivery["id"]),
            )
            if state != "pending":
                # pending_webhooks on the event counts the endpoints still waiting for it.
                ev = load_data(tx, delivery["event_id"], "event")
                waiting = tx.execute(
                    "SELECT COUNT(DISTINCT endpoint_url) AS n FROM deliveries WHERE event_id = ? AND state IN "
                    "('pending', 'sending', 'held')",
                    (delivery["event_id"],),
                ).fetchone()["n"]
                if ev is not None and ev["pending_webhooks"] != waiting:
                    ev["pending_webhooks"] = waiting
                    tx.execute("UPDATE objects SET data = ? WHERE id = ?", (json.dumps(ev), ev["id"]))


def deliveries(sandbox: Sandbox, event_id: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
    """The delivery log, with each attempt (for the control API and tests)."""
    with sandbox.store.read() as conn:
        where, args = [], []
        if event_id:
            where.append("event_id = ?")
            args.append(event_id)
        if event_type:
            where.append("event_type = ?")
            args.append(event_type)
        rows = conn.execute(
            "SELECT id, event_id, event_type, endpoint_url, state, attempts, next_attempt_at, fault, "
            "last_status, last_error, created "
            "FROM deliveries" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id",
            args,
        ).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["attempt_log"] = [
                dict(a)
                for a in conn.execute(
                    "SELECT attempt, at, duration_ms, status, error FROM delivery_attempts WHERE delivery_id = "
                    "? ORDER BY id",
                    (row["id"],),
                )
            ]
            out.append(item)
    return out
