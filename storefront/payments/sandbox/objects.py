"""Stored Stripe objects as the API hands them out: one by id (or Stripe's
``resource_missing``), and one page of a list. Times are Unix seconds (UTC)."""

from __future__ import annotations

import time
from typing import Any

from . import params as checks
from . import render
from .errors import resource_missing
from .store import Store, load, page, seq_of


def now() -> int:
    return int(time.time())


def load_existing(conn, object_id: str, kind: str) -> tuple[dict, dict]:
    """The object and its sandbox-only state, or Stripe's resource_missing error."""
    found = load(conn, object_id, kind)
    if found is None:
        raise resource_missing(kind, object_id)
    return found


def list_page(store: Store, kind: str, url: str, params: dict[str, Any], where: list[str], args: list[Any]) -> dict:
    """A Stripe list object of ``kind`` filtered by ``where``, paged by ``limit``,
    ``starting_after`` and ``ending_before``."""
    limit = checks.limit(params)
    cursors = {}
    with store.read() as conn:
        for name in ("starting_after", "ending_before"):
            if params.get(name) is not None:
                seq = seq_of(conn, params[name], kind)
                if seq is None:
                    raise resource_missing(kind, params[name], param=name, status=400)
                cursors[name] = seq
        items, has_more = page(conn, kind, where=where, args=args, limit=limit, **cursors)
    return render.list_object(url, items, has_more)
