"""Events: recorded in the transaction of the change they describe, listed through
``/v1/events``, and scheduled for delivery to every webhook endpoint of the sandbox's
configuration (``webhooks`` sends them). Delivery faults (``faults``) act here, as
deliveries are scheduled."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import faults, render
from . import params as checks
from .config import SandboxConfig
from .errors import invalid_request, resource_missing
from .objects import list_page, now
from .store import Store, Tx, insert_object, load_data


@dataclass
class RequestInfo:
    """The API request that caused a change, for the ``request`` field of its events."""

    id: str | None = None
    idempotency_key: str | None = None


class Events:
    """Recording, listing and scheduling events."""

    def __init__(self, store: Store, config: SandboxConfig, wake: threading.Event) -> None:
        self.store = store
        self.config = config
        self.wake = wake

    def list(self, params: dict[str, Any]) -> dict:
        checks.only(
            params,
            {"type", "types", "created", "delivery_success", "limit", "starting_after", "ending_before", "expand"},
        )
        where: list[str] = []
        args: list[Any] = []
        checks.created_filter(params.get("created"), where, args)
        if params.get("type") is not None and params.get("types") is not None:
            raise invalid_request("You may only specify one of these parameters: type, types.", param="types")
        types = params.get("types")
        if params.get("type") is not None:
            pattern = params["type"]
            if "*" in pattern:
                where.append("json_extract(data, '$.type') LIKE ?")
                args.append(pattern.replace("*", "%"))
            else:
                where.append("json_extract(data, '$.type') = ?")
                args.append(pattern)
        elif types is not None:
            if not isinstance(types, list) or not types:
                raise invalid_request("Invalid array", param="types")
            where.append(f"json_extract(data, '$.type') IN ({','.join('?' * len(types))})")
            args.extend(types)
        success = params.get("delivery_success")
        if success is not None:
            if success not in ("true", "false"):
                raise invalid_request("Invalid boolean: " + str(success), param="delivery_success")
            failing = "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = objects.id AND d.state <> 'delivered')"
            where.append(f"NOT {failing}" if success == "true" else failing)
        return list_page(self.store, "event", "/v1/events", params, where, args)

    def get(self, event_id: str) -> dict:
        with self.store.read() as conn:
            ev = load_data(conn, event_id, "event")
        if ev is None:
            raise resource_missing("event", event_id)
        return ev

    def emit(
        self, tx: Tx, type_: str, obj: dict, previous: dict | None = None, *, req: RequestInfo | None = None
    ) -> dict:
        """Record an event about ``obj`` (as it is now) and schedule its deliveries."""
        # Endpoints come from the configuration only: no API adds, changes or removes one.
        enabled = self.config.webhook_events
        endpoints = [] if enabled and type_ not in enabled else list(self.config.webhook_urls)
        ev = render.event(
            created=now(),
            type_=type_,
            obj=copy.deepcopy(obj),
            previous_attributes=previous,
            pending_webhooks=len(endpoints),
            request_id=req.id if req else None,
            idempotency_key=req.idempotency_key if req else None,
        )
        insert_object(tx, ev)
        for url in endpoints:
            self._schedule(tx, ev, url, self.config.webhook_secret)
        tx.after_commit(self.wake.set)
        return ev

    def _schedule(self, tx: Tx, ev: dict, url: str, secret: str) -> None:
        now_ = time.time()
        state, due, group, copies = "pending", now_, None, 1
        fault = faults.take(tx, faults.DELIVERY_KINDS, event_type=ev["type"])
        if fault:
            if fault["kind"] == "duplicate":
                copies = 2
            elif fault["kind"] == "delay":
                due = now_ + float(fault["seconds"])
            elif fault["kind"] == "drop":
                state, due = "dropped", None
            elif fault["kind"] == "reorder":
                state, group = "held", fault["id"]
        for _ in range(copies):
            tx.execute(
                "INSERT INTO deliveries (event_id, event_type, endpoint_url, secret, state, next_attempt_at, "
                "fault, hold_group, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ev["id"], ev["type"], url, secret, state, due, fault["kind"] if fault else None, group, now_, now_),
            )
        if fault and fault["kind"] == "reorder" and fault["remaining"] == 0:
            release_held(tx, group)


def release_held(tx: Tx, group: int | None = None) -> None:
    """Send held (reordered) deliveries, newest first."""
    rows = tx.execute(
        "SELECT id FROM deliveries WHERE state = 'held'"
        + (" AND hold_group = ?" if group is not None else "")
        + " ORDER BY id DESC",
        (group,) if group is not None else (),
    ).fetchall()
    now_ = time.time()
    for i, row in enumerate(rows):
        tx.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated = ? WHERE id = ?",
            (now_ + i * 0.001, now_, row["id"]),
        )
