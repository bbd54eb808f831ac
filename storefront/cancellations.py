"""Cancelling an event that has paid orders: the run that refunds each of them in full and
mails its buyer, in the background, resumable and idempotent.

``begin`` is called by ``events.cancel`` inside the transaction that cancels the event (its
sales stop at once): it records the run (``EventCancellation``). The job
(``storefront.jobs`` ``cancel_event``, and the periodic ``resume_cancellations`` for runs a
crash left unfinished) calls ``run``, which takes the event's paid orders one at a time:
under the order's row lock it records the refund (``refunds.request_locked``), the
order's ``CancellationOrder`` row and its mail in ONE transaction, and only after that
commit asks Stripe (``refunds.submit``, with the refund's own idempotency key). So:

* an order with a ``CancellationOrder`` row is never refunded again by a run (a second
  runner waits for the order's lock and then sees the row);
* an order whose refund was recorded but whose Stripe answer was never seen (the process
  died in between) is asked again with the same key: Stripe makes one refund;
* an order without a row is taken by the next run: nobody is missed.

Taking an order voids its valid tickets at once, and an order that took no money (free
tickets) is cancelled: its buyer gets the mail, and nobody gets in with a ticket of an
event that will not happen.

A refund that fails (now or days later) shows as failed on the progress page and can be
retried (``retry``: ``refunds.retry``, and the row follows the new refund). The run
finishes when every paid order has its row and no refund is still unanswered; then its
counts are written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from . import orders, outbox, refunds, ticket_lifecycle
from .audit import Actor, record
from .database import write_transaction
from .extensions import db
from .models import CancellationOrder, Event, EventCancellation, Order, OrderStatus, Refund, RefundStatus, utcnow

log = logging.getLogger(__name__)

PAID = (OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)
JOB_ACTOR_NAME = "event cancellation"


@dataclass(frozen=True)
class Progress:
    orders: int  # orders the run deals with (the paid ones, and those it already did)
    done: int  # orders with a refund that went through or is on its way, or with nothing to refund
    refunded: int  # refunds succeeded
    pending: int  # refunds Stripe is still returning
    failed: int  # refunds that failed (retryable)
    waiting: int  # orders not taken yet, or whose refund Stripe has not answered
    refunded_minor: int
    finished: bool


def paid_orders_of(event_id: int) -> tuple[int, int]:
    """How many paid orders the event has and what can still be refunded of them (for the confirm step)."""
    rows = db.session.execute(
        select(Order.id, Order.total_minor).where(Order.event_id == event_id, Order.status.in_(PAID))
    ).all()
    total = sum(refunds.refundable_minor(order_id) for order_id, _total in rows)
    return len(rows), total


def begin(event: Event, actor: Actor, now: datetime) -> int:
    """Inside ``events.cancel``'s transaction: the run's row (one per event). Returns its id."""
    cancellation = EventCancellation(
        event_id=event.id,
        started_by=actor.name[:254],
        started_by_user_id=actor.user_id,
        started_at=now,
        orders_count=0,
        refunded_count=0,
        failed_count=0,
    )
    db.session.add(cancellation)
    db.session.flush()
    return cancellation.id


def of_event(event_id: int) -> EventCancellation | None:
    return db.session.execute(
        select(EventCancellation).where(EventCancellation.event_id == event_id)
    ).scalar_one_or_none()


def unfinished() -> list[int]:
    ids = list(
        db.session.execute(
            select(EventCancellation.id).where(EventCancellation.finished_at.is_(None)).order_by(EventCancellation.id)
        ).scalars()
    )
    db.session.rollback()
    return ids


def _after_order(order_id: int) -> None:
    """Called after each order's refund is recorded and asked for (a seam where the tests
    stop a run halfway, as a crash would)."""


def _actor_of(cancellation: EventCancellation) -> Actor:
    return Actor(user_id=cancellation.started_by_user_id, name=cancellation.started_by, client_address=None)


def _take(cancellation_id: int, order_id: int, actor: Actor) -> int | None:
    """One order: its refund, its row and its mail in one transaction (or nothing, when a
    run took it already). Returns the refund to submit, if any."""
    with write_transaction():
        refund_id = refunds.request_locked(order_id, _("The event is cancelled"), actor, utcnow())
        # Under the order's lock (taken above even when nothing is refunded): another run
        # that took this order committed its row before letting the lock go.
        if db.session.execute(select(CancellationOrder.id).where(CancellationOrder.order_id == order_id)).first():
            raise _AlreadyTaken()
        db.session.add(CancellationOrder(cancellation_id=cancellation_id, order_id=order_id, refund_id=refund_id))
        # The event will not happen: no ticket of it gets anyone in, whatever Stripe answers
        # (a failed refund is retried; the buyer is told now that the tickets are void).
        ticket_lifecycle.void_valid_of_order(order_id)
        order = db.session.get(Order, order_id)
        if refund_id is None and not (order.stripe_payment_intent_id and order.total_minor > 0):
            orders.move(order, OrderStatus.CANCELLED)  # it took no money: nothing to refund
        outbox.event_cancelled_due(order_id)
    return refund_id


class _AlreadyTaken(Exception):
    pass


def run(cancellation_id: int) -> Progress:
    """Refund every paid order of the run's event not taken yet, ask Stripe again for the
    refunds it has not answered, and finish the run when nothing is left."""
    cancellation = db.session.get(EventCancellation, cancellation_id)
    if cancellation is None:
        return None
    actor = _actor_of(cancellation)
    event_id = cancellation.event_id
    taken = select(CancellationOrder.order_id)
    todo = list(
        db.session.execute(
            select(Order.id)
            .where(Order.event_id == event_id, Order.status.in_(PAID), Order.id.not_in(taken))
            .order_by(Order.id)
        ).scalars()
    )
    db.session.rollback()
    mails = []
    for order_id in todo:
        try:
            refund_id = _take(cancellation_id, order_id, actor)
        except _AlreadyTaken:
            continue
        mails.append(order_id)
        if refund_id is not None:
            refunds.submit(refund_id)
        _after_order(order_id)
    # Refunds recorded by a run that stopped before Stripe answered: the same key again.
    for refund_id in _unanswered(cancellation_id):
        refunds.submit(refund_id)
    _send_mail(cancellation_id)
    return _finish_if_done(cancellation_id)


def _unanswered(cancellation_id: int) -> list[int]:
    ids = list(
        db.session.execute(
            select(Refund.id)
            .join(CancellationOrder, CancellationOrder.refund_id == Refund.id)
            .where(CancellationOrder.cancellation_id == cancellation_id, Refund.status == RefundStatus.REQUESTED.value)
        ).scalars()
    )
    db.session.rollback()
    return ids


def _send_mail(cancellation_id: int) -> None:
    from .jobs import send_mail_soon
    from .models import MailKind, MailOutbox, MailStatus

    ids = list(
        db.session.execute(
            select(MailOutbox.id)
            .join(CancellationOrder, CancellationOrder.order_id == MailOutbox.order_id)
            .where(
                CancellationOrder.cancellation_id == cancellation_id,
                MailOutbox.kind == MailKind.EVENT_CANCELLED.value,
                MailOutbox.status == MailStatus.PENDING.value,
            )
        ).scalars()
    )
    db.session.rollback()
    for mail_id in ids:
        send_mail_soon(mail_id)


def progress(cancellation_id: int) -> Progress:
    cancellation = db.session.get(EventCancellation, cancellation_id)
    rows = db.session.execute(
        select(CancellationOrder.order_id, Refund.status, Refund.amount_minor)
        .outerjoin(Refund, Refund.id == CancellationOrder.refund_id)
        .where(CancellationOrder.cancellation_id == cancellation_id)
    ).all()
    not_taken = db.session.execute(
        select(func.count(Order.id)).where(
            Order.event_id == cancellation.event_id,
            Order.status.in_(PAID),
            Order.id.not_in(select(CancellationOrder.order_id)),
        )
    ).scalar_one()
    statuses = [status for _order, status, _amount in rows]
    succeeded = statuses.count(RefundStatus.SUCCEEDED.value)
    pending = statuses.count(RefundStatus.PENDING.value)
    failed = statuses.count(RefundStatus.FAILED.value)
    requested = statuses.count(RefundStatus.REQUESTED.value)
    nothing_to_refund = statuses.count(None)
    refunded_minor = sum(
        amount
        for _order, status, amount in rows
        if status in (RefundStatus.SUCCEEDED.value, RefundStatus.PENDING.value)
    )
    return Progress(
        orders=len(rows) + not_taken,
        done=succeeded + pending + nothing_to_refund,
        refunded=succeeded,
        pending=pending,
        failed=failed,
        waiting=not_taken + requested,
        refunded_minor=refunded_minor,
        finished=cancellation.finished_at is not None,
    )


def _finish_if_done(cancellation_id: int) -> Progress:
    now = progress(cancellation_id)
    if now.waiting or now.finished:
        db.session.rollback()
        return now
    with write_transaction():
        cancellation = db.session.execute(
            select(EventCancellation).where(EventCancellation.id == cancellation_id).with_for_update()
        ).scalar_one()
        if cancellation.finished_at is None:
            cancellation.finished_at = utcnow()
            cancellation.orders_count = now.orders
            cancellation.refunded_count = now.refunded + now.pending
            cancellation.failed_count = now.failed
            event = db.session.get(Event, cancellation.event_id)
            record(
                _actor_of(cancellation),
                "event.cancellation_finished",
                "event",
                event.id,
                organiser_id=event.organiser_id,
                event_id=event.id,
                after={"orders": now.orders, "refunded": now.refunded + now.pending, "failed": now.failed},
            )
    log.info("cancellation %s: finished (%s)", cancellation_id, now)
    return progress(cancellation_id)


def failed_refunds(cancellation_id: int) -> list[tuple[Order, Refund]]:
    return list(
        db.session.execute(
            select(Order, Refund)
            .join(CancellationOrder, CancellationOrder.order_id == Order.id)
            .join(Refund, Refund.id == CancellationOrder.refund_id)
            .where(CancellationOrder.cancellation_id == cancellation_id, Refund.status == RefundStatus.FAILED.value)
            .order_by(Order.id)
        ).all()
    )


def retry(cancellation_id: int, order_id: int, actor: Actor) -> int:
    """Try a failed refund of the run again (a new refund); the order's row follows it.
    Raises ``refunds.RefundNotRetryable`` when its refund is not failed (a double click)."""
    row_refund = db.session.execute(
        select(CancellationOrder.refund_id).where(
            CancellationOrder.cancellation_id == cancellation_id, CancellationOrder.order_id == order_id
        )
    ).scalar_one_or_none()
    if row_refund is None:
        raise refunds.RefundNotRetryable()
    # The new refund and the row that follows it in one transaction: a crash in between
    # cannot leave the row on the failed refund (and the run's progress wrong).
    with write_transaction():
        new_id = refunds.retry_locked(row_refund, actor, utcnow())
        row = db.session.execute(
            select(CancellationOrder).where(CancellationOrder.order_id == order_id).with_for_update()
        ).scalar_one()
        row.refund_id = new_id
        cancellation = db.session.get(EventCancellation, cancellation_id)
        cancellation.failed_count = max(0, cancellation.failed_count - 1) if cancellation.finished_at else 0
    refunds.submit(new_id)
    return new_id
