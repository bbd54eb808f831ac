"""Refunds of orders, and the one owner of ``Refund.status``.

A refund is a row of its own, one per refund object at Stripe. ``request`` records it
under the order's lock (its amount must fit what is left once the refunds that have
not failed are counted), with its audit entry, and commits; only then is Stripe asked,
with the refund's own idempotency key, and the answer recorded. If Stripe cannot be
reached the refund stays ``requested`` and ``submit_requested`` (reconciliation runs it)
asks again with the same key, so a timeout or a crash never makes a second refund.

Stripe's later word about a refund (``refund.updated``, ``refund.failed``,
``charge.refund.updated``, ``refund.created`` for one made in Stripe's dashboard, and the
refunds listed on ``charge.refunded``) goes through ``record``. Events come in any order
and more than once: the table below only moves forward (requested → pending → succeeded),
except that a succeeded refund may still fail (Stripe says so days later); a stale event
that would move backward changes nothing. A failed refund is retried as a new refund.

The order follows its refunds (``orders.follow_refunds``): its ``refunded_minor`` is the
sum of those pending or succeeded, as Stripe counts ``amount_refunded``.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from . import formatting, inventory, money, orders, ticket_lifecycle
from .audit import Actor, record
from .database import write_transaction
from .errors import StorefrontError
from .extensions import db
from .models import Event, Order, Refund, RefundStatus, Ticket, TicketStatus, utcnow
from .payments import gateway as gw

log = logging.getLogger(__name__)

S = RefundStatus
TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    S.REQUESTED: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED}),
    S.PENDING: frozenset({S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset({S.FAILED}),
    S.FAILED: frozenset(),
}
# Refunds that use up what an order can still give back, and those whose money is
# (or is on its way) back with the buyer.
COMMITTED = (S.REQUESTED.value, S.PENDING.value, S.SUCCEEDED.value)
RETURNED = (S.PENDING.value, S.SUCCEEDED.value)
# Stripe's refund statuses, as ours.
FROM_STRIPE = {
    "pending": S.PENDING,
    "requires_action": S.PENDING,
    "succeeded": S.SUCCEEDED,
    "failed": S.FAILED,
    "canceled": S.FAILED,
}
MADE_AT_STRIPE = "Stripe"
MAX_REASON = 500


class NotRefundable(StorefrontError):
    """The order took no money through Stripe (a free order), or is not the caller's."""

    def message(self) -> str:
        return _("This order was not paid through Stripe: there is nothing to refund.")


class RefundAmountInvalid(StorefrontError):
    field = "amount"

    def __init__(self, refundable_minor: int, currency: str):
        super().__init__(refundable_minor, currency)
        self.refundable_minor = refundable_minor
        self.currency = currency

    def message(self) -> str:
        if self.refundable_minor == 0:
            return _("Everything paid for this order has already been refunded.")
        return _(
            "Choose an amount between %(least)s and %(most)s.",
            least=formatting.money(money.step(self.currency), self.currency),
            most=formatting.money(self.refundable_minor, self.currency),
        )


class RefundNotRetryable(StorefrontError):
    def message(self) -> str:
        return _("Only a failed refund can be tried again, and only once.")


class IllegalRefundTransition(RuntimeError):
    def __init__(self, current: str, wanted: RefundStatus) -> None:
        super().__init__(f"a refund cannot go from {current} to {wanted.value}")


def may_move(current: str | RefundStatus, to: RefundStatus) -> bool:
    return to in TRANSITIONS[RefundStatus(current)]


def _move(refund: Refund, to: RefundStatus, now: datetime) -> None:
    if not may_move(refund.status, to):
        raise IllegalRefundTransition(refund.status, to)
    refund.status = to.value
    refund.updated_at = now


def _lock_order(order_id: int) -> Order:
    return db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def _sum(order_id: int, statuses: tuple[str, ...]) -> int:
    return db.session.execute(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.order_id == order_id, Refund.status.in_(statuses)
        )
    ).scalar_one()


def committed_minor(order_id: int) -> int:
    return _sum(order_id, COMMITTED)


def refundable_minor(order_id: int) -> int:
    order = db.session.get(Order, order_id)
    return orders.refundable_minor(order, _sum(order_id, COMMITTED))


class RefundsChangedMeanwhile(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("This order's refunds changed since you looked (a double click?): nothing more was refunded.")


def request(
    order_id: int,
    amount_minor: int | None,
    reason: str,
    actor: Actor,
    now: datetime | None = None,
    *,
    expect_committed_minor: int | None = None,
) -> int:
    """Refund ``amount_minor`` of the order (all that is left when None), then ask Stripe.
    Returns the refund's id; raises ``NotRefundable`` or ``RefundAmountInvalid`` having
    changed nothing. Stripe unreachable leaves it ``requested`` (asked again later)."""
    now = now or utcnow()
    with write_transaction():
        order = _lock_order(order_id)
        if not order.stripe_payment_intent_id or order.total_minor <= 0:
            raise NotRefundable()
        # The confirm page's view of the order: a second click of its button finds it changed.
        if expect_committed_minor is not None and _sum(order.id, COMMITTED) != expect_committed_minor:
            raise RefundsChangedMeanwhile()
        refund_id = _new_refund(order, amount_minor, reason, actor, now)
    submit(refund_id)
    return refund_id


def request_locked(order_id: int, reason: str, actor: Actor, now: datetime) -> int | None:
    """Inside the caller's transaction: lock the order and record a refund of all that is
    left of it (``submit`` it after the commit). None when it took no money through Stripe
    or nothing is left."""
    order = _lock_order(order_id)
    if not order.stripe_payment_intent_id or order.total_minor <= 0:
        return None
    if orders.refundable_minor(order, _sum(order.id, COMMITTED)) <= 0:
        return None
    return _new_refund(order, None, reason, actor, now)


class NoTicketsChosen(StorefrontError):
    field = "tickets"

    def message(self) -> str:
        return _("Choose at least one ticket of this order that is not void yet.")


def request_for_tickets(
    order_id: int, ticket_ids: list[int], put_back: bool, reason: str, actor: Actor, now: datetime | None = None
) -> int:
    """Refund the price of the chosen tickets, which become void (``ticket_lifecycle``)
    and, with ``put_back``, return to stock (``inventory.put_back``), all in the order's
    lock; then ask Stripe. A ticket already void, or not of the order, is refused
    (``NoTicketsChosen``), so a double click refunds nothing twice."""
    now = now or utcnow()
    with write_transaction():
        order = _lock_order(order_id)
        if not order.stripe_payment_intent_id or order.total_minor <= 0:
            raise NotRefundable()
        chosen = list(
            db.session.execute(
                select(Ticket).where(
                    Ticket.order_id == order.id, Ticket.id.in_(ticket_ids), Ticket.status != TicketStatus.VOID.value
                )
            ).scalars()
        )
        if not chosen or len(chosen) != len(set(ticket_ids)):
            raise NoTicketsChosen()
        amount = sum(t.price_minor for t in chosen)
        refund_id = _new_refund(order, amount, reason, actor, now, tickets=[t.code for t in chosen], put_back=put_back)
        voided = ticket_lifecycle.void_tickets([t.id for t in chosen])
        if put_back:
            counts: dict = {}
            for t in chosen:
                if t.id in voided:
                    counts[t.ticket_type] = counts.get(t.ticket_type, 0) + 1
            inventory.put_back(counts)
    submit(refund_id)
    return refund_id


def _new_refund(
    order: Order,
    amount_minor: int | None,
    reason: str,
    actor: Actor,
    now: datetime,
    retry_of: int | None = None,
    **more,
) -> int:
    """Inside the order's lock: the refund row and its audit entry."""
    left = orders.refundable_minor(order, _sum(order.id, COMMITTED))
    amount = left if amount_minor is None else amount_minor
    if left <= 0 or not 1 <= amount <= left or amount % money.step(order.currency):
        raise RefundAmountInvalid(left, order.currency)
    refund = Refund(
        order_id=order.id,
        amount_minor=amount,
        currency=order.currency,
        reason=reason.strip()[:MAX_REASON],
        requested_by=actor.name[:254],
        requested_by_user_id=actor.user_id,
        status=S.REQUESTED.value,
        idempotency_key=f"order{order.id}-refund-{secrets.token_hex(8)}",
        retry_of_id=retry_of,
        created_at=now,
        updated_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    organiser_id = db.session.execute(select(Event.organiser_id).where(Event.id == order.event_id)).scalar_one()
    record(
        actor,
        "refund.retried" if retry_of else "refund.requested",
        "order",
        order.id,
        organiser_id=organiser_id,
        event_id=order.event_id,
        after={
            "refund": refund.id,
            "amount_minor": amount,
            "currency": order.currency,
            "reason": refund.reason,
            **more,
        },
    )
    log.info("order %s: refund %s of %s %s requested by %s", order.code, refund.id, amount, order.currency, actor.name)
    return refund.id


def retry(refund_id: int, actor: Actor, now: datetime | None = None) -> int:
    """A failed refund, tried again as a new one for the same amount (if still left)."""
    with write_transaction():
        new_id = retry_locked(refund_id, actor, now or utcnow())
    submit(new_id)
    return new_id


def retry_locked(refund_id: int, actor: Actor, now: datetime) -> int:
    """Inside the caller's transaction: lock the order and record the failed refund's retry
    (``submit`` it after the commit). Raises ``RefundNotRetryable`` unless it failed and
    was not retried yet (a double click)."""
    order_id = db.session.execute(select(Refund.order_id).where(Refund.id == refund_id)).scalar_one()
    order = _lock_order(order_id)
    failed = db.session.get(Refund, refund_id)
    retried = db.session.execute(select(Refund.id).where(Refund.retry_of_id == refund_id)).first()
    if failed.status != S.FAILED.value or retried is not None:
        raise RefundNotRetryable()
    return _new_refund(order, failed.amount_minor, failed.reason, actor, now, retry_of=refund_id)


def submit(refund_id: int) -> None:
    """Ask Stripe for a ``requested`` refund (again, with its key), and record the answer."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != S.REQUESTED.value:
        return
    order = db.session.get(Order, refund.order_id)
    try:
        answer = gw.get_gateway().create_refund(
            order.stripe_payment_intent_id,
            amount=refund.amount_minor,
            reason="requested_by_customer",
            metadata={"order": order.code, "refund": str(refund.id)},
            idempotency_key=refund.idempotency_key,
        )
    except gw.InvalidRequestError as error:
        # Stripe refused it outright (e.g. the charge was already refunded at Stripe): it
        # will not go through by asking again.
        with write_transaction():
            _lock_order(refund.order_id)
            refund = db.session.get(Refund, refund_id)
            if refund.status == S.REQUESTED.value:
                _move(refund, S.FAILED, utcnow())
                refund.failure_reason = "refused_by_stripe"
                refund.error_message = (getattr(error, "user_message", None) or str(error))[:2000]
        log.warning("refund %s refused by Stripe: %s", refund_id, error)
        return
    except gw.StripeError as error:
        db.session.rollback()
        log.warning(
            "refund %s: Stripe could not be asked now (%s); it stays requested", refund_id, type(error).__name__
        )
        return
    record_from_stripe(answer)


def submit_requested(older_than_seconds: int = 30) -> int:
    """Ask Stripe again for refunds still ``requested`` (Stripe was unreachable, or the
    process stopped before its answer was recorded); returns how many were asked."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    ids = list(
        db.session.execute(
            select(Refund.id).where(Refund.status == S.REQUESTED.value, Refund.updated_at <= cutoff)
        ).scalars()
    )
    db.session.rollback()
    for refund_id in ids:
        submit(refund_id)
    return len(ids)


def _our_refund_id(obj: dict) -> int | None:
    metadata = obj.get("metadata")
    raw = metadata.get("refund") if isinstance(metadata, dict) else None
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 12 else None


def _pi_id(obj: dict) -> str | None:
    value = obj.get("payment_intent")
    return value.get("id") if isinstance(value, dict) else value


def record_from_stripe(obj) -> str:
    """What Stripe says of one refund (an API answer or an event's object): its row moves
    as far as the table allows, and its order follows. A refund of one of our orders that
    we did not ask for (made in Stripe's dashboard) gets a row of its own. Returns the outcome."""
    obj = obj.to_dict() if hasattr(obj, "to_dict") else obj
    stripe_id = obj["id"]
    target = FROM_STRIPE.get(obj.get("status"))
    if target is None:
        return "refund_status_unknown"
    refund_id = db.session.execute(select(Refund.id).where(Refund.stripe_refund_id == stripe_id)).scalar_one_or_none()
    if refund_id is None:
        ours = _our_refund_id(obj)
        if ours is not None and db.session.get(Refund, ours) is not None:
            refund_id = ours
    now = utcnow()
    if refund_id is None:
        order_id = db.session.execute(
            select(Order.id).where(Order.stripe_payment_intent_id == _pi_id(obj))
        ).scalar_one_or_none()
        if order_id is None:
            return "refund_of_no_order"  # e.g. our own refund of a late payment that found no stock
        with write_transaction():
            order = _lock_order(order_id)
            # Another delivery may have made the row while this one waited for the lock.
            if db.session.execute(select(Refund.id).where(Refund.stripe_refund_id == stripe_id)).first() is None:
                db.session.add(
                    Refund(
                        order_id=order.id,
                        amount_minor=obj["amount"],
                        currency=order.currency,
                        reason=_("Made at Stripe"),
                        requested_by=MADE_AT_STRIPE,
                        status=S.REQUESTED.value,
                        idempotency_key=f"stripe-{stripe_id}"[:100],
                        stripe_refund_id=stripe_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
        refund_id = db.session.execute(select(Refund.id).where(Refund.stripe_refund_id == stripe_id)).scalar_one()
    with write_transaction():
        order_id = db.session.execute(select(Refund.order_id).where(Refund.id == refund_id)).scalar_one()
        order = _lock_order(order_id)
        refund = db.session.get(Refund, refund_id)
        refund.stripe_refund_id = stripe_id
        if refund.status != target.value:
            if not may_move(refund.status, target):
                return f"refund_already_{refund.status}"  # a stale word: Stripe said more since
            _move(refund, target, now)
        if target == S.FAILED:
            refund.failure_reason = (obj.get("failure_reason") or refund.failure_reason or "unknown")[:100]
        orders.follow_refunds(order, _sum(order.id, RETURNED), now)
        outcome = f"refund_{refund.status}"
        code = order.code
    log.info("order %s: refund %s (%s) is %s", code, refund_id, stripe_id, outcome.removeprefix("refund_"))
    return outcome


def sync_payment_intent(payment_intent_id: str) -> int | None:
    """Record every refund Stripe lists for this payment (``charge.refunded``: whatever the
    order of the events, the order ends where Stripe is). Returns the order's id, or None."""
    order_id = db.session.execute(
        select(Order.id).where(Order.stripe_payment_intent_id == payment_intent_id)
    ).scalar_one_or_none()
    if order_id is None:
        return None
    for refund in gw.get_gateway().list_refunds(payment_intent=payment_intent_id, limit=100).auto_paging_iter():
        record_from_stripe(refund)
    return order_id


def of_order(order_id: int) -> list[Refund]:
    return list(db.session.execute(select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)).scalars())


def status_words() -> dict[str, str]:
    """Each status as the back office says it."""
    return {
        S.REQUESTED: _("Asked of Stripe"),
        S.PENDING: _("On its way"),
        S.SUCCEEDED: _("Refunded"),
        S.FAILED: _("Failed"),
    }


def failure_words(reason: str | None) -> str | None:
    """Why a refund failed, in words: Stripe's ``failure_reason`` or ours."""
    if not reason:
        return None
    return {
        "refused_by_stripe": _("Stripe refused it"),
        "expired_or_canceled_card": _("the card expired or was cancelled"),
        "lost_or_stolen_card": _("the card was reported lost or stolen"),
        "insufficient_funds": _("the account could not take it back"),
        "declined": _("the bank declined it"),
        "merchant_request": _("cancelled at Stripe"),
        "charge_for_pending_refund_disputed": _("the payment is disputed"),
        "unknown": _("no reason given"),
    }.get(reason, reason)
