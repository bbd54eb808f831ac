"""The door's domain (storefront.check_in), on SQLite and PostgreSQL: every answer a scan
can get, the nonce that makes a retried scan the same scan, the scoping to the door's
event and organiser, undo, the counters, the search and the door list."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from storefront import check_in
from storefront.audit import Actor
from storefront.check_in import Scanned
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import OrderStatus, Ticket, TicketStatus, TicketType
from storefront.staff_errors import (
    CheckInNotFound,
    InvalidDoorName,
    InvalidNonce,
    NonceReused,
    NotATicketCode,
    NothingScanned,
    NothingToUndo,
)
from storefront.staff_models import CheckIn, CheckInMethod, CheckInResult, Role
from storefront.tickets import format_ticket_code, new_ticket_code

from .admin_support import add_member, audit_entries, make_event_of, make_organiser, quick_users
from .factories import make_order

_nonces = iter(range(10**6))


def nonce() -> str:
    return f"nonce-{next(_nonces):08d}"


class Door:
    """A member at the door of an event: scans as the view would call the domain."""

    def __init__(self, user, membership, event, name: str = "North gate"):
        self.user, self.membership, self.event, self.name = user, membership, event, name

    @property
    def actor(self) -> Actor:
        return Actor(self.user.id, self.user.email, "203.0.113.7")

    def scan(self, *, secret: str | None = None, code: str | None = None, nonce_: str | None = None, event=None):
        return check_in.scan(
            self.membership,
            event or self.event,
            Scanned.from_input(secret, code),
            nonce=nonce_ or nonce(),
            door=self.name,
            actor=self.actor,
        )


@pytest.fixture
def world(app):
    home = make_organiser("hall", "Concert Hall")
    tonight = make_event_of(home, "Tonight", starts_at=datetime.now(UTC))  # today wherever
    tomorrow = make_event_of(home, "Tomorrow's Matinee")
    away = make_organiser("away", "Other Organiser")
    away_event = make_event_of(away, "Away Gig")
    door_user, other_user, limited_user = quick_users("door@hall.example", "gate@hall.example", "limited@hall.example")
    door_m = add_member(door_user, home, Role.DOOR)
    other_m = add_member(other_user, home, Role.BOX_OFFICE)
    limited_m = add_member(limited_user, home, Role.DOOR, events=[tonight])

    class World:
        pass

    w = World()
    w.home, w.tonight, w.tomorrow, w.away, w.away_event = home, tonight, tomorrow, away, away_event
    w.door = Door(door_user, door_m, tonight)
    w.gate = Door(other_user, other_m, tonight, "South gate")
    w.limited = Door(limited_user, limited_m, tonight, "Side door")
    return w


def ticket_of(order) -> Ticket:
    db.session.rollback()
    return db.session.get(Ticket, order.tickets[0].id)


def rows() -> list[CheckIn]:
    db.session.rollback()
    return list(db.session.execute(select(CheckIn).order_by(CheckIn.id)).scalars())


# --- every answer -------------------------------------------------------------------------------


def test_a_valid_ticket_is_admitted_by_its_qr_secret_with_name_and_type(world):
    order = make_order(world.tonight, [("Zoë", "Ødegård")])
    ticket = order.tickets[0]
    answer = world.door.scan(secret=ticket.secret)
    assert answer.result is CheckInResult.ADMITTED and answer.admitted
    assert answer.attendee == "Zoë Ødegård"
    assert answer.ticket_type == "Standard"
    assert answer.ticket_code == format_ticket_code(ticket.code)
    assert not answer.replayed
    ticket = ticket_of(order)
    assert ticket.status == TicketStatus.USED.value and ticket.checked_in_at is not None
    (row,) = rows()
    assert (row.ticket_id, row.event_id, row.user_id) == (ticket.id, world.tonight.id, world.door.user.id)
    assert (row.staff_email, row.door, row.method, row.result) == (
        "door@hall.example",
        "North gate",
        CheckInMethod.QR,
        CheckInResult.ADMITTED,
    )
    assert row.created_at == ticket.checked_in_at


@pytest.mark.parametrize("typed", ["{code}", "{dashed}", "{lower}", "  {spaced}  "])
def test_a_typed_code_is_admitted_however_it_is_written(world, typed):
    order = make_order(world.tonight)
    code = order.tickets[0].code
    written = typed.format(
        code=code,
        dashed=format_ticket_code(code),
        lower=format_ticket_code(code).lower(),
        spaced=code[:5] + " " + code[5:],
    )
    answer = world.door.scan(code=written)
    assert answer.result is CheckInResult.ADMITTED
    assert rows()[0].method is CheckInMethod.CODE


def test_a_second_scan_says_when_at_which_door_and_by_whom(world):
    order = make_order(world.tonight)
    first = world.door.scan(code=order.tickets[0].code)
    checked_in_at = ticket_of(order).checked_in_at
    again = world.gate.scan(secret=order.tickets[0].secret)
    assert again.result is CheckInResult.ALREADY_USED and not again.admitted
    assert again.first.at == checked_in_at
    assert again.first.door == "North gate"
    assert again.first.by == "door@hall.example"
    assert again.attendee == "Ada Lovelace"
    assert ticket_of(order).checked_in_at == checked_in_at  # unchanged
    assert [r.result for r in rows()] == [CheckInResult.ADMITTED, CheckInResult.ALREADY_USED]
    assert rows()[1].admission_id == first.check_in_id


def test_a_ticket_used_before_the_log_existed_is_already_used_without_door_or_member(world):
    order = make_order(world.tonight, ticket_status=TicketStatus.USED.value)
    answer = world.door.scan(code=order.tickets[0].code)
    assert answer.result is CheckInResult.ALREADY_USED
    assert (answer.first.door, answer.first.by) == (None, None)


def test_a_void_ticket_is_refused(world):
    order = make_order(world.tonight, ticket_status=TicketStatus.VOID.value)
    answer = world.door.scan(code=order.tickets[0].code)
    assert answer.result is CheckInResult.VOID
    assert ticket_of(order).status == TicketStatus.VOID.value
    assert ticket_of(order).checked_in_at is None


@pytest.mark.parametrize("status", [OrderStatus.REFUNDED.value, OrderStatus.CANCELLED.value])
def test_a_ticket_of_a_refunded_or_cancelled_order_is_refused(world, status):
    order = make_order(world.tonight, status=status)
    answer = world.door.scan(secret=order.tickets[0].secret)
    assert answer.result is CheckInResult.REFUNDED
    assert ticket_of(order).status == TicketStatus.VALID.value


def test_a_refunded_orders_voided_ticket_says_refunded(world):
    order = make_order(world.tonight, status=OrderStatus.REFUNDED.value, ticket_status=TicketStatus.VOID.value)
    assert world.door.scan(code=order.tickets[0].code).result is CheckInResult.REFUNDED
    assert check_in.door_status(ticket_of(order)) == check_in.REFUNDED


def test_a_partly_refunded_order_keeps_its_other_tickets(world):
    order = make_order(world.tonight, status=OrderStatus.PARTIALLY_REFUNDED.value)
    assert world.door.scan(code=order.tickets[0].code).result is CheckInResult.ADMITTED


def test_a_ticket_of_another_event_is_refused_naming_it_only_to_those_who_may_see_it(world):
    order = make_order(world.tomorrow)
    answer = world.door.scan(code=order.tickets[0].code)
    assert answer.result is CheckInResult.WRONG_EVENT
    assert answer.other_event == "Tomorrow's Matinee"
    assert answer.attendee is None  # not this door's guest
    limited = world.limited.scan(code=order.tickets[0].code)
    assert limited.result is CheckInResult.WRONG_EVENT
    assert limited.other_event is None  # an event outside the member's limit stays unnamed
    assert ticket_of(order).status == TicketStatus.VALID.value


@pytest.mark.parametrize(
    "scanned",
    [
        {"code": "ACDEF-GHJKM"},
        {"secret": "x" * 32},
        {"secret": "https://example.com/not-a-ticket"},
        {"secret": "WIFI:S:venue;T:WPA;P:secret;;"},
    ],
)
def test_what_is_no_ticket_is_unknown(world, scanned):
    make_order(world.tonight)
    answer = world.door.scan(**scanned)
    assert answer.result is CheckInResult.UNKNOWN
    assert answer.attendee is None
    (row,) = rows()
    assert row.ticket_id is None and row.result is CheckInResult.UNKNOWN


def test_another_organisers_ticket_is_unknown_exactly_like_no_ticket(world):
    theirs = make_order(world.away_event, [("Secret", "Guest")])
    by_code = world.door.scan(code=theirs.tickets[0].code)
    by_secret = world.door.scan(secret=theirs.tickets[0].secret)
    nothing = world.door.scan(code=new_ticket_code())
    for answer in (by_code, by_secret):
        assert answer.result is CheckInResult.UNKNOWN
        assert (answer.attendee, answer.ticket_type, answer.other_event) == (None, None, None)
        assert answer.__dict__.keys() == nothing.__dict__.keys()
    assert ticket_of(theirs).status == TicketStatus.VALID.value
    assert all(r.ticket_id is None for r in rows())


def test_an_organisers_door_never_admits_a_ticket_of_an_event_outside_it(world):
    """Even scanning at another event's door: the check is the event's, not the member's."""
    order = make_order(world.away_event)
    answer = world.door.scan(code=order.tickets[0].code, event=world.tonight)
    assert answer.result is CheckInResult.UNKNOWN
    assert ticket_of(order).status == TicketStatus.VALID.value


# --- the nonce ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [TicketStatus.VALID.value, TicketStatus.VOID.value])
def test_a_scan_retried_with_its_nonce_is_answered_the_same_and_counted_once(world, status):
    order = make_order(world.tonight, ticket_status=status)
    first = world.door.scan(code=order.tickets[0].code, nonce_="retried-scan-1")
    again = world.door.scan(code=order.tickets[0].code, nonce_="retried-scan-1")
    assert again.replayed and not first.replayed
    assert (again.result, again.check_in_id, again.at, again.attendee) == (
        first.result,
        first.check_in_id,
        first.at,
        first.attendee,
    )
    assert len(rows()) == 1
    if status == TicketStatus.VALID.value:
        assert again.result is CheckInResult.ADMITTED  # not "already used" by its own first copy


def test_an_unknown_scan_retried_is_counted_once_too(world):
    world.door.scan(code="ACDEF-GHJKM", nonce_="unknown-retry")
    world.door.scan(code="ACDEF-GHJKM", nonce_="unknown-retry")
    assert len(rows()) == 1


def test_a_nonce_used_again_for_another_ticket_or_event_is_refused(world):
    one, two = make_order(world.tonight), make_order(world.tonight)
    world.door.scan(code=one.tickets[0].code, nonce_="reused-nonce")
    with pytest.raises(NonceReused):
        world.door.scan(code=two.tickets[0].code, nonce_="reused-nonce")
    with pytest.raises(NonceReused):
        world.door.scan(secret=one.tickets[0].secret, nonce_="reused-nonce")  # same ticket, other scan
    with pytest.raises(NonceReused):
        world.door.scan(code=one.tickets[0].code, nonce_="reused-nonce", event=world.tomorrow)
    assert len(rows()) == 1
    assert ticket_of(two).status == TicketStatus.VALID.value


def test_nonces_are_per_member(world):
    order = make_order(world.tonight)
    world.door.scan(code=order.tickets[0].code, nonce_="same-nonce")
    answer = world.gate.scan(code=order.tickets[0].code, nonce_="same-nonce")
    assert answer.result is CheckInResult.ALREADY_USED and not answer.replayed
    assert len(rows()) == 2


# --- what is not a scan ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret, code, error",
    [
        (None, None, NothingScanned),
        ("  ", "", NothingScanned),
        (None, "ACDEF", NotATicketCode),
        (None, "ACDEF-GHJK0", NotATicketCode),
        (None, "١٢٣٤٥٦٧٨٩٠", NotATicketCode),
    ],
)
def test_what_cannot_be_scanned_is_refused_before_anything_is_written(secret, code, error):
    with pytest.raises(error):
        Scanned.from_input(secret, code)


@pytest.mark.parametrize("bad", ["", "short", "has space in it", "x" * 65, "nul\x00nonce1"])
def test_a_malformed_nonce_is_refused(world, bad):
    order = make_order(world.tonight)
    with pytest.raises(InvalidNonce):
        check_in.scan(
            world.door.membership,
            world.tonight,
            Scanned.from_input(None, order.tickets[0].code),
            nonce=bad,
            door="",
            actor=world.door.actor,
        )
    assert rows() == []
    assert ticket_of(order).status == TicketStatus.VALID.value


@pytest.mark.parametrize("name", ["x" * 61, "North\x07gate", "nul\x00"])
def test_a_door_name_must_be_a_short_line(world, name):
    order = make_order(world.tonight)
    world.door.name = name
    with pytest.raises(InvalidDoorName):
        world.door.scan(code=order.tickets[0].code)
    assert rows() == []


def test_a_door_name_has_its_spaces_collapsed_and_may_be_empty(world):
    assert check_in.door_name("  North   gate ") == "North gate"
    assert check_in.door_name("North\ngate") == "North gate"
    assert check_in.door_name(None) == ""


# --- undo ---------------------------------------------------------------------------------------


def test_undo_puts_the_ticket_back_and_is_audited(world):
    order = make_order(world.tonight)
    admitted = world.door.scan(code=order.tickets[0].code)
    undone = check_in.undo(world.tonight, admitted.check_in_id, world.gate.actor)
    assert undone.attendee == "Ada Lovelace"
    ticket = ticket_of(order)
    assert (ticket.status, ticket.checked_in_at) == (TicketStatus.VALID.value, None)
    (entry,) = audit_entries(action="check_in_undone")
    assert (entry.user_id, entry.organiser_id, entry.event_id, entry.object_id) == (
        world.gate.user.id,
        world.home.id,
        world.tonight.id,
        str(ticket.id),
    )
    assert '"status": "used"' in entry.before and '"status": "valid"' in entry.after
    assert world.door.scan(code=order.tickets[0].code).result is CheckInResult.ADMITTED


def test_an_undo_works_once_and_only_for_the_latest_admission(world):
    order = make_order(world.tonight)
    first = world.door.scan(code=order.tickets[0].code)
    check_in.undo(world.tonight, first.check_in_id, world.gate.actor)
    with pytest.raises(NothingToUndo):
        check_in.undo(world.tonight, first.check_in_id, world.gate.actor)
    world.door.scan(code=order.tickets[0].code)  # in again
    with pytest.raises(NothingToUndo):
        check_in.undo(world.tonight, first.check_in_id, world.gate.actor)
    assert ticket_of(order).status == TicketStatus.USED.value
    assert len(audit_entries(action="check_in_undone")) == 1


def test_only_an_admission_of_this_event_can_be_undone(world):
    order = make_order(world.tonight)
    admitted = world.door.scan(code=order.tickets[0].code)
    refused = world.gate.scan(code=order.tickets[0].code)  # already used: not an admission
    with pytest.raises(CheckInNotFound):
        check_in.undo(world.tonight, refused.check_in_id, world.gate.actor)
    with pytest.raises(CheckInNotFound):
        check_in.undo(world.tomorrow, admitted.check_in_id, world.gate.actor)
    with pytest.raises(CheckInNotFound):
        check_in.undo(world.tonight, 2**31 - 1, world.gate.actor)
    assert ticket_of(order).status == TicketStatus.USED.value
    assert audit_entries(action="check_in_undone") == []


def test_the_check_in_log_is_append_only_in_the_database(world):
    order = make_order(world.tonight)
    world.door.scan(code=order.tickets[0].code)
    for statement in ("UPDATE check_ins SET door = 'forged'", "DELETE FROM check_ins"):
        with pytest.raises(DBAPIError):
            with db.engine.begin() as conn:
                conn.execute(text(statement))
    assert rows()[0].door == "North gate"


# --- counters, search, the door list, the day -----------------------------------------------------


def test_counters_count_checked_in_of_sold_per_ticket_type(world):
    with write_transaction():
        db.session.add(TicketType(event_id=world.tonight.id, name="VIP", price_minor=9000, capacity=10, position=1))
    db.session.rollback()
    vip = db.session.execute(select(TicketType).where(TicketType.name == "VIP")).scalar_one()
    standard = make_order(world.tonight, [("A", "One"), ("B", "Two"), ("C", "Three")])
    vips = make_order(world.tonight, [("D", "Four")], ticket_type_id=vip.id)
    make_order(world.tonight, [("E", "Void")], ticket_status=TicketStatus.VOID.value)
    make_order(world.tonight, [("F", "Refunded")], status=OrderStatus.REFUNDED.value)
    make_order(world.tomorrow, [("G", "Elsewhere")])
    world.door.scan(code=standard.tickets[0].code)
    world.door.scan(code=vips.tickets[0].code)
    counted = check_in.counters(world.tonight.id)
    assert [(t.name, t.checked_in, t.sold) for t in counted.types] == [("Standard", 1, 3), ("VIP", 1, 1)]
    assert (counted.checked_in, counted.sold) == (2, 4)


def test_search_finds_by_name_order_code_and_ticket_code_within_the_event(world):
    ada = make_order(world.tonight, [("Ada", "Lovelace")])
    grace = make_order(world.tonight, [("Grace", "Hopper"), ("Alan", "Turing")])
    make_order(world.tomorrow, [("Ada", "Tomorrow")])
    make_order(world.away_event, [("Ada", "Away")])

    def names(query):
        return [f"{t.attendee_first_name} {t.attendee_last_name}" for t in check_in.search(world.tonight.id, query)]

    assert names("ada") == ["Ada Lovelace"]
    assert names("LOVE") == ["Ada Lovelace"]
    assert names("lovelace ada") == ["Ada Lovelace"]
    assert names(" ada   lovelace ") == ["Ada Lovelace"]
    assert names(grace.code) == ["Grace Hopper", "Alan Turing"]  # by last name
    assert "Grace Hopper" in names(grace.code[:5].lower())  # the start of an order code
    assert names(format_ticket_code(ada.tickets[0].code).lower()) == ["Ada Lovelace"]
    assert names("a") == []  # too short
    assert names("%") == [] and names("_a") == []  # LIKE's wildcards are letters here
    assert names("nobody") == []


def test_the_door_list_has_every_ticket_of_the_event_by_name(world):
    make_order(world.tonight, [("Zed", "Zulu"), ("Amy", "Alpha")])
    make_order(world.tonight, [("Vic", "Void")], ticket_status=TicketStatus.VOID.value)
    make_order(world.tomorrow, [("Tom", "Tomorrow")])
    listed = check_in.door_list(world.tonight.id)
    assert [t.attendee_last_name for t in listed] == ["Alpha", "Void", "Zulu"]
    assert [check_in.door_status(t) for t in listed] == [check_in.EXPECTED, check_in.VOID, check_in.EXPECTED]


def test_a_warning_when_the_event_is_not_today_in_its_own_timezone(world):
    event = world.tonight
    event.timezone = "Pacific/Auckland"  # UTC+13 in December
    event.starts_at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 22:00 on the 2nd in Auckland
    assert check_in.other_day(event, now=datetime(2026, 12, 2, 1, 0, tzinfo=UTC)) is None  # 14:00 there
    assert check_in.other_day(event, now=datetime(2026, 12, 1, 10, 0, tzinfo=UTC)) == date(
        2026, 12, 2
    )  # 23:00 on the 1st
    # The 2nd in UTC, but already the 3rd in Auckland:
    assert check_in.other_day(event, now=datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) == date(2026, 12, 2)
    db.session.rollback()


def test_nothing_counts_twice_in_the_log(world):
    order = make_order(world.tonight)
    for _ in range(3):
        world.door.scan(code=order.tickets[0].code, nonce_="one-scan-only")
    db.session.rollback()
    assert db.session.execute(select(func.count(CheckIn.id))).scalar_one() == 1
