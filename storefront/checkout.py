"""Turn a held cart into a Stripe Checkout Session (or, when it costs nothing, an order).

The flow (DESIGN.md "Checkout"):

1. In one durable transaction: lock the buyer's live cart, read its lines, validate
   the attendee names, and record a ``PaymentAttempt`` (status ``creating``) with the
   idempotency key, the lines, the amount and the session's ``expires_at``. It is
   written *before* Stripe is asked, so an app that dies after Stripe accepted the
   session but before our next commit leaves a row that reconciliation can match.
2. Ask Stripe (through the gateway) for the session, with that key: a retry after an
   error or a crash sends the same request and gets the same session back.
3. In a second transaction: the attempt becomes ``open`` with the session's id and
   url; the cart becomes ``checking_out``, its hold is extended to the session's
   expiry, and its token is replaced: the browser that pressed Pay gets the new one
   (with the session's id in its signed cookie, which is how the success page knows
   it later), and a cookie planted in that browser before no longer reaches the cart.
   A session Stripe answers without a ``url`` cannot be paid: it is closed and the
   buyer told to try again, the cart still held.

A cart in ``checking_out`` still holds its tickets. A buyer who comes back from
Stripe and changes the cart first closes the session at Stripe
(``return_to_cart``), so no payment can arrive for contents that no longer exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from . import attempts, fulfilment, jobs, languages, parsing
from . import cart as carts
from .allowance import UNLIMITED, Allowance
from .database import write_transaction
from .errors import (
    AttendeeNameMissing,
    AttendeeNameUnprintable,
    CartLapsed,
    InvalidEmail,
    NothingToPay,
    PaymentAlreadyMade,
    PaymentNeedsReview,
    PaymentServiceUnavailable,
    PriceChanged,
    SalesEnded,
)
from .extensions import db
from .models import AttemptEvent, AttemptStatus, Cart, CartItem, CartStatus, EventStatus, PaymentAttempt, utcnow
from .payments import gateway as gw

log = logging.getLogger(__name__)

# Stripe's minimum session lifetime is 30 minutes from its own clock at creation; the
# extra minute keeps a retry of the same request (same expires_at) valid for a while.
SESSION_LIFETIME = timedelta(minutes=30)
SESSION_SLACK = timedelta(minutes=1)
# A retry may reuse a recorded expires_at only while this much of it is left.
MIN_REUSABLE = SESSION_LIFETIME + timedelta(seconds=5)

NAME_MAX = 100


@dataclass(frozen=True)
class CheckoutStarted:
    """Where the buyer goes next: Stripe's page (``url`` of the Checkout Session
    ``session_id``), or their free order. ``cart_token`` is the cart's token from now
    on (None once the cart became an order): the browser must keep it instead of its old one."""

    url: str | None = None
    session_id: str | None = None
    cart_token: str | None = None
    order_token: str | None = None
    order_id: int | None = None
    mail_id: int | None = None  # the free order's confirmation in the outbox


def valid_email(raw: str | None) -> str:
    """The buyer's one plain address (``parsing.plain_email``), or ``InvalidEmail``."""
    email = parsing.plain_email((raw or "").strip())
    if email is None:
        raise InvalidEmail()
    return email


def valid_names(names: list[tuple[str, str]], count: int) -> list[list[str]]:
    """One (first, last) pair per ticket, each present, at most NAME_MAX long and
    free of control characters."""
    cleaned = []
    for position in range(1, count + 1):
        first, last = names[position - 1] if position <= len(names) else ("", "")
        first, last = (first or "").strip(), (last or "").strip()
        if not first or not last or len(first) > NAME_MAX or len(last) > NAME_MAX:
            raise AttendeeNameMissing(position)
        if parsing.has_control_characters(first + last):
            raise AttendeeNameUnprintable(position)
        cleaned.append([first, last])
    return cleaned


def _lines(items: list[CartItem], names: list[list[str]]) -> list[dict]:
    lines, taken = [], 0
    for item in items:
        lines.append(
            {
                "ticket_type_id": item.ticket_type_id,
                "name": item.ticket_type.name,
                "quantity": item.quantity,
                "unit_price_minor": item.ticket_type.price_minor,
                "attendees": names[taken : taken + item.quantity],
            }
        )
        taken += item.quantity
    return lines


def _digest(cart_id: int, lines: list[dict], email: str, currency: str) -> str:
    """What Stripe is asked to charge for, as a short hash: the idempotency key's heart."""
    content = [
        cart_id,
        currency,
        email,
        [(line["ticket_type_id"], line["quantity"], line["unit_price_minor"]) for line in lines],
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:24]


def start_checkout(
    token: str | None,
    email: str | None,
    names: list[tuple[str, str]],
    *,
    success_url: str,
    cancel_url: str,
    now: datetime | None = None,
    shown_total: str | None = None,
) -> CheckoutStarted:
    """Send the buyer's held cart to payment. See the module docstring.

    Raises ``CartLapsed``/``NothingToPay`` for a cart that cannot be
    paid, ``InvalidEmail``/``AttendeeNameMissing`` for bad input (nothing changes),
    ``PaymentServiceUnavailable`` when Stripe fails (the cart stays held; a retry
    works).
    """
    email = valid_email(email)
    try:
        started = _start(token, email, names, success_url, cancel_url, now or utcnow(), shown_total)
    except _OtherSessionOpen:
        # The buyer came back from Stripe and checks out other contents (another
        # email): that session is closed at Stripe before a new one is made.
        return_to_cart(token)
        started = _start(token, email, names, success_url, cancel_url, utcnow(), shown_total)
    if started.mail_id is not None:
        # A free order, committed with its confirmation's outbox row: a job sends it.
        jobs.send_mail_soon(started.mail_id)
    return started


class _OtherSessionOpen(Exception):
    pass


def _start(token, email, names, success_url, cancel_url, now, shown_total=None) -> CheckoutStarted:
    with write_transaction():
        cart = _lock_payable_cart(token, now)
        if _needs_review(cart.id):
            raise PaymentNeedsReview()
        items = carts.items_of(cart.id)
        if not items:
            raise NothingToPay()
        count = sum(item.quantity for item in items)
        lines = _lines(items, valid_names(names, count))
        total = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
        event = items[0].ticket_type.event
        currency = event.currency
        if event.status != EventStatus.PUBLISHED.value:
            # Taken off the shop (or cancelled) since the tickets were held: no new payment.
            raise SalesEnded(event.title)
        _check_shown_total(shown_total, total, currency)
        if total == 0:
            order, mail_id = fulfilment.create_free_order(cart, items, lines, email, now, languages.of_page())
            return CheckoutStarted(order_token=order.access_token, order_id=order.id, mail_id=mail_id)
        digest = _digest(cart.id, lines, email, currency)
        attempt = _reusable_attempt(cart.id, digest, now)
        if attempt is not None and attempt.status == AttemptStatus.OPEN.value:
            attempt.lines = json.dumps(lines)  # the names may have changed; Stripe never sees them
            attempt.locale = languages.of_page()
            attempt.updated_at = now
            # Its token was replaced when this checkout started; the browser has the new one.
            return CheckoutStarted(
                url=attempt.checkout_url, session_id=attempt.stripe_checkout_session_id, cart_token=token
            )
        if attempt is None:
            attempt = PaymentAttempt(
                cart_id=cart.id,
                event_id=event.id,
                idempotency_key=f"checkout-cart{cart.id}-{digest}-{secrets.token_hex(4)}",
                lines=json.dumps(lines),
                buyer_email=email,
                amount_minor=total,
                currency=currency,
                status=AttemptStatus.CREATING.value,
                locale=languages.of_page(),
                session_expires_at=now + SESSION_LIFETIME + SESSION_SLACK,
                created_at=now,
                updated_at=now,
            )
            db.session.add(attempt)
        else:
            attempt.lines = json.dumps(lines)
            attempt.locale = languages.of_page()  # the language the buyer pays in now
        db.session.flush()
        attempt_id, cart_id, key = attempt.id, cart.id, attempt.idempotency_key
        params = _session_params(attempt, lines, success_url, cancel_url)
    return _create_session(attempt_id, cart_id, key, params)


def _check_shown_total(shown: str | None, total: int, currency: str) -> None:
    """The checkout form says which total the buyer read on it (``shown_total``, e.g.
    ``"5000 EUR"``): when a price changed since, nothing is paid and the form is shown
    again with the new total, so a buyer is never charged other than what they read."""
    if shown is None:
        return
    amount, _, shown_currency = shown.partition(" ")
    if parsing.ascii_int(amount, max_digits=12) != total or shown_currency != currency:
        raise PriceChanged(total, currency)


def _lock_payable_cart(token: str | None, now: datetime) -> Cart:
    if token:
        locked = db.session.execute(
            update(Cart)
            .where(Cart.token == token, Cart.status.in_(_HOLDING), Cart.expires_at > now)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if locked == 1:
            return db.session.execute(select(Cart).where(Cart.token == token)).scalar_one()
        status = db.session.execute(select(Cart.status).where(Cart.token == token)).scalar_one_or_none()
        if status in (*_HOLDING, CartStatus.EXPIRED.value):
            raise CartLapsed()
    raise NothingToPay()


_HOLDING = (CartStatus.ACTIVE.value, CartStatus.CHECKING_OUT.value)
_LIVE_ATTEMPT = (AttemptStatus.CREATING.value, AttemptStatus.OPEN.value)


def _under_review(cart_id):
    """Whether a payment of the cart was paid otherwise than asked (``fulfilment``): such a
    cart keeps its hold and takes no change and no new payment until a person looked."""
    return (
        select(PaymentAttempt.id)
        .where(PaymentAttempt.cart_id == cart_id, PaymentAttempt.status == AttemptStatus.AMOUNT_MISMATCH.value)
        .exists()
    )


def _needs_review(cart_id: int) -> bool:
    return db.session.execute(select(_under_review(cart_id))).scalar_one()


def _reusable_attempt(cart_id: int, digest: str, now: datetime) -> PaymentAttempt | None:
    """The cart's attempt for these very contents that a retry can reuse: an open
    session, or one whose creation failed and whose expires_at is still far enough.
    Any other live attempt of the cart is given up here (it asked for other contents,
    or its time is too short for Stripe)."""
    found = None
    for attempt in db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.cart_id == cart_id, PaymentAttempt.status.in_(_LIVE_ATTEMPT))
    ).scalars():
        same = f"-{digest}-" in attempt.idempotency_key
        if same and attempt.status == AttemptStatus.OPEN.value and attempt.session_expires_at > now:
            found = attempt
        elif (
            same and attempt.status == AttemptStatus.CREATING.value and attempt.session_expires_at - now >= MIN_REUSABLE
        ):
            found = attempt
        elif attempt.status == AttemptStatus.OPEN.value:
            raise _OtherSessionOpen()
        elif attempt.status == AttemptStatus.CREATING.value:
            # Never confirmed by Stripe (if Stripe made it anyway, nobody has its url
            # and it expires by itself; reconciliation lists it).
            attempts.move(attempt, AttemptStatus.FAILED, now)
            log.info("attempt %s abandoned (cart %s): superseded before Stripe confirmed it", attempt.id, cart_id)
    return found


def _session_params(attempt: PaymentAttempt, lines: list[dict], success_url: str, cancel_url: str) -> dict:
    # The attempt's key is unique for ever (ids may be reused by another database);
    # reconciliation and payment-failure events find the attempt by it.
    names = {"cart_id": str(attempt.cart_id), "attempt_id": str(attempt.id), "attempt_key": attempt.idempotency_key}
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": attempt.currency.lower(),
                    "unit_amount": line["unit_price_minor"],
                    "product_data": {"name": line["name"]},
                },
                "quantity": line["quantity"],
            }
            for line in lines
        ],
        "customer_email": attempt.buyer_email,
        "locale": attempt.locale,  # the hosted page speaks the buyer's language
        "client_reference_id": f"cart-{attempt.cart_id}",
        "metadata": names,
        "payment_intent_data": {"metadata": names},
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": int(attempt.session_expires_at.timestamp()),
    }


def _create_session(attempt_id: int, cart_id: int, key: str, params: dict) -> CheckoutStarted:
    try:
        session = gw.get_gateway().create_checkout_session(params, idempotency_key=key)
    except gw.StripeError as error:
        _record_creation_error(attempt_id, error)
        log.warning("attempt %s (cart %s): Stripe refused or failed: %s", attempt_id, cart_id, type(error).__name__)
        raise PaymentServiceUnavailable() from error
    if not session.url:
        _give_up_session_without_url(attempt_id, cart_id, session)
        raise PaymentServiceUnavailable()
    now = utcnow()
    token = carts.new_token()
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        attempt.stripe_checkout_session_id = session.id
        attempt.checkout_url = session.url
        attempts.move(attempt, AttemptStatus.OPEN, now)
        attempt.raw = json.dumps(session.to_dict())
        attempt.error_type = attempt.error_code = attempt.error_message = None
        expires_at = datetime.fromtimestamp(session.expires_at, tz=now.tzinfo)
        moved = db.session.execute(
            update(Cart)
            .where(Cart.id == cart_id, Cart.status.in_(_HOLDING), Cart.expires_at > now)
            .values(status=CartStatus.CHECKING_OUT.value, token=token, expires_at=expires_at, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            attempts.move(attempt, AttemptStatus.EXPIRED, now)
    if moved != 1:
        # The hold lapsed while Stripe answered: nobody may pay for it now.
        _close_at_stripe(session.id)
        raise CartLapsed()
    log.info("cart %s checking out: attempt %s, session %s", cart_id, attempt_id, session.id)
    return CheckoutStarted(url=session.url, session_id=session.id, cart_token=token)


def _give_up_session_without_url(attempt_id: int, cart_id: int, session) -> None:
    """Stripe made a session but gave no page to pay it on (``url: null``): nobody can
    pay it. The attempt fails (a retry makes a new one, with a new key) and the session
    is closed at Stripe; the cart stays as it was, held."""
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        attempt.stripe_checkout_session_id = session.id
        attempt.raw = json.dumps(session.to_dict())
        attempts.move(attempt, AttemptStatus.FAILED, utcnow())
        attempt.error_type = "missing_url"
        attempt.error_message = "Stripe answered the Checkout Session without a url"
    log.warning("attempt %s (cart %s): session %s has no url; closing it", attempt_id, cart_id, session.id)
    try:
        _close_at_stripe(session.id)
    except PaymentServiceUnavailable:
        log.warning("session %s (no url) could not be closed now; it expires by itself", session.id)


def _record_creation_error(attempt_id: int, error: Exception) -> None:
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        _put_error(attempt, error)
        # Refused outright (bad request, key reused with other parameters): a new
        # attempt is needed. Failed in transit or on Stripe's side: the same request
        # may be retried with the same key.
        if isinstance(error, (gw.InvalidRequestError, gw.IdempotencyError, gw.AuthenticationError)):
            attempts.move(attempt, AttemptStatus.FAILED, utcnow())
        else:
            attempt.updated_at = utcnow()


def _put_error(attempt: PaymentAttempt, error: Exception) -> None:
    obj = getattr(error, "error", None)
    attempt.error_type = (getattr(obj, "type", None) if obj is not None else None) or type(error).__name__
    attempt.error_code = getattr(error, "code", None)
    attempt.decline_code = getattr(obj, "decline_code", None) if obj is not None else None
    attempt.error_message = (getattr(obj, "message", None) if obj is not None else None) or str(error)[:1000]


# --- closing a checkout ------------------------------------------------------------------


def _close_at_stripe(session_id: str) -> str:
    """Make sure nobody can still pay in this session. Returns ``expired`` (it can no
    longer be paid), ``paid``, or ``processing`` (completed, a bank debit settling).
    Raises ``PaymentServiceUnavailable`` when Stripe cannot tell."""
    gateway = gw.get_gateway()
    try:
        gateway.expire_checkout_session(session_id)
        return "expired"
    except gw.InvalidRequestError:
        pass  # not open any more: see what it became
    except gw.StripeError as error:
        raise PaymentServiceUnavailable() from error
    try:
        session = gateway.retrieve_checkout_session(session_id)
    except gw.StripeError as error:
        raise PaymentServiceUnavailable() from error
    if session.status == "complete":
        return "paid" if session.payment_status == "paid" else "processing"
    return "expired"


def _close_cart_sessions(cart_id: int, now: datetime, source: str) -> dict[str, str]:
    """Close the cart's open Checkout Sessions at Stripe; returns each one's outcome
    (``_close_at_stripe``). A session found paid (or settling) is fulfilled.

    The attempts are marked expired *before* Stripe is asked: Stripe's
    ``checkout.session.expired`` event may arrive before this returns, and must then
    find the attempt ended and leave the cart to us. If Stripe cannot be reached, the
    attempts are reopened and ``PaymentServiceUnavailable`` is raised."""
    with write_transaction():
        carts.lock_cart_row(cart_id, now)
        open_ = db.session.execute(
            select(PaymentAttempt.id, PaymentAttempt.stripe_checkout_session_id).where(
                PaymentAttempt.cart_id == cart_id,
                PaymentAttempt.status == AttemptStatus.OPEN.value,
                PaymentAttempt.stripe_checkout_session_id.is_not(None),
            )
        ).all()
        _set_status([a for a, _ in open_], AttemptStatus.OPEN, AttemptStatus.EXPIRED, now)
    outcomes: dict[str, str] = {}
    try:
        for _, session_id in open_:
            outcomes[session_id] = _close_at_stripe(session_id)
    except PaymentServiceUnavailable:
        with write_transaction():
            _set_status([a for a, s in open_ if s not in outcomes], AttemptStatus.EXPIRED, AttemptStatus.OPEN, now)
        raise
    paid = [a for a, s in open_ if outcomes[s] != "expired"]
    if paid:
        with write_transaction():
            _set_status(paid, AttemptStatus.EXPIRED, AttemptStatus.OPEN, now)  # fulfil takes it from here
        for _, session_id in open_:
            if outcomes[session_id] != "expired":
                fulfilment.fulfil(session_id, source=source)
    return outcomes


def _set_status(attempt_ids: list[int], from_: AttemptStatus, to: AttemptStatus, now: datetime) -> None:
    if attempt_ids:
        attempts.move_where(PaymentAttempt.id.in_(attempt_ids), from_=[from_], to=to, now=now)


def return_to_cart(token: str | None, now: datetime | None = None) -> None:
    """The buyer came back from Stripe and wants to change the cart: expire its open
    session at Stripe first, then make the cart active again (still held until its
    expiry; released if that passed). Raises ``PaymentAlreadyMade`` if the buyer paid,
    ``PaymentNeedsReview`` if a payment of it awaits a person, ``PaymentServiceUnavailable``
    if Stripe cannot be asked (nothing changes)."""
    if not token:
        return
    cart = db.session.execute(select(Cart).where(Cart.token == token)).scalar_one_or_none()
    if cart is None or cart.status != CartStatus.CHECKING_OUT.value:
        return
    cart_id = cart.id
    if _needs_review(cart_id):
        raise PaymentNeedsReview()
    now = now or utcnow()
    outcomes = _close_cart_sessions(cart_id, now, "return-to-cart")
    if any(outcome != "expired" for outcome in outcomes.values()):
        raise PaymentAlreadyMade()
    with write_transaction():
        carts.lock_cart_row(cart_id, now)
        reopened = db.session.execute(
            update(Cart)
            .where(Cart.id == cart_id, Cart.status == CartStatus.CHECKING_OUT.value, Cart.expires_at > now)
            .values(status=CartStatus.ACTIVE.value, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not reopened:
            carts.release_checking_out(cart_id, now)
    log.info("cart %s back from checkout (%s)", cart_id, "held" if reopened else "released: its time ran out")


def expire_lapsed_checkouts(now: datetime | None = None, limit: int = 200) -> int:
    """The sweep's part for carts being paid for whose hold lapsed: expire their open
    session at Stripe (so no payment can start late), then release the hold; if the
    buyer did pay, fulfil instead. Returns how many carts were released. Carts whose
    session Stripe cannot close right now are left for the next sweep (their session
    expires at Stripe by itself, and its webhook releases them); carts with a payment
    under review (``amount_mismatch``) keep their hold for the person who resolves it."""
    now = now or utcnow()
    cart_ids = list(
        db.session.execute(
            select(Cart.id)
            .where(Cart.status == CartStatus.CHECKING_OUT.value, Cart.expires_at <= now, ~_under_review(Cart.id))
            .order_by(Cart.expires_at)
            .limit(limit)
        ).scalars()
    )
    released = 0
    for cart_id in cart_ids:
        try:
            _close_cart_sessions(cart_id, now, "sweep")
        except PaymentServiceUnavailable:
            log.warning("sweep: cart %s left held: Stripe could not close its session now", cart_id)
            continue
        with write_transaction():
            carts.lock_cart_row(cart_id, now)
            # Attempts whose creation never got an answer end with the hold.
            attempts.move_where(
                PaymentAttempt.cart_id == cart_id, from_=[AttemptStatus.CREATING], to=AttemptStatus.EXPIRED, now=now
            )
            if carts.release_checking_out(cart_id, now):
                released += 1
                log.info("sweep: cart %s released, its checkout session expired", cart_id)
    return released


# --- what the checkout form remembers ------------------------------------------------------

# A payment that went through: its names are not offered to the next purchase.
_PAID_OUT = (
    AttemptStatus.PAID.value,
    AttemptStatus.REFUNDING.value,
    AttemptStatus.REFUNDED.value,
    AttemptStatus.AMOUNT_MISMATCH.value,
)

# The checkout form's fields as this browser last typed them, kept in its signed session
# cookie only when a payment could not start (the hold lapsed): over this size, not kept
# (a cookie over 4 kB is dropped by the browser, and the cart token with it).
DRAFT_MAX_CHARS = 1500


def hold_minutes_while_paying() -> int:
    """How long the hold becomes when the buyer goes to payment (Stripe's minimum)."""
    return int((SESSION_LIFETIME + SESSION_SLACK).total_seconds() // 60)


def form_of_attempt(attempt: PaymentAttempt) -> dict[str, str]:
    """An attempt's email and attendee names as the checkout form's fields."""
    form = {"email": attempt.buyer_email}
    n = 0
    for line in json.loads(attempt.lines or "[]"):
        for first, last in line.get("attendees") or []:
            n += 1
            form[f"first-{n}"], form[f"last-{n}"] = first, last
    return form


def remembered_form(token: str | None, started_here: str | None) -> dict[str, str]:
    """What this browser typed into the checkout form for a payment that did not go
    through (declined, left with Back, lapsed): the last attempt of its cart, else of
    the Checkout Session its signed cookie names (the cart that held it lapsed and a
    new one was made). Only this browser holds either; nothing once it paid."""
    attempt = None
    if token:
        attempt = db.session.execute(
            select(PaymentAttempt)
            .join(Cart, Cart.id == PaymentAttempt.cart_id)
            .where(Cart.token == token)
            .order_by(PaymentAttempt.id.desc())
            .limit(1)
        ).scalar_one_or_none()
    if attempt is None and started_here:
        attempt = db.session.execute(
            select(PaymentAttempt).where(PaymentAttempt.stripe_checkout_session_id == started_here)
        ).scalar_one_or_none()
    if attempt is None or attempt.status in _PAID_OUT:
        return {}
    return form_of_attempt(attempt)


def draft_of(form, max_tickets: int) -> dict[str, str] | None:
    """The checkout form's fields worth keeping (email, names), or None if too long."""
    kept = {"email": (form.get("email") or "")[:254]}
    for n in range(1, max_tickets + 1):
        for field in (f"first-{n}", f"last-{n}"):
            if form.get(field):
                kept[field] = form.get(field)[:NAME_MAX]
    if len(json.dumps(kept)) > DRAFT_MAX_CHARS or not any(kept.values()):
        return None
    return kept


# --- what the success page shows ---------------------------------------------------------

# The success page waits this long for the webhook before asking Stripe itself, and
# stops polling after GIVE_UP (the confirmation then comes by mail).
ASK_STRIPE_AFTER = 10
GIVE_UP = 30


@dataclass(frozen=True)
class PaymentState:
    """``order``, ``refunded``, ``review``, ``failed``, ``processing``, ``waiting``, ``gave_up`` or ``not_found``."""

    kind: str
    order: object | None = None
    final: bool = False
    bank_debit: bool = False  # "failed": the bank refused a debit that had started


def payment_state(
    session_id: str | None, started_here: str | None, waited: float, allowance: Allowance = UNLIMITED
) -> PaymentState:
    """Where the buyer's payment stands, for the browser that started this checkout
    only: ``started_here`` is the Checkout Session its signed session cookie names
    (written with the cart's new token when checkout started; the cart's token itself
    cannot tell, as it is replaced again when the order is made, perhaps by a webhook
    while the buyer is away). After ``ASK_STRIPE_AFTER`` seconds without an order, asks
    Stripe, within ``allowance``, and fulfils if paid (the webhook may be late or lost)."""
    if not session_id or session_id != started_here:
        return PaymentState("not_found", final=True)
    attempt = db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.stripe_checkout_session_id == session_id)
    ).scalar_one_or_none()
    if attempt is None:
        return PaymentState("not_found", final=True)
    order = fulfilment.order_for_session(session_id)
    if order is None and waited >= ASK_STRIPE_AFTER and attempt.status not in _ENDED:
        allowance.ask_stripe()
        try:
            fulfilment.fulfil(session_id, source="success-page")
        except gw.StripeError:
            log.warning("success page: Stripe did not answer about %s; waiting on", session_id)
        db.session.rollback()
        attempt = db.session.get(PaymentAttempt, attempt.id)
        order = fulfilment.order_for_session(session_id)
    if order is not None:
        return PaymentState("order", order=order, final=True)
    if attempt.status in (AttemptStatus.REFUNDING.value, AttemptStatus.REFUNDED.value):
        return PaymentState("refunded", final=True)
    if attempt.status == AttemptStatus.AMOUNT_MISMATCH.value:
        return PaymentState("review", final=True)
    if attempt.status in (AttemptStatus.FAILED.value, AttemptStatus.EXPIRED.value):
        return PaymentState("failed", final=True, bank_debit=debit_failed(attempt))
    if attempt.status == AttemptStatus.PROCESSING.value:
        return PaymentState("processing", final=waited >= GIVE_UP)
    if waited >= GIVE_UP:
        return PaymentState("gave_up", final=True)
    return PaymentState("waiting")


def debit_failed(attempt: PaymentAttempt) -> bool:
    """The attempt failed after its bank debit started (it went through ``processing``):
    the bank refused the debit, nothing lapsed."""
    if attempt.status != AttemptStatus.FAILED.value:
        return False
    return db.session.execute(
        select(
            select(AttemptEvent.id)
            .where(AttemptEvent.attempt_id == attempt.id, AttemptEvent.to_status == AttemptStatus.PROCESSING.value)
            .exists()
        )
    ).scalar_one()


_ENDED = (
    AttemptStatus.FAILED.value,
    AttemptStatus.EXPIRED.value,
    AttemptStatus.REFUNDED.value,
    AttemptStatus.AMOUNT_MISMATCH.value,
)


def order_by_token(access_token: str):
    from sqlalchemy.orm import selectinload

    from .models import Order, Ticket

    if not access_token or len(access_token) > 64:
        return None
    return db.session.execute(
        select(Order)
        .where(Order.access_token == access_token)
        .options(selectinload(Order.tickets).selectinload(Ticket.ticket_type), selectinload(Order.event))
    ).scalar_one_or_none()
