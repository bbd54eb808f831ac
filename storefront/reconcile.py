"""Reconciliation: compare Stripe's recent Checkout Sessions with our attempts and orders.

Paid sessions without an order are fulfilled (the same ``fulfil``: an order, or a
refund when the stock is gone); sessions that ended at Stripe while our attempt still
waits are ended here too (releasing the hold). Every other mismatch is reported for a
person. Refunds still waiting for Stripe's answer are asked again (``refunds.submit_requested``).
Running it twice changes nothing the second time.

Each run is stored (``ReconcileRun``) with what it found for a person (``ReconcileItem``,
one row per kind + Stripe id: found again, it is the same item; not found again among the
sessions the run checked, its cause went away and it closes itself). This module owns
``ReconcileItem.status`` (``TRANSITIONS`` below; ``_move`` is the only writer).

The inbox (``/admin/o/<organiser>/reconciliation``) acts on an open item: *fulfil* (a
paid session without an order: ``fulfilment.fulfil``, whose own idempotency makes one
order however often it is called), *refund* (money taken that no order can honour, or
an amount mismatch: the whole payment, at Stripe, with a key made from the item so a
double click makes one refund; the attempt follows through ``attempts``), or *dismiss*
with a note. ``ACTIONS`` says which kind offers which. A manager may also ask for a run
(``request_run``): one at a time (the ``RUN_REQUEST_LEASE``), and a run, whoever
started it, runs under ``RUNNING_LEASE`` so two never overlap.

Items without an event (a session at Stripe that names no attempt of ours, so no event
either) are the platform's, not an organiser's: no organiser's inbox lists them or lets
an action reach them (every query filters on the member's events, and NULL is in none);
``flask reconcile`` prints them for the people who run the shop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from . import attempts, audit, fulfilment, leases, refunds, stripe_events
from .audit import Actor
from .database import write_transaction
from .errors import StorefrontError
from .extensions import db
from .models import AttemptStatus, JobLease, Order, PaymentAttempt, ReconcileItem, ReconcileRun, utcnow
from .payments import gateway as gw

log = logging.getLogger(__name__)


OPEN = "open"
CLOSED = "closed"  # its cause went away (found no more)
DISMISSED = "dismissed"  # a person looked and left a note
FULFILLED = "fulfilled"  # a person fulfilled it from the inbox
REFUNDED = "refunded"  # a person refunded it from the inbox

# The one table of ``ReconcileItem.status``. closed -> open: a run finds the cause again.
# A person's decision (dismissed, fulfilled, refunded) is final: found again, it stays.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({CLOSED, DISMISSED, FULFILLED, REFUNDED}),
    CLOSED: frozenset({OPEN}),
    DISMISSED: frozenset(),
    FULFILLED: frozenset(),
    REFUNDED: frozenset(),
}

# The kinds of item, and what a person may do about each (besides dismissing it):
# amount_mismatch  paid another amount than asked; fulfilment refuses to make an order at a
#                  price nobody asked for, so: refund.
# paid_without_order  paid, ours, no order, and this run could not fulfil it (Stripe failed
#                  during fulfilment's own refund): fulfil again, or refund.
# no_attempt       at Stripe, names no attempt of ours (no event: the platform's, see above).
# order_not_paid   an order whose session Stripe does not call paid: for a person to read.
# open_at_stripe   open at Stripe while our attempt ended: for a person to read.
FULFIL = "fulfil"
REFUND = "refund"
ACTIONS: dict[str, tuple[str, ...]] = {
    "amount_mismatch": (REFUND,),
    "paid_without_order": (FULFIL, REFUND),
    "no_attempt": (),
    "order_not_paid": (),
    "open_at_stripe": (),
}

RUNNING_LEASE = "reconcile-running"  # held while any run works (job, command, manager's)
RUN_REQUEST_LEASE = "reconcile-requested"  # held from a manager's request until its run ends
RUN_LEASE_SECONDS = 600


class IllegalItemTransition(RuntimeError):
    """A programming error: code asked for a move the item's lifecycle does not have."""

    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"a reconciliation item cannot go from {current} to {wanted}")


def _move(item: ReconcileItem, to: str, now: datetime) -> None:
    """The only writer of ``ReconcileItem.status`` (an item loaded in the caller's transaction)."""
    if to not in TRANSITIONS[item.status]:
        raise IllegalItemTransition(item.status, to)
    item.status = to
    item.closed_at = None if to == OPEN else now


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
                    _move(item, OPEN, now)
        gone = db.session.execute(select(ReconcileItem).where(ReconcileItem.status == OPEN).with_for_update()).scalars()
        for item in gone:
            if item.stripe_id in report.seen and (item.kind, item.stripe_id) not in found_keys:
                _move(item, CLOSED, now)
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
            try:
                outcome = fulfilment.fulfil(session.id, source="reconcile", session=session)
            except gw.StripeError as error:
                # Fulfilment's own refund (no stock left) could not reach Stripe: a person
                # may fulfil it again (the refund decided is then finished) or refund it.
                db.session.rollback()
                report.mismatches.append(f"{session.id}: paid without an order; fulfilling failed: {error}")
                report.found.append(
                    Found("paid_without_order", session, attempt, f"attempt {attempt_id} is {attempt.status}; no order")
                )
                return
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


class ItemNotOpen(StorefrontError):
    """The item was dealt with already (a double click, or another person)."""

    status = 409

    def message(self) -> str:
        return _("That item was dealt with already: nothing was changed.")


class ActionNotOffered(StorefrontError):
    """The item's kind does not offer this action (a forged or stale form)."""

    status = 409

    def message(self) -> str:
        return _("This action does not apply to that item: nothing was changed.")


class NotFulfilled(StorefrontError):
    """Fulfilment made no order (what it found instead is ``outcome``)."""

    status = 409

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome

    def message(self) -> str:
        if self.outcome == "amount_mismatch":
            return _("Stripe was paid another amount than we asked: no order can be made. Refund it instead.")
        if self.outcome in ("not_paid", "processing"):
            return _("Stripe does not say this payment succeeded: no order was made.")
        return _("No order could be made for this payment: nothing was changed.")


class HasOrder(StorefrontError):
    status = 409

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def message(self) -> str:
        return _("This payment has an order (%(code)s): refund it from the order's page.", code=self.code)


class NothingToRefund(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("Stripe does not say this payment succeeded: there is nothing to refund.")


class StripeUnavailable(StorefrontError):
    status = 503

    def message(self) -> str:
        return _("Stripe could not be reached: nothing was refunded. Try again in a moment.")


class RunAlreadyAsked(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("A run was asked for and has not finished yet: wait for it.")


NOTE_MAX = 2000
REFUND_REASON = "reconciliation_inbox"


def actions_of(item: ReconcileItem) -> tuple[str, ...]:
    """What a person may do about an open item besides dismissing it (nothing once dealt with)."""
    return ACTIONS.get(item.kind, ()) if item.status == OPEN else ()


def open_items(event_ids) -> list[ReconcileItem]:
    """Open items of the given events (a subquery of ids), newest first. Items without an
    event are never among them (see the module docstring)."""
    return list(
        db.session.execute(
            select(ReconcileItem)
            .where(ReconcileItem.status == OPEN, ReconcileItem.event_id.in_(event_ids))
            .options(selectinload(ReconcileItem.event), selectinload(ReconcileItem.attempt))
            .order_by(ReconcileItem.last_seen_at.desc(), ReconcileItem.id.desc())
        ).scalars()
    )


def item_of(event_ids, item_id: int) -> ReconcileItem | None:
    return db.session.execute(
        select(ReconcileItem).where(ReconcileItem.id == item_id, ReconcileItem.event_id.in_(event_ids))
    ).scalar_one_or_none()


def last_runs(limit: int = 5) -> list[ReconcileRun]:
    return list(db.session.execute(select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit)).scalars())


def _lock_open(item_id: int, action: str | None) -> ReconcileItem:
    """Inside a transaction: the item under its row lock, open, offering ``action``."""
    item = db.session.execute(
        select(ReconcileItem)
        .where(ReconcileItem.id == item_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if item.status != OPEN:
        raise ItemNotOpen()
    if action is not None and action not in ACTIONS.get(item.kind, ()):
        raise ActionNotOffered()
    return item


def _audit(actor: Actor, action: str, item: ReconcileItem, organiser_id: int, after: dict) -> None:
    audit.record(
        actor,
        f"reconcile_item.{action}",
        "reconcile_item",
        item.id,
        organiser_id=organiser_id,
        event_id=item.event_id,
        before={"status": OPEN},
        after={"status": item.status, **after},
    )


def dismiss(item_id: int, note: str, actor: Actor, organiser_id: int) -> None:
    """Close an open item with a person's note, under its row lock (a second click finds it
    dismissed and raises ``ItemNotOpen``); audited in the same transaction."""
    with write_transaction():
        item = _lock_open(item_id, None)
        _move(item, DISMISSED, utcnow())
        item.note = note
        _audit(actor, "dismiss", item, organiser_id, {"note": note})


def fulfil_item(item_id: int, actor: Actor, organiser_id: int) -> int:
    """Make the order of the item's paid session through ``fulfilment.fulfil`` (the same
    path as the webhook's: one order per session, however many clicks), then mark the
    item fulfilled (or refunded, when fulfilment had to refund: the stock is gone) and
    audit it. Returns the order's id (or the attempt's, refunded). Raises ``ItemNotOpen``,
    ``ActionNotOffered``, ``NotFulfilled`` or ``StripeUnavailable`` having changed nothing
    of the item."""
    with write_transaction():
        session_id = _lock_open(item_id, FULFIL).stripe_id
    try:
        outcome = fulfilment.fulfil(session_id, source="reconcile-inbox")
    except gw.StripeError as error:
        db.session.rollback()
        log.warning("inbox: fulfilling %s failed at Stripe: %s", session_id, error)
        raise StripeUnavailable() from error
    if outcome.kind not in ("order", "refunded"):
        raise NotFulfilled(outcome.kind)
    with write_transaction():
        # A second click waited for the lock here, and finds the item fulfilled; its own
        # fulfil call above found the first one's order and made none.
        item = _lock_open(item_id, FULFIL)
        _move(item, FULFILLED if outcome.kind == "order" else REFUNDED, utcnow())
        code = db.session.execute(select(Order.code).where(Order.id == outcome.order_id)).scalar()
        item.note = _("Order %(code)s made from the inbox.", code=code) if code else _("Refunded: no stock left.")
        _audit(actor, "fulfil", item, organiser_id, {"outcome": outcome.kind, "order": code})
    return outcome.order_id or outcome.attempt_id


def refund_item(item_id: int, actor: Actor, organiser_id: int) -> str:
    """Refund the whole payment of the item's session at Stripe, when no order of ours
    can honour it (an amount mismatch, a paid session without an order). The attempt
    moves to ``refunding`` before Stripe is asked and to ``refunded`` with its answer
    (``attempts``), so fulfilment can no longer make an order for it (its cart's hold is
    then released by the sweep); the refund's idempotency key and words are fulfilment's
    for the session (``fulfilment.refund_key``), so two clicks at once, or a click and a
    webhook finishing the refund, make one refund at Stripe, and a click after the first
    finds the item refunded and asks nothing. Returns Stripe's refund id."""
    gateway = gw.get_gateway()
    with write_transaction():
        session_id = _lock_open(item_id, REFUND).stripe_id
    try:
        session = gateway.retrieve_checkout_session(session_id)
    except gw.StripeError as error:
        db.session.rollback()
        raise StripeUnavailable() from error
    payment_intent = getattr(session.payment_intent, "id", session.payment_intent)  # an id, or expanded
    if session.payment_status != "paid" or not payment_intent:
        raise NothingToRefund()
    with write_transaction():
        item = _lock_open(item_id, REFUND)
        attempt_id = item.attempt_id
        order = fulfilment.order_for_session(session_id)
        if order is not None:
            raise HasOrder(order.code)
        why = REFUND_REASON
        if attempt_id is not None:
            attempt = db.session.get(PaymentAttempt, attempt_id, with_for_update=True)
            # amount_mismatch -> refunding (the edge this action exists for); a paid session
            # fulfilment already decided to refund is refunding and stays so.
            if attempt.status != AttemptStatus.REFUNDING.value and attempts.may_move(
                attempt.status, AttemptStatus.REFUNDING
            ):
                attempts.move(attempt, AttemptStatus.REFUNDING, utcnow())
                attempt.refund_reason = REFUND_REASON
            why = attempt.refund_reason or REFUND_REASON
    try:
        # Fulfilment's key and words: a refund it decided and this one are one refund at Stripe.
        refund = gateway.create_refund(
            payment_intent,
            reason="requested_by_customer",
            metadata=fulfilment.refund_metadata(session_id, why),
            idempotency_key=fulfilment.refund_key(session_id),
        )
    except gw.StripeError as error:
        # The attempt stays refunding and the item open: the next click asks again, with the same key.
        db.session.rollback()
        log.warning("inbox: refunding %s failed at Stripe: %s", session_id, error)
        raise StripeUnavailable() from error
    with write_transaction():
        item = _lock_open(item_id, REFUND)
        if attempt_id is not None:
            attempt = db.session.get(PaymentAttempt, attempt_id, with_for_update=True)
            if attempt.status == AttemptStatus.REFUNDING.value:
                attempts.move(attempt, AttemptStatus.REFUNDED, utcnow())
            attempt.stripe_refund_id = refund.id
        _move(item, REFUNDED, utcnow())
        item.note = _("Refunded from the inbox (%(refund)s).", refund=refund.id)
        _audit(
            actor,
            "refund",
            item,
            organiser_id,
            {"refund": refund.id, "amount_minor": refund.amount, "currency": (refund.currency or "").upper()},
        )
    return refund.id


# --- runs a manager asks for --------------------------------------------------------------------


def run_requested_until() -> datetime | None:
    """Until when a manager's request for a run holds (None: nothing asked)."""
    until = db.session.execute(select(JobLease.expires_at).where(JobLease.name == RUN_REQUEST_LEASE)).scalar()
    return until if until is not None and until > utcnow() else None


def request_run(actor: Actor, organiser_id: int) -> str:
    """A manager asks for a run: take the request lease (one request at a time, the
    database deciding between two clicks) and audit it; the caller enqueues the job with
    the returned holder once this committed. Raises ``RunAlreadyAsked``."""
    holder = leases.new_holder()
    if not leases.take(RUN_REQUEST_LEASE, RUN_LEASE_SECONDS, holder):
        raise RunAlreadyAsked()
    with write_transaction():
        audit.record(
            actor, "reconcile_run.requested", "reconcile_run", None, organiser_id=organiser_id, after={"holder": holder}
        )
    return holder


def run_exclusive(*, since: timedelta, started_by: str) -> Report | None:
    """``reconcile`` under ``RUNNING_LEASE``: None (nothing done) when another run works now."""
    with leases.held(RUNNING_LEASE, RUN_LEASE_SECONDS) as mine:
        if not mine:
            return None
        return reconcile(since=since, started_by=started_by)


def run_in_progress() -> bool:
    """A run started and not finished, within the lease's time (an older one died)."""
    since = utcnow() - timedelta(seconds=RUN_LEASE_SECONDS)
    return (
        db.session.execute(
            select(ReconcileRun.id).where(ReconcileRun.finished_at.is_(None), ReconcileRun.started_at > since).limit(1)
        ).first()
        is not None
    )


def finish_request(holder: str) -> None:
    leases.finish(RUN_REQUEST_LEASE, holder)
