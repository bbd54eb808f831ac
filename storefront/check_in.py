"""The door: checking tickets in, the check-in log, and what the door reads (counters,
search, the door list).

This module alone moves a ticket between ``valid`` and ``used`` (``scan`` and ``undo``),
and alone writes ``check_ins``, the log of every scan attempt. Invariants kept here:

* **Admitted once.** A ticket is admitted by one conditional UPDATE, ``valid → used``,
  whose WHERE re-checks the status. Two doors scanning the same ticket at the same
  instant both send it; PostgreSQL makes the second wait on the row lock and then
  re-evaluates its WHERE against the committed row (READ COMMITTED), so it changes
  nothing and that door answers "already checked in"; on SQLite the write lock taken
  at BEGIN serialises the two.
* **A retried scan is the same scan.** Each attempt carries a nonce from the door's
  page; ``(member, nonce)`` is unique in ``check_ins``. A scan that comes again with its
  nonce (a phone on a flaky network retrying) is answered from the row written the first
  time, and writes nothing. Two copies racing each other: the second's INSERT meets the
  unique constraint, its transaction is rolled back (its UPDATE with it), and it answers
  from the first's row. A nonce sent again with something else scanned is refused.
* **Scoped to the door's event.** A scan starts from the event of the door and the
  member: another organiser's ticket is "unknown", exactly like a ticket that does not
  exist; a ticket of another event of the same organiser is "for another event", naming
  it only if the member may see that event. Neither changes the ticket.
* **Undo** puts an admitted ticket back to ``valid``, only while that check-in is still
  the ticket's latest admission (under the ticket's row lock), and writes an audit entry.

``check_ins`` is append-only in the database (triggers, migration 0010), like the audit
log: it is the record of check-ins, and the audit log records their undoing and the
exports of the door list.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from . import audit, teams, ticket_lifecycle
from .audit import Actor
from .database import write_transaction
from .extensions import db
from .models import Event, Order, OrderStatus, Ticket, TicketStatus, TicketType, utcnow
from .parsing import has_control_characters
from .staff_errors import (
    CheckInNotFound,
    InvalidDoorName,
    InvalidNonce,
    NonceReused,
    NotATicketCode,
    NothingScanned,
    NothingToUndo,
)
from .staff_models import CheckIn, CheckInMethod, CheckInResult, Membership
from .tickets import format_ticket_code, normalise_ticket_code

# A ticket of an order in one of these states may come in (a partly refunded order
# keeps its other tickets; a refunded ticket of it is void).
ADMITTABLE_ORDERS = (OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)
# What ``tickets.new_ticket_secret`` makes (URL-safe base64); anything else a camera
# reads (a web address, another shop's code) cannot be a ticket and is not looked up.
_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
NONCE_SHAPE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
DOOR_NAME_LENGTH = 60
SEARCH_MIN_LENGTH = 2
SEARCH_LIMIT = 20


@dataclass(frozen=True)
class Scanned:
    """What a door presented: the secret a QR code carries, or a ticket code as typed."""

    method: CheckInMethod
    value: str

    @classmethod
    def from_input(cls, secret: str | None, code: str | None) -> Scanned:
        secret = (secret or "").strip()
        if secret:
            return cls(CheckInMethod.QR, secret)
        if (code or "").strip():
            normal = normalise_ticket_code(code)
            if normal is None:
                raise NotATicketCode()
            return cls(CheckInMethod.CODE, normal)
        raise NothingScanned()

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.method.value}:{self.value}".encode()).hexdigest()


@dataclass(frozen=True)
class Admission:
    """When, where and by whom a ticket was let in (door and member unknown for a ticket
    marked used without a check-in of this log)."""

    at: datetime | None
    door: str | None
    by: str | None


@dataclass(frozen=True)
class Answer:
    """What the door shows for one scan."""

    result: CheckInResult
    check_in_id: int
    at: datetime
    attendee: str | None = None
    ticket_type: str | None = None
    ticket_code: str | None = None  # as shown, ACDEF-GHJKM
    first: Admission | None = None  # already_used: the admission it met
    other_event: str | None = None  # wrong_event: its title, if the member may see it
    replayed: bool = False  # answered from the first copy of a retried scan

    @property
    def admitted(self) -> bool:
        return self.result is CheckInResult.ADMITTED


def door_name(raw: str | None) -> str:
    """A door's name as given ("North gate"), spaces collapsed; empty is allowed."""
    name = " ".join((raw or "").split())
    if len(name) > DOOR_NAME_LENGTH or has_control_characters(name):
        raise InvalidDoorName()
    return name


# --- scanning -------------------------------------------------------------------------------


def scan(membership: Membership, event: Event, scanned: Scanned, *, nonce: str, door: str, actor: Actor) -> Answer:
    """Check in what the door scanned at ``event``'s door, once per ``nonce``; record the
    attempt and answer it. ``membership`` is the scanning member's (``actor``'s) in the
    event's organiser, and the event one they may see (the view's access rule)."""
    door = door_name(door)
    if not NONCE_SHAPE.match(nonce or ""):
        raise InvalidNonce()
    try:
        with write_transaction():
            row, replayed = _attempt(event, scanned, nonce, door, actor)
            answer = _answer_of(row, membership, replayed=replayed)
        return answer
    except IntegrityError:
        # A copy of this scan (same member, same nonce) committed first: answer as it was.
        db.session.rollback()
        row = _by_nonce(actor.user_id, nonce)
        if row is None:
            raise
        _same_scan(row, event, scanned)
        return _answer_of(row, membership, replayed=True)


def _attempt(event: Event, scanned: Scanned, nonce: str, door: str, actor: Actor) -> tuple[CheckIn, bool]:
    prior = _by_nonce(actor.user_id, nonce)
    if prior is not None:
        _same_scan(prior, event, scanned)
        return prior, True
    now = utcnow()
    ticket_id, result, admission_id = _decide(event, scanned, now)
    row = CheckIn(
        created_at=now,
        event_id=event.id,
        ticket_id=ticket_id,
        user_id=actor.user_id,
        staff_email=actor.name[:254],
        door=door,
        method=scanned.method,
        result=result,
        nonce=nonce,
        presented_digest=scanned.digest,
        admission_id=admission_id,
    )
    db.session.add(row)
    db.session.flush()  # the (member, nonce) constraint speaks now, inside the transaction
    return row, False


def _decide(event: Event, scanned: Scanned, now: datetime) -> tuple[int | None, CheckInResult, int | None]:
    """(the ticket found, the result, the admission met) for a scan at ``event``'s door."""
    if scanned.method is CheckInMethod.QR and not _SECRET_SHAPE.match(scanned.value):
        return None, CheckInResult.UNKNOWN, None
    column = Ticket.secret if scanned.method is CheckInMethod.QR else Ticket.code
    found = db.session.execute(
        select(Ticket.id, Ticket.status, Order.status, Order.event_id, Event.organiser_id)
        .join(Order, Order.id == Ticket.order_id)
        .join(Event, Event.id == Order.event_id)
        .where(column == scanned.value)
    ).one_or_none()
    if found is None:
        return None, CheckInResult.UNKNOWN, None
    ticket_id, ticket_status, order_status, event_id, organiser_id = found
    if organiser_id != event.organiser_id:
        # Not a word about another organiser's ticket, not even that it exists.
        return None, CheckInResult.UNKNOWN, None
    if event_id != event.id:
        return ticket_id, CheckInResult.WRONG_EVENT, None
    # A refund voids the order's tickets too (storefront.orders): say why, "refunded".
    if order_status not in ADMITTABLE_ORDERS:
        return ticket_id, CheckInResult.REFUNDED, None
    if ticket_status == TicketStatus.VOID.value:
        return ticket_id, CheckInResult.VOID, None
    if admit(ticket_id, now):
        return ticket_id, CheckInResult.ADMITTED, None
    # Used already (perhaps by a door that committed while this UPDATE waited), or
    # voided meanwhile: read the row as it is now.
    status_now = db.session.execute(select(Ticket.status).where(Ticket.id == ticket_id)).scalar_one()
    if status_now == TicketStatus.VOID.value:
        return ticket_id, CheckInResult.VOID, None
    return ticket_id, CheckInResult.ALREADY_USED, _latest_admission_id(ticket_id)


def admit(ticket_id: int, now: datetime) -> bool:
    """The one conditional UPDATE that lets a ticket in: True for the one caller that
    changed it from valid to used."""
    return ticket_lifecycle.admit(ticket_id, now)


def _by_nonce(user_id: int | None, nonce: str) -> CheckIn | None:
    return db.session.execute(
        select(CheckIn).where(CheckIn.user_id == user_id, CheckIn.nonce == nonce)
    ).scalar_one_or_none()


def _same_scan(row: CheckIn, event: Event, scanned: Scanned) -> None:
    if row.event_id != event.id or row.presented_digest != scanned.digest:
        raise NonceReused()


def _latest_admission_id(ticket_id: int) -> int | None:
    return db.session.execute(
        select(func.max(CheckIn.id)).where(CheckIn.ticket_id == ticket_id, CheckIn.result == CheckInResult.ADMITTED)
    ).scalar_one()


def _answer_of(row: CheckIn, membership: Membership, *, replayed: bool) -> Answer:
    ticket = db.session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
    fields: dict = {}
    if ticket is not None and row.result is not CheckInResult.WRONG_EVENT:
        fields.update(
            attendee=f"{ticket.attendee_first_name} {ticket.attendee_last_name}".strip(),
            ticket_type=ticket.ticket_type.name,
            ticket_code=format_ticket_code(ticket.code),
        )
    if row.result is CheckInResult.ALREADY_USED:
        admission = db.session.get(CheckIn, row.admission_id) if row.admission_id is not None else None
        if admission is not None:
            fields["first"] = Admission(admission.created_at, admission.door, admission.staff_email)
        else:
            fields["first"] = Admission(ticket.checked_in_at if ticket else None, None, None)
    if row.result is CheckInResult.WRONG_EVENT and ticket is not None:
        other = ticket.order.event
        if teams.visible_event(membership, other.slug) is not None:
            fields["other_event"] = other.title
    return Answer(result=row.result, check_in_id=row.id, at=row.created_at, replayed=replayed, **fields)


# --- undo -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Undone:
    attendee: str
    ticket_code: str


def undo(event: Event, check_in_id: int, actor: Actor) -> Undone:
    """Put the ticket ``check_in_id`` admitted back to valid, as if it had not come in
    (a mistaken scan, a guest who left before the doors): only while that check-in is
    the ticket's latest admission. Audited."""
    with write_transaction():
        row = db.session.execute(
            select(CheckIn).where(
                CheckIn.id == check_in_id, CheckIn.event_id == event.id, CheckIn.result == CheckInResult.ADMITTED
            )
        ).scalar_one_or_none()
        if row is None:
            raise CheckInNotFound()
        # The ticket's lock first: an undo, a scan and another undo of it queue here,
        # so "latest admission" cannot change between reading and writing.
        ticket = db.session.execute(
            select(Ticket).where(Ticket.id == row.ticket_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one()
        if ticket.status != TicketStatus.USED.value or _latest_admission_id(ticket.id) != row.id:
            raise NothingToUndo()
        checked_in_at = ticket.checked_in_at
        ticket_lifecycle.undo_admission(ticket.id)
        audit.record(
            actor,
            "check_in_undone",
            "ticket",
            ticket.id,
            organiser_id=event.organiser_id,
            event_id=event.id,
            before={"status": TicketStatus.USED.value, "checked_in_at": checked_in_at, "check_in": row.id},
            after={"status": TicketStatus.VALID.value, "checked_in_at": None},
        )
        undone = Undone(
            attendee=f"{ticket.attendee_first_name} {ticket.attendee_last_name}".strip(),
            ticket_code=format_ticket_code(ticket.code),
        )
    return undone


# --- what the door reads ----------------------------------------------------------------------


@dataclass(frozen=True)
class TypeCount:
    name: str
    checked_in: int
    sold: int


@dataclass(frozen=True)
class Counters:
    types: list[TypeCount]

    @property
    def checked_in(self) -> int:
        return sum(t.checked_in for t in self.types)

    @property
    def sold(self) -> int:
        return sum(t.sold for t in self.types)


def counters(event_id: int) -> Counters:
    """Checked in / sold per ticket type: sold counts the tickets that may still come in
    or came in (not void, their order not refunded or cancelled)."""
    counted = {
        tt_id: (sold, used)
        for tt_id, sold, used in db.session.execute(
            select(
                Ticket.ticket_type_id,
                func.count(Ticket.id),
                func.coalesce(func.sum(case((Ticket.status == TicketStatus.USED.value, 1), else_=0)), 0),
            )
            .join(Order, Order.id == Ticket.order_id)
            .where(
                Order.event_id == event_id,
                Order.status.in_(ADMITTABLE_ORDERS),
                Ticket.status != TicketStatus.VOID.value,
            )
            .group_by(Ticket.ticket_type_id)
        )
    }
    types = db.session.execute(
        select(TicketType.id, TicketType.name)
        .where(TicketType.event_id == event_id)
        .order_by(TicketType.position, TicketType.id)
    ).all()
    return Counters(
        [
            TypeCount(name, int(counted.get(tt_id, (0, 0))[1]), int(counted.get(tt_id, (0, 0))[0]))
            for tt_id, name in types
        ]
    )


def search(event_id: int, query: str | None) -> list[Ticket]:
    """The event's tickets whose attendee's name contains ``query`` (either order of first
    and last name, ignoring case), or whose order code or ticket code it is; at most
    ``SEARCH_LIMIT``, by name."""
    text = " ".join((query or "").split())[:100]
    if len(text) < SEARCH_MIN_LENGTH or has_control_characters(text):
        return []
    needle = text.lower()
    matches = [
        func.lower(Ticket.attendee_first_name + " " + Ticket.attendee_last_name).contains(needle, autoescape=True),
        func.lower(Ticket.attendee_last_name + " " + Ticket.attendee_first_name).contains(needle, autoescape=True),
    ]
    compact = "".join(ch for ch in text.upper() if ch not in " -")
    if compact.isalnum() and compact.isascii() and len(compact) >= 4:
        matches.append(Order.code.startswith(compact, autoescape=True))
    if (code := normalise_ticket_code(text)) is not None:
        matches.append(Ticket.code == code)
    return list(
        db.session.execute(
            select(Ticket)
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.event_id == event_id, or_(*matches))
            .options(selectinload(Ticket.ticket_type), selectinload(Ticket.order))
            .order_by(Ticket.attendee_last_name, Ticket.attendee_first_name, Ticket.id)
            .limit(SEARCH_LIMIT)
        ).scalars()
    )


def latest_admissions(ticket_ids: list[int]) -> dict[int, CheckIn]:
    """Per ticket, the check-in that admitted it last (for undo buttons and "checked in at")."""
    if not ticket_ids:
        return {}
    latest = (
        select(func.max(CheckIn.id))
        .where(CheckIn.ticket_id.in_(ticket_ids), CheckIn.result == CheckInResult.ADMITTED)
        .group_by(CheckIn.ticket_id)
    )
    rows = db.session.execute(select(CheckIn).where(CheckIn.id.in_(latest))).scalars()
    return {row.ticket_id: row for row in rows}


def door_list(event_id: int) -> list[Ticket]:
    """Every ticket of the event, by name: the paper fallback when the network fails."""
    return list(
        db.session.execute(
            select(Ticket)
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.event_id == event_id)
            .options(selectinload(Ticket.ticket_type), selectinload(Ticket.order))
            .order_by(Ticket.attendee_last_name, Ticket.attendee_first_name, Ticket.id)
        ).scalars()
    )


EXPECTED, IN, VOID, REFUNDED = "expected", "in", "void", "refunded"


def door_status(ticket: Ticket) -> str:
    """Where a ticket stands at the door: ``EXPECTED``, ``IN``, ``VOID`` or ``REFUNDED``."""
    return door_status_of(ticket.status, ticket.order.status)


def door_status_of(ticket_status: str, order_status: str) -> str:
    """``door_status`` from the two statuses alone (the attendees export reads them as columns)."""
    if order_status not in ADMITTABLE_ORDERS:
        return REFUNDED
    if ticket_status == TicketStatus.VOID.value:
        return VOID
    return IN if ticket_status == TicketStatus.USED.value else EXPECTED


def door_status_words() -> dict[str, str]:
    return {EXPECTED: _("not yet"), IN: _("checked in"), VOID: _("void"), REFUNDED: _("refunded")}


def record_export(event: Event, fmt: str, tickets: int, actor: Actor) -> None:
    """An audit entry for a copy of the door list leaving the shop (names on paper or in a file)."""
    with write_transaction():
        audit.record(
            actor,
            "door_list_exported",
            "event",
            event.id,
            organiser_id=event.organiser_id,
            event_id=event.id,
            after={"format": fmt, "tickets": tickets},
        )


def other_day(event: Event, now: datetime | None = None) -> date | None:
    """The event's date in its own timezone when that is not today there, else None."""
    zone = ZoneInfo(event.timezone)
    day = event.starts_at.astimezone(zone).date()
    return None if day == (now or utcnow()).astimezone(zone).date() else day
