"""The audit log: who did what in the back office, when, from where, before → after.

``record`` adds an entry to the transaction the caller has open, so an entry exists if
and only if the change it describes was committed. Domain functions call it; views never
do. Nothing updates or deletes an entry: the table's triggers refuse it (migration 0005).

The reading side pages through an organiser's entries (optionally one event's), newest
first, and a user's own sign-in history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from .extensions import db
from .staff_models import AuditEntry

PAGE_SIZE = 50


@dataclass(frozen=True)
class Actor:
    """Who acts, as the audit log names them: an account (with the address its request
    came from), or the command line."""

    user_id: int | None
    name: str
    client_address: str | None = None

    @classmethod
    def command_line(cls) -> Actor:
        return cls(user_id=None, name="command line")


def record(
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object = None,
    *,
    organiser_id: int | None = None,
    event_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry inside the caller's open transaction (``write_transaction``)."""
    entry = AuditEntry(
        user_id=actor.user_id,
        actor=actor.name[:254],
        client_address=(actor.client_address or None) and actor.client_address[:64],
        organiser_id=organiser_id,
        event_id=event_id,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        action=action,
        before=_json(before),
        after=_json(after),
    )
    db.session.add(entry)
    return entry


def _json(values: dict[str, Any] | None) -> str | None:
    if values is None:
        return None
    return json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)


def changes(entry: AuditEntry) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each field the entry names, in name order."""
    before = json.loads(entry.before) if entry.before else {}
    after = json.loads(entry.after) if entry.after else {}
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())]


@dataclass(frozen=True)
class Page:
    entries: list[AuditEntry]
    number: int
    pages: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def organiser_log(organiser_id: int, *, event_id: int | None = None, page: int = 1, per_page: int = PAGE_SIZE) -> Page:
    """An organiser's entries, newest first; only one event's when ``event_id`` is given."""
    conditions = [AuditEntry.organiser_id == organiser_id]
    if event_id is not None:
        conditions.append(AuditEntry.event_id == event_id)
    total = db.session.execute(select(func.count(AuditEntry.id)).where(*conditions)).scalar_one()
    pages = max(1, -(-total // per_page))
    number = min(max(1, page), pages)
    entries = list(
        db.session.execute(
            select(AuditEntry)
            .where(*conditions)
            .order_by(AuditEntry.id.desc())
            .limit(per_page)
            .offset((number - 1) * per_page)
        ).scalars()
    )
    return Page(entries=entries, number=number, pages=pages, total=total)


SIGN_IN_ACTIONS = ("signed_in", "sign_in_failed", "two_factor_failed", "signed_out", "password_changed")


def account_history(user_id: int, limit: int = 10) -> list[AuditEntry]:
    """The latest sign-ins, failed sign-ins and password changes of an account, for its owner to see."""
    return list(
        db.session.execute(
            select(AuditEntry)
            .where(AuditEntry.user_id == user_id, AuditEntry.action.in_(SIGN_IN_ACTIONS))
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        ).scalars()
    )
