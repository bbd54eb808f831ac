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

from . import attempts, fulfilment, parsing, refunds
from . import cart as carts
from .database import write_transaction
from .extensions import db
from .models import AttemptStatus, Order, PaymentAttempt, WebhookEvent, utcnow

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
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
)
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")


class MalformedEventObject(ValueError):
    """A verified event of a type we handle whose object lacks what its handler reads."""


def record_and_handle(event, payload: bytes) -> str:
    """Store and process one verified event; returns the outcome recorded.

    Raises ``MalformedEventObject``, having stored nothing, when an event of a handled
    type does not carry what its handler reads (``check_object``)."""
    check_object(event)
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


# --- what each handler reads from the event's object -------------------------------------------
# Stripe always sends these shapes; anything else (forged by whoever holds the secret,
# or garbled) is refused before it is stored, instead of failing in a handler with a
# 500 that Stripe would retry for days.


def _text(max_length: int):
    return lambda value: isinstance(value, str) and len(value) <= max_length


def _id(prefix: str):
    return lambda value: parsing.stripe_id(value, prefix) is not None


def _id_or_expanded(prefix: str):
    return lambda value: _id(prefix)(value) or (isinstance(value, dict) and _id(prefix)(value.get("id")))


def _amount(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= parsing.MAX_DB_ID


def _flag(value) -> bool:
    return isinstance(value, bool)


def _metadata(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _text(500)(v) for k, v in value.items())


def _fields(**spec):
    """An object whose listed fields, where present and not null, pass their checks."""
    return lambda value: (
        isinstance(value, dict) and all(value.get(name) is None or check(value[name]) for name, check in spec.items())
    )


_EMAIL = _text(254)
_SESSION = {
    "payment_status": _text(50),
    "status": _text(50),
    "payment_intent": _id_or_expanded("pi_"),
    "customer_details": _fields(email=_EMAIL),
    "customer_email": _EMAIL,
    "amount_total": _amount,
    "currency": _text(3),
    "metadata": _metadata,
}
# Per handled type: the fields that must be there, and the optional ones' checks.
OBJECT_SHAPES = {
    **{kind: ({"id": _id("cs_")}, _SESSION) for kind in HANDLED_EVENTS if kind.startswith("checkout.session.")},
    "payment_intent.payment_failed": (
        {"id": _id("pi_")},
        {
            "metadata": _metadata,
            "last_payment_error": _fields(
                type=_text(100), code=_text(100), decline_code=_text(100), message=_text(5000)
            ),
        },
    ),
    "charge.refunded": (
        {"id": _id("ch_"), "amount_refunded": _amount, "refunded": _flag},
        {"payment_intent": _id_or_expanded("pi_")},
    ),
    **{
        kind: (
            {"id": _id("re_"), "status": _text(30), "amount": _amount},
            {"payment_intent": _id_or_expanded("pi_"), "metadata": _metadata, "failure_reason": _text(100)},
        )
        for kind in REFUND_EVENTS
    },
}


def check_object(event) -> None:
    """Raise ``MalformedEventObject`` if a handled event's object is not what its handler reads."""
    shape = OBJECT_SHAPES.get(event.type)
    if shape is None:
        return  # not handled: stored and ignored
    required, optional = shape
    obj = event.data.object.to_dict()
    for name, check in required.items():
        if name not in obj or not check(obj[name]):
            raise MalformedEventObject(f"{event.type}: {name} missing or malformed")
    for name, check in optional.items():
        if obj.get(name) is not None and not check(obj[name]):
            raise MalformedEventObject(f"{event.type}: {name} malformed")


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
    if event.type in REFUND_EVENTS:
        return refunds.record_from_stripe(obj)
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
        attempts.move(attempt, status, now)
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
        # One row per failed try on its timeline, with Stripe's codes and message.
        attempts.record_failed_try(attempt, utcnow(), payment_intent_id=pi.id, error=error)
    log.info(
        "attempt %s: payment failed (%s / %s)", raw, getattr(error, "code", None), getattr(error, "decline_code", None)
    )
    return "payment_failed_recorded"


def _charge_refunded(charge) -> str:
    pi_id = fulfilment._id(charge.payment_intent)
    # Every refund Stripe lists for the payment is recorded (whatever order the refund
    # events come in); the order follows its refunds (storefront.orders).
    order_id = refunds.sync_payment_intent(pi_id) if pi_id else None
    if order_id is None:
        return "no_order"  # e.g. our own refund of a late payment without stock
    code, status = db.session.execute(select(Order.code, Order.status).where(Order.id == order_id)).one()
    log.info("order %s %s (charge %s)", code, status, charge.id)
    return f"order_{status}"
