"""Payments a person must look at, because money moved otherwise than the shop meant.

* ``paid_other_than_asked``: Stripe reports a session paid with another amount or
  currency than its attempt asked for (``fulfilment``'s check; status
  ``amount_mismatch``). No order was made and the cart's hold is kept: a person makes
  the order by hand or refunds, then releases the hold.
* ``charged_other_than_shown``: attempts made before migration 0004 in a zero- or
  three-decimal currency, when the shop asked Stripe for 100 times (or a tenth of) the
  amount it showed. Listed while they took or may still take money; a person refunds
  the difference (or expires a session still open).

``flask payment-review`` prints this list; the back office will show the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select

from .extensions import db
from .models import AttemptStatus, Order, PaymentAttempt

# The attempts of before migration 0004 that took money, or still could.
_MAY_HAVE_CHARGED = (
    AttemptStatus.PAID.value,
    AttemptStatus.OPEN.value,
    AttemptStatus.CREATING.value,
    AttemptStatus.PROCESSING.value,
    AttemptStatus.REFUNDING.value,
)


@dataclass(frozen=True)
class ToReview:
    kind: str  # "paid_other_than_asked" | "charged_other_than_shown"
    attempt_id: int
    attempt_status: str
    session_id: str | None
    buyer_email: str
    order_code: str | None
    asked_minor: int  # what Stripe was asked to charge
    currency: str
    # paid_other_than_asked: what Stripe says was paid; charged_other_than_shown: what the shop showed.
    other_minor: int | None
    other_currency: str | None


def payments_to_review() -> list[ToReview]:
    """Every payment listed in the module docstring, oldest first."""
    rows = db.session.execute(
        select(PaymentAttempt, Order.code)
        .outerjoin(Order, Order.stripe_checkout_session_id == PaymentAttempt.stripe_checkout_session_id)
        .where(
            or_(
                PaymentAttempt.status == AttemptStatus.AMOUNT_MISMATCH.value,
                PaymentAttempt.displayed_amount_minor.is_not(None) & PaymentAttempt.status.in_(_MAY_HAVE_CHARGED),
            )
        )
        .order_by(PaymentAttempt.id)
    ).all()
    out = []
    for attempt, order_code in rows:
        mismatch = attempt.status == AttemptStatus.AMOUNT_MISMATCH.value
        out.append(
            ToReview(
                kind="paid_other_than_asked" if mismatch else "charged_other_than_shown",
                attempt_id=attempt.id,
                attempt_status=attempt.status,
                session_id=attempt.stripe_checkout_session_id,
                buyer_email=attempt.buyer_email,
                order_code=order_code,
                asked_minor=attempt.amount_minor,
                currency=attempt.currency,
                other_minor=attempt.paid_amount_minor if mismatch else attempt.displayed_amount_minor,
                other_currency=attempt.paid_currency if mismatch else attempt.currency,
            )
        )
    return out
