"""Reconciliation: compare Stripe's recent Checkout Sessions with our attempts and orders.

Paid sessions without an order are fulfilled (the same ``fulfil``: an order, or a
refund when the stock is gone); sessions that ended at Stripe while our attempt still
waits are ended here too (releasing the hold). Every other mismatch is reported for a
person. Refunds still waiting for Stripe's answer are asked again (``refunds.submit_requested``).
Running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from . import fulfilment, refunds, stripe_events
from .database import write_transaction
from .extensions import db
from .models import AttemptStatus, Order, PaymentAttempt, utcnow
from .payments import gateway as gw

log = logging.getLogger(__name__)


@dataclass
class Report:
    checked: int = 0
    fixed: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def reconcile(*, since: timedelta = timedelta(hours=48), now: datetime | None = None) -> Report:
    now = now or utcnow()
    report = Report()
    sessions = gw.get_gateway().list_checkout_sessions(created={"gte": int((now - since).timestamp())}, limit=100)
    for session in sessions.auto_paging_iter():
        report.checked += 1
        _one(session, report)
    asked = refunds.submit_requested()
    if asked:
        report.fixed.append(f"{asked} refund(s) still waiting for Stripe asked again")
    return report


def _one(session, report: Report) -> None:
    attempt_id = fulfilment._attempt_id_for(session)
    order = fulfilment.order_for_session(session.id)
    if attempt_id is None:
        report.mismatches.append(
            f"{session.id}: at Stripe ({session.status}, {session.payment_status}) but no attempt of ours"
        )
        return
    attempt = db.session.get(PaymentAttempt, attempt_id)
    if attempt.stripe_checkout_session_id is None:
        # Stripe made it but we never recorded it (a crash between the two).
        with write_transaction():
            db.session.execute(
                update(PaymentAttempt)
                .where(PaymentAttempt.id == attempt_id)
                .values(stripe_checkout_session_id=session.id, updated_at=utcnow())
            )
        report.fixed.append(f"{session.id}: recorded on attempt {attempt_id} (Stripe had it, we did not)")
    status = attempt.status
    if session.payment_status == "paid":
        if order is None and status != AttemptStatus.REFUNDED.value:
            outcome = fulfilment.fulfil(session.id, source="reconcile", session=session)
            if outcome.kind == "amount_mismatch":
                report.mismatches.append(
                    f"{session.id}: paid {session.amount_total} {session.currency} but attempt {attempt_id} asked "
                    f"for {attempt.amount_minor} {attempt.currency}: no order, left for a person (flask payment-review)"
                )
            else:
                report.fixed.append(f"{session.id}: paid without an order -> {outcome.kind}")
        return
    if order is not None:
        report.mismatches.append(
            f"{session.id}: order {order.code} but the session is {session.status}/{session.payment_status}"
        )
        return
    if session.status == "expired" and status in (AttemptStatus.CREATING.value, AttemptStatus.OPEN.value):
        outcome = stripe_events.end_attempt(session.id, AttemptStatus.EXPIRED, "reconcile")
        report.fixed.append(f"{session.id}: expired at Stripe, attempt {attempt_id} was {status} -> {outcome}")
    elif session.status == "complete" and status in (AttemptStatus.CREATING.value, AttemptStatus.OPEN.value):
        outcome = fulfilment.fulfil(session.id, source="reconcile", session=session)
        report.fixed.append(f"{session.id}: completed unpaid at Stripe -> {outcome.kind}")
    elif session.status == "open" and status in (AttemptStatus.EXPIRED.value, AttemptStatus.FAILED.value):
        # We ended it (the buyer left, the hold lapsed) but Stripe never heard: close
        # it now, so no payment can start for a hold that no longer exists.
        try:
            gw.get_gateway().expire_checkout_session(session.id)
            report.fixed.append(
                f"{session.id}: open at Stripe but attempt {attempt_id} is {status} -> expired at Stripe"
            )
        except gw.StripeError as error:
            report.mismatches.append(
                f"{session.id}: open at Stripe, attempt {attempt_id} is {status}; expiring failed: {error}"
            )
    elif session.status == "open" and status != AttemptStatus.OPEN.value:
        report.mismatches.append(f"{session.id}: open at Stripe but attempt {attempt_id} is {status}")


def orders_without_paid_session() -> list[str]:
    """Orders whose session Stripe does not call paid (a check for tests and people)."""
    out = []
    gateway = gw.get_gateway()
    for code, session_id in db.session.execute(
        select(Order.code, Order.stripe_checkout_session_id).where(Order.stripe_checkout_session_id.is_not(None))
    ):
        if gateway.retrieve_checkout_session(session_id).payment_status != "paid":
            out.append(code)
    return out
