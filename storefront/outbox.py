"""The mail outbox: mail a buyer is due, as rows, and the one module that writes their
status (``MailStatus``).

Recorded with what made it due: ``confirmation_due`` and ``refund_notice_due`` run
inside the transaction that makes the order (or records the refund), so the two commit
together or not at all: a paid order never lacks its confirmation. After that commit
the caller asks ``storefront.jobs`` to send it soon; if that is lost (the queue
unreachable, the process stopped), the periodic retry finds the row by its ``due_at``.

Sending one row (``send``): claim it with a guarded UPDATE (pending and due, or
``sending`` with a claim that ran out because its sender died), build the message with
``storefront.mail``'s builder, give it the row's Message-ID, deliver it, mark it sent.
A failure puts it back to pending with a later ``due_at`` (doubling from
``MAIL_RETRY_SECONDS`` up to ``MAIL_RETRY_MAX_SECONDS``) and keeps the error on the row;
after ``MAIL_MAX_ATTEMPTS`` tries, or at once for an address that is not one, it is
``failed``, for a person (``flask send-confirmations`` tries those again too).

How many copies reach the buyer: one, except when a sender dies after the mail server
accepted the message and before the row is marked sent. No protocol lets the shop and an
SMTP server commit together, so then the row is taken again once its claim ran out
(``MAIL_CLAIM_SECONDS``) and a second copy goes out: at most one more per sender that
died there. Every copy carries the row's Message-ID, so mail clients show it once. Into
the outbox folder (no ``MAIL_SERVER``) it is exactly one: the file's name comes from the
row, so a second delivery replaces the first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import mail
from .database import write_transaction
from .extensions import db
from .models import MailKind, MailOutbox, MailStatus, Order, utcnow

log = logging.getLogger(__name__)

# Which orders still get their confirmation when its turn comes.
CONFIRMED_STATUSES = mail.CONFIRMED_STATUSES


# --- recording what is due (inside the caller's transaction) -----------------------------------


def confirmation_due(order_id: int) -> int:
    """The order's confirmation is due: its row, in the caller's transaction. Returns its id."""
    return _record(MailKind.ORDER_CONFIRMATION, order_id=order_id)


def refund_notice_due(attempt_id: int) -> int:
    """The "your payment is refunded" notice of a late payment is due; see ``confirmation_due``."""
    return _record(MailKind.REFUND_NOTICE, attempt_id=attempt_id)


def event_cancelled_due(order_id: int) -> int:
    """The "your event is cancelled, your money is refunded" mail of one order; see ``confirmation_due``."""
    return _record(MailKind.EVENT_CANCELLED, order_id=order_id)


def confirmation_resend_due(order_id: int, resend: int) -> int | None:
    """Copy number ``resend`` (1, 2, …) of the order's confirmation is due, in the caller's
    transaction: its row's id, or None when that copy is recorded already (the same
    Resend clicked twice). It is sent like the confirmation, with a Message-ID of its own."""
    return _insert(MailKind.ORDER_CONFIRMATION, order_id=order_id, resend=resend)


def resends_of(order_id: int, since=None) -> int:
    """How many copies of the order's confirmation were asked for again (since ``since``)."""
    query = select(func.count()).where(
        MailOutbox.order_id == order_id, MailOutbox.kind == MailKind.ORDER_CONFIRMATION.value, MailOutbox.resend > 0
    )
    if since is not None:
        query = query.where(MailOutbox.created_at >= since)
    return db.session.execute(query).scalar_one()


def _record(kind: MailKind, *, order_id: int | None = None, attempt_id: int | None = None) -> int:
    """Insert the row unless one of this kind exists for the order or attempt (two
    fulfilments racing to record a refund both end here): then the existing one's id."""
    _insert(kind, order_id=order_id, attempt_id=attempt_id, resend=0)
    column, ref = (MailOutbox.order_id, order_id) if order_id is not None else (MailOutbox.attempt_id, attempt_id)
    return db.session.execute(
        select(MailOutbox.id).where(MailOutbox.kind == kind.value, column == ref, MailOutbox.resend == 0)
    ).scalar_one()


def _insert(kind: MailKind, *, order_id: int | None = None, attempt_id: int | None = None, resend: int) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING: the new row's id, None if the constraint kept it out."""
    now = utcnow()
    values = {
        "kind": kind.value,
        "resend": resend,
        "order_id": order_id,
        "attempt_id": attempt_id,
        "status": MailStatus.PENDING.value,
        "attempts": 0,
        "due_at": now,
        "created_at": now,
        "message_id": _new_message_id(),
    }
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    inserted = dialect.insert(MailOutbox).values(values).on_conflict_do_nothing().returning(MailOutbox.id)
    return db.session.execute(inserted).scalar_one_or_none()


def _new_message_id() -> str:
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    return make_msgid(idstring="storefront", domain=domain)


# --- sending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    order_id: int | None
    attempt_id: int | None
    attempts: int
    message_id: str
    created_at: datetime


def send(mail_id: int, *, now: datetime | None = None, also_waiting: bool = False) -> str:
    """Send one row if it is this caller's to send. Returns what happened: ``sent``,
    ``retry`` (failed, due again later), ``failed`` (given up), ``skipped`` (no longer
    to be sent) or ``not_mine`` (sent already, not due yet, or another sender has it).
    ``also_waiting``: a person asked (``flask send-confirmations``), so rows waiting for
    their retry and rows given up are sent now too. Never raises."""
    try:
        claimed = _claim(mail_id, now or utcnow(), also_waiting)
    except Exception:
        log.exception("mail %s: could not claim it; it stays due", mail_id)
        return "not_mine"
    if claimed is None:
        return "not_mine"
    who = f"order {claimed.order_id}" if claimed.order_id is not None else f"attempt {claimed.attempt_id}"
    try:
        if claimed.kind == MailKind.ORDER_CONFIRMATION and not _still_confirmed(claimed.order_id):
            return _finish(claimed, MailStatus.SKIPPED, "the order is no longer paid")
        message, name = _build(claimed)
        # The row's Message-ID on every copy of this mail (see the module docstring).
        del message["Message-ID"]
        message["Message-ID"] = claimed.message_id
        mail.deliver(message, name, at=claimed.created_at)
    except mail.InvalidRecipient as refused:
        log.error("%s: mail %s refused, %s; it waits for a person to correct the address", who, mail_id, refused)
        return _finish(claimed, MailStatus.FAILED, f"refused: {refused}")
    except Exception as error:
        log.exception("%s: sending mail %s (%s) failed", who, mail_id, claimed.kind)
        return _failed(claimed, f"{type(error).__name__}: {error}")
    _finish(claimed, MailStatus.SENT, None)
    log.info("%s (%s): %s sent to %s", who, name, claimed.kind.replace("_", " "), message["To"])
    return "sent"


def _build(claimed: _Claimed):
    if claimed.kind == MailKind.ORDER_CONFIRMATION:
        return mail.build_order_confirmation(claimed.order_id)
    if claimed.kind == MailKind.EVENT_CANCELLED:
        return mail.build_event_cancelled(claimed.order_id)
    return mail.build_refund_notice(claimed.attempt_id)


def _still_confirmed(order_id: int) -> bool:
    return (
        db.session.execute(
            select(Order.id).where(Order.id == order_id, Order.status.in_(CONFIRMED_STATUSES))
        ).scalar_one_or_none()
        is not None
    )


def _claimable(now: datetime, also_waiting: bool):
    lapsed = and_(MailOutbox.status == MailStatus.SENDING.value, MailOutbox.claimed_until <= now)
    if also_waiting:
        waiting = MailOutbox.status.in_([MailStatus.PENDING.value, MailStatus.FAILED.value])
    else:
        waiting = and_(MailOutbox.status == MailStatus.PENDING.value, MailOutbox.due_at <= now)
    return or_(waiting, lapsed)


def _claim(mail_id: int, now: datetime, also_waiting: bool) -> _Claimed | None:
    """The guarded UPDATE: the row for the one caller that took it, else None."""
    claim_for = timedelta(seconds=current_app.config["MAIL_CLAIM_SECONDS"])
    with write_transaction():
        taken = db.session.execute(
            update(MailOutbox)
            .where(MailOutbox.id == mail_id, _claimable(now, also_waiting))
            .values(
                status=MailStatus.SENDING.value,
                attempts=MailOutbox.attempts + 1,
                claimed_until=now + claim_for,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            return None
        row = db.session.execute(
            select(
                MailOutbox.id,
                MailOutbox.kind,
                MailOutbox.order_id,
                MailOutbox.attempt_id,
                MailOutbox.attempts,
                MailOutbox.message_id,
                MailOutbox.created_at,
            ).where(MailOutbox.id == mail_id)
        ).one()
    return _Claimed(*row)


def _finish(claimed: _Claimed, status: MailStatus, error: str | None) -> str:
    now = utcnow()
    values: dict = {"status": status.value, "claimed_until": None}
    if status == MailStatus.SENT:
        values["sent_at"] = now
    if error is not None:
        values["last_error"] = error[:2000]
    _update_claimed(claimed, values)
    return status.value


def _failed(claimed: _Claimed, error: str) -> str:
    config = current_app.config
    if claimed.attempts >= config["MAIL_MAX_ATTEMPTS"]:
        log.error(
            "mail %s: %s tries failed; it waits for a person (flask send-confirmations)", claimed.id, claimed.attempts
        )
        return _finish(claimed, MailStatus.FAILED, error)
    wait = min(config["MAIL_RETRY_SECONDS"] * 2 ** (claimed.attempts - 1), config["MAIL_RETRY_MAX_SECONDS"])
    _update_claimed(
        claimed,
        {
            "status": MailStatus.PENDING.value,
            "claimed_until": None,
            "due_at": utcnow() + timedelta(seconds=wait),
            "last_error": error[:2000],
        },
    )
    log.warning("mail %s: try %s failed; tried again in %s s", claimed.id, claimed.attempts, wait)
    return "retry"


def _update_claimed(claimed: _Claimed, values: dict) -> None:
    """Only while this sender's claim is the row's (its try number): a sender whose
    claim ran out and was taken again must not overwrite what the next one does."""
    try:
        with write_transaction():
            done = db.session.execute(
                update(MailOutbox)
                .where(
                    MailOutbox.id == claimed.id,
                    MailOutbox.status == MailStatus.SENDING.value,
                    MailOutbox.attempts == claimed.attempts,
                )
                .values(values)
                .execution_options(synchronize_session=False)
            ).rowcount
    except Exception:
        # The claim stays: the row is taken again once it runs out.
        log.exception("mail %s: could not record its outcome %s; it is tried again later", claimed.id, values)
        return
    if done != 1:
        log.warning("mail %s: another sender took it meanwhile; outcome %s not recorded", claimed.id, values["status"])


def seconds_until_due(mail_id: int) -> float | None:
    """How long until a row waiting for its retry is due again (None: it is not waiting)."""
    db.session.rollback()
    due_at = db.session.execute(
        select(MailOutbox.due_at).where(MailOutbox.id == mail_id, MailOutbox.status == MailStatus.PENDING.value)
    ).scalar_one_or_none()
    return None if due_at is None else max(0.0, (due_at - utcnow()).total_seconds())


# --- what is due ---------------------------------------------------------------------------------


def due_ids(now: datetime | None = None, *, also_waiting: bool = False, limit: int = 500) -> list[int]:
    """The rows a sender may take now (see ``send``), oldest first."""
    db.session.rollback()  # what is committed now
    return list(
        db.session.execute(
            select(MailOutbox.id).where(_claimable(now or utcnow(), also_waiting)).order_by(MailOutbox.id).limit(limit)
        ).scalars()
    )


@dataclass(frozen=True)
class Sent:
    confirmations: int
    notices: int
    failures: int


def send_due(now: datetime | None = None, *, also_waiting: bool = False) -> Sent:
    """Send every row due now (the periodic job), or every row not sent (``also_waiting``:
    ``flask send-confirmations``). A row another sender took meanwhile counts as neither."""
    kinds = dict(
        db.session.execute(
            select(MailOutbox.id, MailOutbox.kind).where(MailOutbox.id.in_(due_ids(now, also_waiting=also_waiting)))
        ).all()
    )
    outcomes = {mail_id: send(mail_id, now=now, also_waiting=also_waiting) for mail_id in sorted(kinds)}
    sent = [mail_id for mail_id, outcome in outcomes.items() if outcome == "sent"]
    return Sent(
        confirmations=sum(kinds[mail_id] == MailKind.ORDER_CONFIRMATION for mail_id in sent),
        notices=sum(kinds[mail_id] == MailKind.REFUND_NOTICE for mail_id in sent),
        failures=sum(outcome in ("retry", "failed") for outcome in outcomes.values()),
    )


def mails_of_order(order_id: int) -> list[MailOutbox]:
    """The order's mails, sent or not, with their tries and last error (the back office's order page)."""
    return list(
        db.session.execute(select(MailOutbox).where(MailOutbox.order_id == order_id).order_by(MailOutbox.id)).scalars()
    )


def status_words() -> dict[str, str]:
    """Each status as the back office says it."""
    return {
        MailStatus.PENDING: _("waiting to be sent"),
        MailStatus.SENDING: _("being sent"),
        MailStatus.SENT: _("sent"),
        MailStatus.FAILED: _("failed"),
        MailStatus.SKIPPED: _("not sent (no longer needed)"),
    }
