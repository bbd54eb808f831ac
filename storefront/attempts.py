"""The one owner of ``PaymentAttempt.status``: the table of legal transitions, and the
only code that writes the column.

An attempt is one Checkout Session, from our side (``models.AttemptStatus`` says what
each status means). Everything that changes one goes through ``move`` (an attempt
loaded in the caller's transaction) or ``move_where`` (one conditional UPDATE, for
attempts not loaded); both refuse a transition the table does not list, so a new path
through the lifecycle is a change to this table, reviewed as such, and never a stray
assignment somewhere.

Why the less obvious edges exist:

* expired → open: closing a cart's sessions marks them expired *before* asking Stripe
  (so Stripe's ``checkout.session.expired`` finds them ended); if Stripe cannot be asked,
  or says the session was paid meanwhile, they are opened again.
* expired / failed → paid, refunding, amount_mismatch: a late payment. The buyer paid a
  session we had already given up on; fulfilment decides, as for any paid session.
* processing → expired: Stripe's ``checkout.session.expired`` for a session whose bank
  debit we saw start is taken at its word.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update

from .extensions import db
from .models import AttemptStatus, PaymentAttempt

S = AttemptStatus
_PAID_ENDINGS = {S.PAID, S.REFUNDING, S.AMOUNT_MISMATCH}

TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    S.CREATING: frozenset({S.OPEN, S.FAILED, S.EXPIRED, S.PROCESSING, *_PAID_ENDINGS}),
    S.OPEN: frozenset({S.EXPIRED, S.FAILED, S.PROCESSING, *_PAID_ENDINGS}),
    S.PROCESSING: frozenset({S.FAILED, S.EXPIRED, *_PAID_ENDINGS}),
    S.EXPIRED: frozenset({S.OPEN, *_PAID_ENDINGS}),
    S.FAILED: frozenset(_PAID_ENDINGS),
    S.REFUNDING: frozenset({S.REFUNDED}),
    S.PAID: frozenset(),
    S.REFUNDED: frozenset(),
    S.AMOUNT_MISMATCH: frozenset(),
}


class IllegalAttemptTransition(RuntimeError):
    """A programming error: code asked for a move the lifecycle does not have."""

    def __init__(self, current: str, wanted: AttemptStatus) -> None:
        super().__init__(f"a payment attempt cannot go from {current} to {wanted.value}")


def may_move(current: str | AttemptStatus, to: AttemptStatus) -> bool:
    return to in TRANSITIONS[AttemptStatus(current)]


def move(attempt: PaymentAttempt, to: AttemptStatus, now: datetime) -> None:
    """Move a loaded attempt (locked by the caller where a race matters) to ``to``."""
    if not may_move(attempt.status, to):
        raise IllegalAttemptTransition(attempt.status, to)
    attempt.status = to.value
    attempt.updated_at = now


def move_where(*criteria: Any, from_: Iterable[AttemptStatus], to: AttemptStatus, now: datetime, **values: Any) -> int:
    """One UPDATE: every attempt matching ``criteria`` whose status is in ``from_`` goes to
    ``to`` (with ``values`` set too); returns how many did. Each ``from_`` → ``to`` must be
    legal: the statement cannot ask row by row."""
    sources = list(from_)
    for source in sources:
        if not may_move(source, to):
            raise IllegalAttemptTransition(source.value, to)
    return db.session.execute(
        update(PaymentAttempt)
        .where(*criteria, PaymentAttempt.status.in_([s.value for s in sources]))
        .values(status=to.value, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
