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
* amount_mismatch → refunding: a person refunds, from the reconciliation inbox
  (``reconcile.refund_item``), a payment made for another amount than asked; it is
  ``refunded`` once Stripe answers (no order is ever made for it).
* processing → expired: Stripe's ``checkout.session.expired`` for a session whose bank
  debit we saw start is taken at its word.

Every move also appends a row to the attempt's timeline (``AttemptEvent``, kind
``moved``) in the same transaction: for ``move`` one more row in the caller's flush, for
``move_where`` one INSERT of the rows its UPDATE returned. A failed try that leaves the
status as it was is recorded by ``record_failed_try``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import insert, update

from .extensions import db
from .models import AttemptEvent, AttemptEventKind, AttemptStatus, PaymentAttempt

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
    S.AMOUNT_MISMATCH: frozenset({S.REFUNDING}),
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
    failed = to == S.FAILED
    db.session.add(
        AttemptEvent(
            attempt=attempt,
            created_at=now,
            kind=AttemptEventKind.MOVED.value,
            from_status=attempt.status,
            to_status=to.value,
            stripe_payment_intent_id=attempt.stripe_payment_intent_id,
            # A failure recorded on the attempt as it ends (checkout's own errors) goes with it.
            error_type=attempt.error_type if failed else None,
            error_code=attempt.error_code if failed else None,
            decline_code=attempt.decline_code if failed else None,
            error_message=attempt.error_message if failed else None,
        )
    )
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
    moved = db.session.execute(
        update(PaymentAttempt)
        .where(*criteria, PaymentAttempt.status.in_([s.value for s in sources]))
        .values(status=to.value, updated_at=now, **values)
        .returning(PaymentAttempt.id, PaymentAttempt.stripe_payment_intent_id)
        .execution_options(synchronize_session=False)
    ).all()
    if moved:
        # The UPDATE cannot say which source each row left: named when there was one.
        from_status = sources[0].value if len(sources) == 1 else None
        db.session.execute(
            insert(AttemptEvent.__table__),
            [
                {
                    "attempt_id": attempt_id,
                    "created_at": now,
                    "kind": AttemptEventKind.MOVED.value,
                    "from_status": from_status,
                    "to_status": to.value,
                    "stripe_payment_intent_id": payment_intent_id,
                    **{name: values.get(name) for name in _ERROR_FIELDS},
                }
                for attempt_id, payment_intent_id in moved
            ],
        )
    return len(moved)


_ERROR_FIELDS = ("error_type", "error_code", "decline_code", "error_message")


def record_failed_try(attempt: PaymentAttempt, now: datetime, *, payment_intent_id: str | None, error: Any) -> None:
    """One failed try inside the attempt's session (a decline, a failed 3-D Secure step, a
    failed bank debit), as Stripe's ``last_payment_error`` reports it: recorded on the
    attempt (its last failure) and appended to its timeline, in the caller's transaction.
    The status does not move: the session stays open, the buyer may try again."""
    if payment_intent_id:
        attempt.stripe_payment_intent_id = payment_intent_id
    # Stripe's last_payment_error: type, code, decline_code, message.
    details = {name: getattr(error, name.removeprefix("error_"), None) for name in _ERROR_FIELDS}
    if error is not None:
        for name, value in details.items():
            setattr(attempt, name, value)
    attempt.updated_at = now
    db.session.add(
        AttemptEvent(
            attempt=attempt,
            created_at=now,
            kind=AttemptEventKind.TRY_FAILED.value,
            stripe_payment_intent_id=attempt.stripe_payment_intent_id,
            **details,
        )
    )


def status_words() -> dict[str, str]:
    """Each status as the back office says it (the timeline, the attempts export)."""
    return {
        AttemptStatus.CREATING: _("Starting"),
        AttemptStatus.OPEN: _("Open (buyer on the payment page)"),
        AttemptStatus.PROCESSING: _("Bank debit processing"),
        AttemptStatus.PAID: _("Paid"),
        AttemptStatus.EXPIRED: _("Expired"),
        AttemptStatus.FAILED: _("Failed"),
        AttemptStatus.REFUNDING: _("Refunding (paid, no tickets left)"),
        AttemptStatus.REFUNDED: _("Refunded (paid, no tickets left)"),
        AttemptStatus.AMOUNT_MISMATCH: _("Paid another amount: for a person"),
    }
