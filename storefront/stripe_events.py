"""Stripe's webhook events: stored by id, then acted on (DESIGN.md "Webhook").

``record_and_handle`` is given an event the gateway already verified. It stores the
event under its id (UNIQUE); an event already processed is a duplicate and nothing is
done. An event stored but not processed (an earlier delivery failed half-way, or one
is being processed right now) is processed again: every handler is idempotent. A
handler's failure is recorded on the event and raised again, so the view answers 500
and Stripe retries.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import cart as carts
from . import fulfilment
from .database import write_transaction
from .extensions import db
from .models import AttemptStatus, Order, OrderStatus, PaymentAttempt, Ticket, TicketStatus, WebhookEvent, utcnow

log = logging.getLogger(__name__)

DUPLICATE = "duplicate"
# The events this storefront acts on: subscribe its webhook endpoint at Stripe to these
# (an endpoint's "enabled_events"); any other type is stored and ignored.
HANDLED_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "charge.refunded",
)


def record_and_handle(event, payload: bytes) -> str:
    """Store and process one verified event; returns the outcome recorded."""
    now = utcnow()
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    with write_transaction():
        db.session.execute(
            insert(WebhookEvent.__table__)
            .values(
                stripe_event_id=event.id, type=event.type, payload=payload.decode("utf-8", "replace"), received_at=now
            )
            .on_conflict_do_nothing(index_elements=["stripe_event_id"])
        )
        processed = db.session.execute(
            select(WebhookEvent.processed_at).where(WebhookEvent.stripe_event_id == event.id)
        ).scalar_one()
    if processed is not None:
        log.info("stripe event %s (%s): duplicate, ignored", event.id, event.type)
        return DUPLICATE
    try:
        outcome = _dispatch(event)
    except Exception as error:
        db.session.rollback()
        with write_transaction():
            db.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.stripe_event_id == event.id)
                .values(outcome="error", error=f"{type(error).__name__}: {error}"[:2000])
            )
        log.exception("stripe event %s (%s): failed, Stripe will retry", event.id, event.type)
        raise
    with write_transaction():
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.stripe_event_id == event.id)
            .values(processed_at=utcnow(), outcome=outcome, error=None)
        )
    log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return outcome


def _dispatch(event) -> str:
    obj = event.data.object
    source = f"event {event.id}"
    if event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        # fulfil itself goes on only when payment_status is "paid" (a completed bank
        # debit is "unpaid" until it settles).
        return fulfilment.fulfil(obj.id, source=source, session=obj).kind
    if event.type in ("checkout.session.expired", "checkout.session.async_payment_failed"):
        ended = AttemptStatus.EXPIRED if event.type.endswith("expired") else AttemptStatus.FAILED
        return end_attempt(obj.id, ended, source)
    if event.type == "payment_intent.payment_failed":
        return _payment_failed(obj)
    if event.type == "charge.refunded":
        return _charge_refunded(obj)
    return "ignored"


def end_attempt(session_id: str, status: AttemptStatus, source: str) -> str:
    """A session ended without money: its attempt says so, and its cart's hold is
    released if the cart is still waiting on this very session. A session the buyer
    already left (its attempt ended by ``checkout.return_to_cart``) releases nothing:
    the cart may hold a newer checkout."""
    attempt_id = db.session.execute(
        select(PaymentAttempt.id).where(PaymentAttempt.stripe_checkout_session_id == session_id)
    ).scalar_one_or_none()
    if attempt_id is None:
        return "unknown_session"
    now = utcnow()
    with write_transaction():
        attempt, _ = fulfilment._lock_attempt_and_cart(attempt_id, now)
        if attempt.status not in (
            AttemptStatus.CREATING.value,
            AttemptStatus.OPEN.value,
            AttemptStatus.PROCESSING.value,
        ):
            return f"already_{attempt.status}"
        attempt.status = status.value
        attempt.updated_at = now
        cart_id = attempt.cart_id
        released = carts.release_checking_out(cart_id, now)
    log.info(
        "attempt %s %s (session %s, %s); cart %s %s",
        attempt_id,
        status.value,
        session_id,
        source,
        cart_id,
        "released" if released else "not holding for it",
    )
    return f"{status.value}{'_released' if released else ''}"


def _payment_failed(pi) -> str:
    """A try inside a session failed (decline, 3-D Secure failure): recorded on the
    attempt; the session stays open and the buyer may try another card."""
    raw = fulfilment.attempt_id_by_metadata(pi)
    if raw is None:
        return "unknown_attempt"
    error = getattr(pi, "last_payment_error", None)
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, raw)
        if attempt is None:
            return "unknown_attempt"
        attempt.stripe_payment_intent_id = pi.id
        if error is not None:
            attempt.error_type = getattr(error, "type", None)
            attempt.error_code = getattr(error, "code", None)
            attempt.decline_code = getattr(error, "decline_code", None)
            attempt.error_message = getattr(error, "message", None)
        attempt.updated_at = utcnow()
    log.info(
        "attempt %s: payment failed (%s / %s)", raw, getattr(error, "code", None), getattr(error, "decline_code", None)
    )
    return "payment_failed_recorded"


def _charge_refunded(charge) -> str:
    pi_id = fulfilment._id(charge.payment_intent)
    with write_transaction():
        order = db.session.execute(select(Order).where(Order.stripe_payment_intent_id == pi_id)).scalar_one_or_none()
        if order is None:
            return "no_order"  # e.g. our own refund of a late payment without stock
        order.refunded_minor = charge.amount_refunded
        order.status = (OrderStatus.REFUNDED if charge.refunded else OrderStatus.PARTIALLY_REFUNDED).value
        if charge.refunded:
            # All the money went back: no ticket of the order may get anyone in. (A partial
            # refund names an amount, not tickets: which to void is the organiser's call.)
            db.session.execute(
                update(Ticket)
                .where(Ticket.order_id == order.id, Ticket.status == TicketStatus.VALID.value)
                .values(status=TicketStatus.VOID.value)
                .execution_options(synchronize_session=False)
            )
        code, status = order.code, order.status
    log.info("order %s %s (charge %s)", code, status, charge.id)
    return f"order_{status}"
