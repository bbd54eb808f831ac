"""``fulfil(session_id)``: the one way a paid order comes to exist.

Called by the webhook, by the success page's fallback, by the sweep and by
reconciliation, possibly at the same moment for the same session. Each call:

1. returns the order if one exists for the session (read, no lock);
2. looks at the session (Stripe's copy, given or retrieved) and goes on only when
   ``payment_status == "paid"``;
3. in one durable transaction, locks the cart row first (the lock order of every
   stock change: cart → ticket types by id → events by id), which serialises all
   fulfilments of the cart; re-reads whether an order exists (a concurrent call may
   have made it) and whether a refund was decided; compares what Stripe charged
   (``amount_total``, ``currency``) with what the attempt asked for, and on any
   difference makes no order, sells and releases nothing, and marks the attempt
   ``amount_mismatch`` (logged at ERROR) for a person; then moves the cart's holds to
   sold (``inventory.sell``), or, if the hold is gone (a late payment), takes the
   stock again with the conditional ``inventory.hold`` first; creates the order and
   its tickets; marks the cart converted and the attempt paid. A UNIQUE constraint on
   the order's session id backs the re-read.
4. If the stock is gone, no tickets: it records the decision to refund (in a
   transaction that locks the same cart row, so an order and a refund can never both
   be decided), refunds through the gateway with an idempotency key made from the
   session id (concurrent callers get the same refund), and records the refund.
5. The mail: the order's transaction also records its confirmation in the outbox
   (``storefront.outbox``; the refund's last transaction records the refund notice),
   so the two commit together. Only after that commit is a job asked to send it
   (``storefront.jobs``): ``fulfil``, and the webhook that called it, never wait for
   the mail server, and a failure to send never fails ``fulfil``.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import attempts, inventory, jobs, outbox
from . import cart as carts
from .database import write_transaction
from .errors import SoldOut
from .extensions import db
from .models import (
    AttemptStatus,
    Cart,
    CartItem,
    CartStatus,
    Order,
    OrderStatus,
    PaymentAttempt,
    Ticket,
    TicketType,
    utcnow,
)
from .payments import gateway as gw
from .tickets import new_ticket_code, new_ticket_secret
from .tokens import human_code

log = logging.getLogger(__name__)

CODE_LENGTH = 8
REFUND_REASON_SOLD_OUT = "stock_gone_after_hold_lapsed"


@dataclass(frozen=True)
class Outcome:
    """What ``fulfil`` did or found: ``order`` (with its id), ``refunded``,
    ``processing`` (a bank debit still settling), ``not_paid``, ``unknown_session``,
    ``amount_mismatch`` (paid another amount or currency than asked: left for a person)."""

    kind: str
    order_id: int | None = None
    attempt_id: int | None = None
    mail_id: int | None = None  # the outbox row this call recorded (storefront.outbox)


def new_order_code() -> str:
    return human_code(CODE_LENGTH)


def order_for_session(session_id: str) -> Order | None:
    return db.session.execute(select(Order).where(Order.stripe_checkout_session_id == session_id)).scalar_one_or_none()


def _id(value) -> str | None:
    """A Stripe field that is an id, or an expanded object, or null."""
    if value is None or isinstance(value, str):
        return value
    return value.id


def _attempt_id_for(session) -> int | None:
    found = db.session.execute(
        select(PaymentAttempt.id).where(PaymentAttempt.stripe_checkout_session_id == session.id)
    ).scalar_one_or_none()
    if found is not None:
        return found
    # Not recorded (the app stopped between Stripe's answer and our commit): the
    # session names its attempt in its metadata.
    return attempt_id_by_metadata(session)


def attempt_id_by_metadata(obj) -> int | None:
    """The attempt a session or PaymentIntent names in its metadata (by its unique key)."""
    metadata = obj.metadata.to_dict() if getattr(obj, "metadata", None) else {}
    key = metadata.get("attempt_key")
    if not key:
        return None
    return db.session.execute(
        select(PaymentAttempt.id).where(PaymentAttempt.idempotency_key == key)
    ).scalar_one_or_none()


def fulfil(session_id: str, *, source: str, session=None) -> Outcome:
    """Make the order of a paid Checkout Session exactly once. See the module docstring.

    ``session`` is Stripe's object if the caller has it (a webhook's), else it is
    retrieved. Safe to call any number of times, concurrently too. Raises on a
    database or Stripe failure (the caller answers 500 / tries later).
    """
    existing = order_for_session(session_id)
    if existing is not None:
        return Outcome("order", existing.id)
    outcome = _fulfil(session_id, source, session)
    if outcome.mail_id is not None:
        # Only now, with the transaction that recorded the mail committed.
        jobs.send_mail_soon(outcome.mail_id)
    return outcome


def _fulfil(session_id: str, source: str, session) -> Outcome:
    if session is None:
        session = gw.get_gateway().retrieve_checkout_session(session_id)
    attempt_id = _attempt_id_for(session)
    if attempt_id is None:
        log.error("fulfil(%s) from %s: no payment attempt of ours names this session", session_id, source)
        return Outcome("unknown_session")
    if session.payment_status != "paid":
        if session.status == "complete":
            _mark_processing(attempt_id, session)
            return Outcome("processing")
        return Outcome("not_paid")
    try:
        with write_transaction():
            return _create_order(session, attempt_id, source)
    except (SoldOut, _RefundDecided) as why:
        log.warning("fulfil(%s) from %s: no stock for a late payment (%s): refunding", session_id, source, why)
    except IntegrityError:
        # Another fulfilment inserted the order between our re-read and our insert.
        existing = order_for_session(session_id)
        if existing is None:
            raise
        return Outcome("order", existing.id)
    return _refund(session, attempt_id, source)


def refund_key(session_id: str) -> str:
    """The idempotency key of the one refund of a paid session without an order."""
    return f"refund-{session_id}"


def refund_metadata(session_id: str, why: str) -> dict[str, str]:
    return {"session_id": session_id, "why": why}


class _RefundDecided(Exception):
    """An earlier call decided to refund this session; finish that, never sell."""


def _lock_attempt_and_cart(attempt_id: int, now: datetime) -> tuple[PaymentAttempt, str]:
    cart_id = db.session.execute(select(PaymentAttempt.cart_id).where(PaymentAttempt.id == attempt_id)).scalar_one()
    status = carts.lock_cart_row(cart_id, now)
    attempt = db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.id == attempt_id).execution_options(populate_existing=True)
    ).scalar_one()
    return attempt, status


def _create_order(session, attempt_id: int, source: str) -> Outcome:
    now = utcnow()
    attempt, cart_status = _lock_attempt_and_cart(attempt_id, now)
    existing = order_for_session(session.id)
    if existing is not None:
        return Outcome("order", existing.id)
    if attempt.status == AttemptStatus.REFUNDED.value:
        return Outcome("refunded", attempt_id=attempt.id)
    if attempt.status == AttemptStatus.REFUNDING.value:
        raise _RefundDecided("a refund was decided earlier")
    if attempt.status == AttemptStatus.AMOUNT_MISMATCH.value:
        return Outcome("amount_mismatch", attempt_id=attempt.id)
    if not _paid_as_asked(session, attempt):
        _record_mismatch(attempt, session, source, now)
        return Outcome("amount_mismatch", attempt_id=attempt.id)

    lines = json.loads(attempt.lines)
    types = {
        tt.id: tt
        for tt in db.session.execute(
            select(TicketType).where(TicketType.id.in_([line["ticket_type_id"] for line in lines]))
        ).scalars()
    }
    wanted = {types[line["ticket_type_id"]]: line["quantity"] for line in lines}
    holding = cart_status in (CartStatus.ACTIVE.value, CartStatus.CHECKING_OUT.value)
    if holding:
        held = {item.ticket_type_id: item.quantity for item in carts.items_of(attempt.cart_id)}
        if held == {tt.id: n for tt, n in wanted.items()}:
            inventory.sell(wanted)
        else:  # not expected (a changed cart closes its session first); sell what was paid for
            inventory.release({types.get(tt_id) or db.session.get(TicketType, tt_id): n for tt_id, n in held.items()})
            inventory.hold(wanted)
            inventory.sell(wanted)
    else:
        # A late payment: the hold was released. Take the stock again if it is there
        # (the conditional hold raises SoldOut if not, and this transaction rolls back).
        inventory.hold(wanted)
        inventory.sell(wanted)
    carts.convert(attempt.cart_id, now)
    pi_id = _id(session.payment_intent)
    order = _new_order(
        cart_id=attempt.cart_id,
        event_id=next(iter(types.values())).event_id,
        lines=lines,
        email=_buyer_email(session) or attempt.buyer_email,
        currency=attempt.currency,
        session_id=session.id,
        payment_intent_id=pi_id,
        total=attempt.amount_minor,  # what the session was paid: _paid_as_asked
        locale=attempt.locale,
        now=now,
    )
    attempts.move(attempt, AttemptStatus.PAID, now)
    attempt.stripe_checkout_session_id = session.id
    attempt.stripe_payment_intent_id = pi_id
    attempt.raw = json.dumps(session.to_dict())
    log.info(
        "order %s created for session %s (cart %s, attempt %s, %s, %s)",
        order.code,
        session.id,
        attempt.cart_id,
        attempt.id,
        "held" if holding else "late payment, stock taken again",
        source,
    )
    return Outcome("order", order.id, mail_id=outbox.confirmation_due(order.id))


def _paid_as_asked(session, attempt: PaymentAttempt) -> bool:
    """Stripe's paid session charged exactly what the attempt asked for."""
    currency = session.currency if isinstance(session.currency, str) else ""
    return session.amount_total == attempt.amount_minor and currency.lower() == attempt.currency.lower()


def _record_mismatch(attempt: PaymentAttempt, session, source: str, now: datetime) -> None:
    """The session was paid, but not what we asked: no order, nothing sold, the cart's
    hold kept (the checkout module leaves such a cart alone), and a person told. The
    attempt keeps what was asked (``amount_minor``, ``currency``) beside what was paid."""
    attempts.move(attempt, AttemptStatus.AMOUNT_MISMATCH, now)
    attempt.paid_amount_minor = session.amount_total if isinstance(session.amount_total, int) else None
    attempt.paid_currency = session.currency.upper()[:3] if isinstance(session.currency, str) else None
    attempt.stripe_checkout_session_id = session.id
    attempt.stripe_payment_intent_id = _id(session.payment_intent)
    attempt.raw = json.dumps(session.to_dict())
    attempt.updated_at = now
    log.error(
        "session %s paid %s %s but attempt %s (cart %s) asked for %s %s: no order made, hold kept, "
        "left for a person (flask payment-review; %s)",
        session.id,
        session.amount_total,
        session.currency,
        attempt.id,
        attempt.cart_id,
        attempt.amount_minor,
        attempt.currency,
        source,
    )


def _buyer_email(session) -> str | None:
    details = getattr(session, "customer_details", None)
    email = getattr(details, "email", None) if details is not None else None
    return email or getattr(session, "customer_email", None)


def _new_order(
    *, cart_id, event_id, lines, email, currency, session_id, payment_intent_id, total, locale, now
) -> Order:
    order = Order(
        code=new_order_code(),
        access_token=secrets.token_urlsafe(32),
        stripe_checkout_session_id=session_id,
        stripe_payment_intent_id=payment_intent_id,
        cart_id=cart_id,
        event_id=event_id,
        buyer_email=email,
        status=OrderStatus.PAID.value,
        total_minor=total,
        refunded_minor=0,
        currency=currency,
        locale=locale,
        created_at=now,
    )
    for line in lines:
        for first, last in line["attendees"]:
            order.tickets.append(
                Ticket(
                    ticket_type_id=line["ticket_type_id"],
                    attendee_first_name=first,
                    attendee_last_name=last,
                    price_minor=line["unit_price_minor"],
                    secret=new_ticket_secret(),
                    code=new_ticket_code(),
                )
            )
    db.session.add(order)
    db.session.flush()  # the UNIQUE session id speaks now, inside the transaction
    return order


def create_free_order(
    cart: Cart, items: list[CartItem], lines: list[dict], email: str, now: datetime, locale: str = "en"
) -> tuple[Order, int]:
    """A cart that costs nothing: sold and ordered at once, in the caller's transaction
    (which locked the live cart), with its confirmation recorded in the outbox. No
    Stripe, no session id. Returns the order and its confirmation's outbox row id."""
    inventory.sell({item.ticket_type: item.quantity for item in items})
    carts.convert(cart.id, now)
    order = _new_order(
        cart_id=cart.id,
        event_id=items[0].ticket_type.event_id,
        lines=lines,
        email=email,
        currency=items[0].ticket_type.event.currency,
        session_id=None,
        payment_intent_id=None,
        total=0,
        locale=locale,
        now=now,
    )
    mail_id = outbox.confirmation_due(order.id)
    log.info("free order %s created (cart %s)", order.code, cart.id)
    return order, mail_id


def _mark_processing(attempt_id: int, session) -> None:
    now = utcnow()
    with write_transaction():
        attempts.move_where(
            PaymentAttempt.id == attempt_id,
            from_=[AttemptStatus.CREATING, AttemptStatus.OPEN],
            to=AttemptStatus.PROCESSING,
            now=now,
            stripe_checkout_session_id=session.id,
            stripe_payment_intent_id=_id(session.payment_intent),
        )


def _refund(session, attempt_id: int, source: str) -> Outcome:
    """Paid, but no tickets can be given: decide the refund (under the cart's lock, so
    no order can be made after it), then refund at Stripe, then record it."""
    pi_id = _id(session.payment_intent)
    now = utcnow()
    with write_transaction():
        attempt, _ = _lock_attempt_and_cart(attempt_id, now)
        existing = order_for_session(session.id)
        if existing is not None:
            return Outcome("order", existing.id)
        if attempt.status == AttemptStatus.REFUNDED.value:
            return Outcome("refunded", attempt_id=attempt_id)
        # Already refunding (a delivery that raced the first decision): ask Stripe again
        # with the same idempotency key, which answers with the same refund.
        if attempt.status != AttemptStatus.REFUNDING.value:
            attempts.move(attempt, AttemptStatus.REFUNDING, now)
            attempt.refund_reason = REFUND_REASON_SOLD_OUT
            attempt.stripe_checkout_session_id = session.id
            attempt.stripe_payment_intent_id = pi_id
        # Whoever decided the refund (here, or a person in the reconciliation inbox) named
        # its reason; both ask Stripe with the same key and the same words: one refund.
        why = attempt.refund_reason or REFUND_REASON_SOLD_OUT
    refund = gw.get_gateway().create_refund(
        pi_id,
        reason="requested_by_customer",
        metadata=refund_metadata(session.id, why),
        idempotency_key=refund_key(session.id),
    )
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        if attempt.status != AttemptStatus.REFUNDED.value:  # the racing delivery may have recorded it
            attempts.move(attempt, AttemptStatus.REFUNDED, utcnow())
        attempt.stripe_refund_id = refund.id
        # The notice says the tickets were gone: only for that reason.
        mail_id = outbox.refund_notice_due(attempt_id) if why == REFUND_REASON_SOLD_OUT else None
    log.warning(
        "session %s refunded (%s, refund %s, attempt %s, %s)",
        session.id,
        why,
        refund.id,
        attempt_id,
        source,
    )
    return Outcome("refunded", attempt_id=attempt_id, mail_id=mail_id)
