"""Reconciliation: compare Stripe's recent Checkout Sessions with our attempts and orders.

Paid sessions without an order are fulfilled (the same ``fulfil``: an order, or a
refund when the stock is gone); sessions that ended at Stripe while our attempt still
waits are ended here too (releasing the hold). Every other mismatch is reported for a
person. Refunds still waiting for Stripe's answer are asked again (``refunds.submit_requested``).
Running it twice changes nothing the second time.

Each run is stored (``ReconcileRun``) with what it found for a person (``ReconcileItem``,
one row per kind + Stripe id: found again, it is the same item; not found again among the
sessions the run checked, its cause went away and it closes itself). This module owns
``ReconcileItem.status``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update

from . import fulfilment, refunds, stripe_events
from .database import write_transaction
from .extensions import db
from .models import AttemptStatus, Order, PaymentAttempt, ReconcileItem, ReconcileRun, utcnow
from .payments import gateway as gw

log = logging.getLogger(__name__)


OPEN = "open"
CLOSED = "closed"  # its cause went away (found no more)
DISMISSED = "dismissed"  # a person looked and left a note
FULFILLED = "fulfilled"  # a person fulfilled it from the inbox
REFUNDED = "refunded"  # a person refunded it from the inbox


@dataclass
class Found:
    """A mismatch for a person, as stored in ``ReconcileItem``."""

    kind: str
    session: object
    attempt: PaymentAttempt | None
    ours: str


@dataclass
class Report:
    checked: int = 0
    fixed: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # the session ids checked
    run_id: int | None = None
    closed: int = 0


def reconcile(
    *, since: timedelta = timedelta(hours=48), now: datetime | None = None, started_by: str = "cli"
) -> Report:
    now = now or utcnow()
    report = Report()
    with write_transaction():
        run = ReconcileRun(started_by=started_by[:254], started_at=utcnow())
        db.session.add(run)
        db.session.flush()
        report.run_id = run.id
    sessions = gw.get_gateway().list_checkout_sessions(created={"gte": int((now - since).timestamp())}, limit=100)
    for session in sessions.auto_paging_iter():
        report.checked += 1
        report.seen.add(session.id)
        _one(session, report)
    asked = refunds.submit_requested()
    if asked:
        report.fixed.append(f"{asked} refund(s) still waiting for Stripe asked again")
    _store(report)
    return report


def _store(report: Report) -> None:
    """Write what the run found: upsert each item by (kind, Stripe id), close the open items
    of sessions this run checked that it found no more, and finish the run's row."""
    now = utcnow()
    found_keys = set()
    with write_transaction():
        for found in report.found:
            key = (found.kind, found.session.id)
            if key in found_keys:
                continue
            found_keys.add(key)
            item = db.session.execute(
                select(ReconcileItem)
                .where(ReconcileItem.kind == found.kind, ReconcileItem.stripe_id == found.session.id)
                .with_for_update()
            ).scalar_one_or_none()
            values = {
                "stripe_status": f"{found.session.status}/{found.session.payment_status}"[:80],
                "stripe_amount_minor": found.session.amount_total,
                "stripe_currency": (found.session.currency or "")[:3].upper() or None,
                "ours": found.ours,
                "last_run_id": report.run_id,
                "last_seen_at": now,
            }
            if item is None:
                item = ReconcileItem(
                    kind=found.kind,
                    stripe_id=found.session.id,
                    status=OPEN,
                    event_id=found.attempt.event_id if found.attempt is not None else None,
                    attempt_id=found.attempt.id if found.attempt is not None else None,
                    first_run_id=report.run_id,
                    first_seen_at=now,
                    note="",
                    **values,
                )
                db.session.add(item)
            else:
                for name, value in values.items():
                    setattr(item, name, value)
                if item.status == CLOSED:  # back again: open it again
                    item.status = OPEN
                    item.closed_at = None
        gone = db.session.execute(select(ReconcileItem).where(ReconcileItem.status == OPEN).with_for_update()).scalars()
        for item in gone:
            if item.stripe_id in report.seen and (item.kind, item.stripe_id) not in found_keys:
                item.status = CLOSED
                item.closed_at = now
                report.closed += 1
        run = db.session.get(ReconcileRun, report.run_id)
        run.finished_at = now
        run.checked_count = report.checked
        run.fixed_count = len(report.fixed)
        run.found_count = len(found_keys)
        run.closed_count = report.closed


def _one(session, report: Report) -> None:
    attempt_id = fulfilment._attempt_id_for(session)
    order = fulfilment.order_for_session(session.id)
    if attempt_id is None:
        report.mismatches.append(
            f"{session.id}: at Stripe ({session.status}, {session.payment_status}) but no attempt of ours"
        )
        report.found.append(Found("no_attempt", session, None, "no attempt of ours"))
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
                report.found.append(
                    Found(
                        "amount_mismatch",
                        session,
                        attempt,
                        f"attempt {attempt_id} asked {attempt.amount_minor} {attempt.currency}; no order",
                    )
                )
            else:
                report.fixed.append(f"{session.id}: paid without an order -> {outcome.kind}")
        return
    if order is not None:
        report.mismatches.append(
            f"{session.id}: order {order.code} but the session is {session.status}/{session.payment_status}"
        )
        report.found.append(Found("order_not_paid", session, attempt, f"order {order.code}"))
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
            report.found.append(Found("open_at_stripe", session, attempt, f"attempt {attempt_id} is {status}"))
    elif session.status == "open" and status != AttemptStatus.OPEN.value:
        report.mismatches.append(f"{session.id}: open at Stripe but attempt {attempt_id} is {status}")
        report.found.append(Found("open_at_stripe", session, attempt, f"attempt {attempt_id} is {status}"))


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


# --- the inbox: what a person sees and does with the items --------------------------------------


class ItemNotOpen(Exception):
    """The item was dealt with already (a double click, or another person)."""


NOTE_MAX = 2000


def open_items(event_ids) -> list[ReconcileItem]:
    """Open items of the given events (a subquery of ids), newest first."""
    return list(
        db.session.execute(
            select(ReconcileItem)
            .where(ReconcileItem.status == OPEN, ReconcileItem.event_id.in_(event_ids))
            .order_by(ReconcileItem.last_seen_at.desc(), ReconcileItem.id.desc())
        ).scalars()
    )


def item_of(event_ids, item_id: int) -> ReconcileItem | None:
    return db.session.execute(
        select(ReconcileItem).where(ReconcileItem.id == item_id, ReconcileItem.event_id.in_(event_ids))
    ).scalar_one_or_none()


def last_runs(limit: int = 5) -> list[ReconcileRun]:
    return list(db.session.execute(select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit)).scalars())


def dismiss(item_id: int, note: str, actor, organiser_id: int) -> None:
    """Close an open item with a person's note, under its row lock (a second click finds it
    dismissed and raises ``ItemNotOpen``); audited in the same transaction."""
    from . import audit

    with write_transaction():
        item = db.session.execute(
            select(ReconcileItem).where(ReconcileItem.id == item_id).with_for_update()
        ).scalar_one()
        if item.status != OPEN:
            raise ItemNotOpen()
        item.status = DISMISSED
        item.note = note
        item.closed_at = utcnow()
        audit.record(
            actor,
            "reconcile_item.dismiss",
            "reconcile_item",
            item.id,
            organiser_id=organiser_id,
            event_id=item.event_id,
            before={"status": OPEN},
            after={"status": DISMISSED, "note": note},
        )
