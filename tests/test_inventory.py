"""The inventory and cart modules: holds, limits, lapsing and releasing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from storefront import cart as carts
from storefront import inventory
from storefront.cart_changes import change_cart
from storefront.database import write_transaction
from storefront.errors import (
    CartHoldsOtherEvent,
    CartLapsed,
    EventNotFound,
    InvalidQuantity,
    LineNotFound,
    NothingChosen,
    NotOnSaleYet,
    OverCartLimit,
    OverPerOrderLimit,
    SalesEnded,
    SoldOut,
    TicketTypeOfOtherEvent,
    UnknownTicketType,
)
from storefront.extensions import db
from storefront.models import CartStatus, EventStatus, TicketType, utcnow

from .factories import cart_by_token, held_in_live_carts, lapse, make_event, reload_event, ticket_type


def test_hold_counts_held_stock(app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 5}])
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 3}))
    assert ticket_type(tt.id).held == 3
    assert held_in_live_carts(tt.id) == 3
    assert [(i.ticket_type_id, i.quantity) for i in cart_by_token(token).items] == [(tt.id, 3)]


def test_adding_again_grows_the_same_line_and_cart(app):
    event = make_event()
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    assert change_cart(token, carts.AddTickets(event.slug, {tt.id: 2})) == token
    assert [(i.ticket_type_id, i.quantity) for i in cart_by_token(token).items] == [(tt.id, 3)]
    assert ticket_type(tt.id).held == 3


def test_last_tickets_then_only_n_left_then_sold_out(app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 3}])
    tt = event.ticket_types[0]
    change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    with pytest.raises(SoldOut) as short:
        change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    assert short.value.left == 1
    assert short.value.message() == "Only 1 ticket left for Standard."
    change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    with pytest.raises(SoldOut) as gone:
        change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    assert gone.value.left == 0
    assert gone.value.message() == "Standard is sold out."
    assert ticket_type(tt.id).held == 3


def test_a_failed_line_holds_nothing_of_the_others(app):
    event = make_event(ticket_types=[{"name": "A", "capacity": 10}, {"name": "B", "capacity": 1}])
    a, b = event.ticket_types
    with pytest.raises(SoldOut):
        change_cart(None, carts.AddTickets(event.slug, {a.id: 2, b.id: 2}))
    assert ticket_type(a.id).held == 0
    assert ticket_type(b.id).held == 0


def test_hold_refused_on_its_second_row_rolls_back_the_first(app):
    """The conditional UPDATE itself, not the read-based refusal in front of it: the
    rows one hold already took are given back with its transaction."""
    event = make_event(capacity=3, ticket_types=[{"name": "A", "capacity": 10}, {"name": "B", "capacity": 10}])
    a, b = event.ticket_types
    with pytest.raises(SoldOut) as short:
        with write_transaction():
            inventory.hold({a: 2, b: 2})  # both types fit; the event's 3 does not
    assert short.value.name == event.title and short.value.left == 3
    assert (ticket_type(a.id).held, ticket_type(b.id).held) == (0, 0)
    assert reload_event(event.id).held == 0


def test_write_transaction_is_atomic(app):
    event = make_event(ticket_types=[{"name": "A", "capacity": 10}])
    tt = event.ticket_types[0]
    with pytest.raises(RuntimeError):
        with write_transaction():
            inventory.hold({tt: 4})
            raise RuntimeError("crash after the hold, before the commit")
    assert ticket_type(tt.id).held == 0
    with write_transaction():
        inventory.hold({tt: 4})
    assert ticket_type(tt.id).held == 4


def test_a_refusal_decided_from_the_read_matches_the_holds(app):
    event = make_event(capacity=5, ticket_types=[{"name": "A", "capacity": 3}, {"name": "B", "capacity": 5}])
    a, b = event.ticket_types
    assert inventory.shortage({a: 3, b: 2}) is None
    assert inventory.shortage({a: 4}).left == 3
    assert inventory.shortage({a: 3, b: 3}).name == event.title


def test_event_wide_capacity_limits_all_types(app):
    event = make_event(capacity=5, ticket_types=[{"name": "Standard", "capacity": 5}, {"name": "VIP", "capacity": 5}])
    standard, vip = event.ticket_types
    change_cart(None, carts.AddTickets(event.slug, {standard.id: 4}))
    with pytest.raises(SoldOut) as short:
        change_cart(None, carts.AddTickets(event.slug, {vip.id: 2}))
    assert short.value.left == 1
    change_cart(None, carts.AddTickets(event.slug, {vip.id: 1}))
    db.session.rollback()
    assert db.session.get(type(event), event.id).held == 5
    assert inventory.ticket_type_left(vip.id) == 0


def test_lapsed_holds_are_released_when_stock_runs_short(app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 2}])
    tt = event.ticket_types[0]
    first = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    lapse(first)
    second = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    assert cart_by_token(first).status == CartStatus.EXPIRED.value
    assert cart_by_token(second).status == CartStatus.ACTIVE.value
    assert ticket_type(tt.id).held == 2
    assert held_in_live_carts(tt.id) == 2


def test_sweep_releases_lapsed_carts_once(app):
    event = make_event()
    tt = event.ticket_types[0]
    lapsed = change_cart(None, carts.AddTickets(event.slug, {tt.id: 4}))
    live = change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    lapse(lapsed)
    assert carts.release_lapsed_holds() == 1
    assert carts.release_lapsed_holds() == 0
    assert ticket_type(tt.id).held == 1
    assert cart_by_token(live).status == CartStatus.ACTIVE.value


def test_adding_to_a_lapsed_cart_starts_a_fresh_hold(app):
    event = make_event()
    tt = event.ticket_types[0]
    old = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    lapse(old)
    new = change_cart(old, carts.AddTickets(event.slug, {tt.id: 1}))
    assert new != old
    assert cart_by_token(old).status == CartStatus.EXPIRED.value
    fresh = cart_by_token(new)
    assert [(i.ticket_type_id, i.quantity) for i in fresh.items] == [(tt.id, 1)]
    assert fresh.expires_at > utcnow() + timedelta(minutes=14)
    assert ticket_type(tt.id).held == 1


def test_changing_a_lapsed_cart_releases_it_and_says_so(app):
    event = make_event()
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    line = cart_by_token(token).items[0].id
    lapse(token)
    with pytest.raises(CartLapsed):
        change_cart(token, carts.SetQuantity(line, 3))
    assert cart_by_token(token).status == CartStatus.EXPIRED.value
    assert ticket_type(tt.id).held == 0


def test_release_if_lapsed_leaves_a_live_cart_alone(app):
    event = make_event()
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    assert carts.release_if_lapsed(token) is False
    assert ticket_type(tt.id).held == 2
    lapse(token)
    assert carts.release_if_lapsed(token) is True
    assert carts.release_if_lapsed(token) is False
    assert ticket_type(tt.id).held == 0


def test_set_quantity_up_and_down(app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 5}])
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    line = cart_by_token(token).items[0].id
    change_cart(token, carts.SetQuantity(line, 5))
    assert ticket_type(tt.id).held == 5
    with pytest.raises(SoldOut):
        change_cart(token, carts.SetQuantity(line, 6))
    change_cart(token, carts.SetQuantity(line, 1))
    assert ticket_type(tt.id).held == 1
    assert cart_by_token(token).items[0].quantity == 1


def test_lowering_does_not_restart_the_timer_but_raising_does(app):
    event = make_event()
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 3}))
    with write_transaction():
        from storefront.models import Cart

        db.session.execute(update(Cart).where(Cart.token == token).values(expires_at=utcnow() + timedelta(minutes=2)))
    line = cart_by_token(token).items[0].id
    change_cart(token, carts.SetQuantity(line, 2))
    assert cart_by_token(token).expires_at < utcnow() + timedelta(minutes=3)
    change_cart(token, carts.SetQuantity(line, 4))
    assert cart_by_token(token).expires_at > utcnow() + timedelta(minutes=14)


def test_remove_line_and_empty_cart_release_stock(app):
    event = make_event(ticket_types=[{"name": "A"}, {"name": "B"}])
    a, b = event.ticket_types
    token = change_cart(None, carts.AddTickets(event.slug, {a.id: 2, b.id: 3}))
    line_a = next(i.id for i in cart_by_token(token).items if i.ticket_type_id == a.id)
    change_cart(token, carts.RemoveLine(line_a))
    assert (ticket_type(a.id).held, ticket_type(b.id).held) == (0, 3)
    change_cart(token, carts.EmptyCart())
    assert ticket_type(b.id).held == 0
    assert cart_by_token(token).items == []


def test_per_order_maximum(app):
    event = make_event(ticket_types=[{"name": "VIP", "max_per_order": 4}])
    tt = event.ticket_types[0]
    token = change_cart(None, carts.AddTickets(event.slug, {tt.id: 3}))
    with pytest.raises(OverPerOrderLimit) as over:
        change_cart(token, carts.AddTickets(event.slug, {tt.id: 2}))
    assert over.value.message() == "You can buy at most 4 tickets of VIP per order."
    assert ticket_type(tt.id).held == 3


@pytest.mark.app_config(MAX_TICKETS_PER_CART=5)
def test_cart_cap_over_all_types(app):
    event = make_event(ticket_types=[{"name": "A"}, {"name": "B"}])
    a, b = event.ticket_types
    token = change_cart(None, carts.AddTickets(event.slug, {a.id: 3}))
    with pytest.raises(OverCartLimit):
        change_cart(token, carts.AddTickets(event.slug, {b.id: 3}))
    assert ticket_type(b.id).held == 0


@pytest.mark.parametrize(
    "quantities,error",
    [
        ({}, NothingChosen),
        ({1: 0}, NothingChosen),
        ({1: -1}, InvalidQuantity),
        ({1: 10**9}, InvalidQuantity),
    ],
)
def test_bad_quantities_change_nothing(app, quantities, error):
    event = make_event()
    tt = event.ticket_types[0]
    with pytest.raises(error):
        change_cart(None, carts.AddTickets(event.slug, {tt.id if k == 1 else k: v for k, v in quantities.items()}))
    assert ticket_type(tt.id).held == 0


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1.5", "1e3", "0x10", "9999999", " "])
def test_parse_quantity_refuses_what_is_not_a_small_whole_number(raw):
    with pytest.raises(InvalidQuantity):
        carts.parse_quantity(raw, allow_zero=False)


def test_parse_quantity_accepts_whole_numbers():
    assert carts.parse_quantity(" 3 ", allow_zero=False) == 3
    assert carts.parse_quantity("", allow_zero=True) == 0
    assert carts.parse_quantity("0", allow_zero=True) == 0


def test_unknown_and_foreign_ticket_types(app):
    event = make_event()
    other = make_event()
    with pytest.raises(UnknownTicketType):
        change_cart(None, carts.AddTickets(event.slug, {999_999: 1}))
    with pytest.raises(TicketTypeOfOtherEvent):
        change_cart(None, carts.AddTickets(event.slug, {other.ticket_types[0].id: 1}))
    assert ticket_type(other.ticket_types[0].id).held == 0


def test_unpublished_event_cannot_be_bought(app):
    event = make_event(status=EventStatus.DRAFT.value)
    with pytest.raises(EventNotFound):
        change_cart(None, carts.AddTickets(event.slug, {event.ticket_types[0].id: 1}))
    assert ticket_type(event.ticket_types[0].id).held == 0


def test_sales_window(app):
    not_yet = make_event(sales_start=utcnow() + timedelta(days=1))
    ended = make_event(ticket_types=[{"name": "Early", "sales_end": utcnow() - timedelta(minutes=1)}])
    with pytest.raises(NotOnSaleYet):
        change_cart(None, carts.AddTickets(not_yet.slug, {not_yet.ticket_types[0].id: 1}))
    with pytest.raises(SalesEnded):
        change_cart(None, carts.AddTickets(ended.slug, {ended.ticket_types[0].id: 1}))


def test_one_event_per_cart(app):
    first, second = make_event(title="First"), make_event(title="Second")
    token = change_cart(None, carts.AddTickets(first.slug, {first.ticket_types[0].id: 1}))
    with pytest.raises(CartHoldsOtherEvent) as other:
        change_cart(token, carts.AddTickets(second.slug, {second.ticket_types[0].id: 1}))
    assert "First" in other.value.message()
    assert ticket_type(second.ticket_types[0].id).held == 0


def test_another_carts_line_is_not_found(app):
    event = make_event()
    tt = event.ticket_types[0]
    mine = change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    theirs = change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    their_line = cart_by_token(theirs).items[0].id
    with pytest.raises(LineNotFound):
        change_cart(mine, carts.SetQuantity(their_line, 5))
    with pytest.raises(LineNotFound):
        change_cart(mine, carts.RemoveLine(their_line))
    with pytest.raises(LineNotFound):
        change_cart(None, carts.RemoveLine(their_line))
    assert cart_by_token(theirs).items[0].quantity == 2
    assert ticket_type(tt.id).held == 3


def test_the_database_refuses_counters_past_capacity(app):
    """The CHECK constraint is the last line: even a buggy write cannot oversell."""
    from sqlalchemy.exc import IntegrityError

    event = make_event(ticket_types=[{"name": "Standard", "capacity": 2}])
    tt = event.ticket_types[0]
    with pytest.raises(IntegrityError):
        with write_transaction():
            db.session.execute(update(TicketType).where(TicketType.id == tt.id).values(held=3))
    assert ticket_type(tt.id).held == 0


# --- selling -----------------------------------------------------------------------------


def test_sell_moves_held_to_sold_on_the_type_and_its_event(app):
    event = make_event(capacity=4, ticket_types=[{"name": "Standard", "capacity": 3}])
    tt = event.ticket_types[0]
    change_cart(None, carts.AddTickets(event.slug, {tt.id: 2}))
    with write_transaction():
        inventory.sell({db.session.get(TicketType, tt.id): 2})
    fresh = ticket_type(tt.id)
    assert (fresh.held, fresh.sold) == (0, 2)
    ev = reload_event(event.id)
    assert (ev.held, ev.sold) == (0, 2)


def test_sell_refuses_what_is_not_held_and_changes_nothing(app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 3}])
    tt = event.ticket_types[0]
    change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    with pytest.raises(inventory.NotHeld):
        with write_transaction():
            inventory.sell({db.session.get(TicketType, tt.id): 2})
    fresh = ticket_type(tt.id)
    assert (fresh.held, fresh.sold) == (1, 0)


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_cart_holds_commit_without_waiting_for_the_disk_and_other_writes_wait(app):
    """Cart changes may be lost in a crash (the buyer adds again); nothing else may."""
    from sqlalchemy import event as sa_event

    seen: list[str] = []

    def at_commit(conn):
        seen.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())

    event = make_event()
    tt = event.ticket_types[0]
    sa_event.listen(db.engine, "commit", at_commit)
    try:
        change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
        assert seen == ["off"]
        with write_transaction():  # orders, payments, anything that is not a hold
            inventory.hold({ticket_type(tt.id): 1})
        assert seen == ["off", "on"]
    finally:
        sa_event.remove(db.engine, "commit", at_commit)
