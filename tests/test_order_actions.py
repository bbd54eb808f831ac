"""Order actions in the domain: cancelling without a refund (voids, puts back on sale,
idempotent, audited), correcting a name (validated, audited with old and new, idempotent),
refunding chosen tickets through the sandbox with put back on sale, and ``inventory.put_back``
never going below zero."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from storefront import inventory, order_actions, refunds
from storefront.audit import Actor
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, Order, TicketType

from .admin_support import audit_entries
from .checkout_support import sandbox, shop  # noqa: F401 (fixtures)
from .factories import make_event, make_order
from .test_refunds import paid_order

ACTOR = Actor(user_id=None, name="manager@example.com", client_address="198.18.0.9")


def _sold(order: Order, n: int) -> None:
    with write_transaction():
        db.session.execute(update(TicketType).where(TicketType.event_id == order.event_id).values(sold=n))
        db.session.execute(update(Event).where(Event.id == order.event_id).values(sold=n))


def _counters(event_id: int) -> tuple[int, int]:
    db.session.rollback()
    event = db.session.get(Event, event_id)
    return event.ticket_types[0].sold, event.sold


def test_cancel_voids_puts_back_and_is_idempotent(app):
    order = make_order(make_event(), [("Ada", "L"), ("Bob", "M")])
    _sold(order, 2)
    assert order_actions.cancel(order.id, True, ACTOR) is True
    assert order_actions.cancel(order.id, True, ACTOR) is False  # the double click
    db.session.rollback()
    order = db.session.get(Order, order.id)
    assert order.status == "cancelled" and [t.status for t in order.tickets] == ["void", "void"]
    assert _counters(order.event_id) == (0, 0)  # put back once, not twice
    assert [e.action for e in audit_entries(object_type="order", object_id=str(order.id))] == ["order.cancelled"]


def test_cancel_without_put_back_keeps_stock_sold(app):
    order = make_order(make_event())
    _sold(order, 1)
    order_actions.cancel(order.id, False, ACTOR)
    assert _counters(order.event_id) == (1, 1)


def test_put_back_never_goes_below_zero(app):
    event = make_event()
    with pytest.raises(inventory.NotSold):
        with write_transaction():
            inventory.put_back({db.session.get(TicketType, event.ticket_types[0].id): 1})
    assert _counters(event.id) == (0, 0)


@pytest.mark.parametrize("first", ["", "   ", "A\x00da", "Ada\nEve", "x" * 101])
def test_a_bad_name_is_refused_and_nothing_changes(app, first):
    order = make_order(make_event())
    with pytest.raises(order_actions.AttendeeNameInvalid):
        order_actions.rename_attendee(order.id, order.tickets[0].code, first, "Lovelace", ACTOR)
    db.session.rollback()
    assert db.session.get(Order, order.id).tickets[0].attendee_first_name == "Ada"
    assert audit_entries(action="ticket.renamed") == []


def test_rename_is_audited_with_old_and_new_and_idempotent(app):
    order = make_order(make_event())
    code = order.tickets[0].code
    assert order_actions.rename_attendee(order.id, code, " Augusta  Ada ", "King", ACTOR) is True
    assert order_actions.rename_attendee(order.id, code, "Augusta Ada", "King", ACTOR) is False
    [entry] = audit_entries(action="ticket.renamed")
    assert '"Lovelace"' in entry.before and '"Augusta Ada"' in entry.after and '"King"' in entry.after


def test_refund_by_tickets_voids_them_and_puts_them_back_on_sale(shop, sandbox):
    order = paid_order(shop, sandbox, quantity=2)  # 2 x 25.00, sold 2
    assert _counters(order.event_id) == (2, 2)
    first = order.tickets[0]
    refund_id = refunds.request_for_tickets(order.id, [first.id], True, "Could not come", ACTOR)
    # A second click names a ticket that is void now: refused, nothing refunded twice.
    with pytest.raises(refunds.NoTicketsChosen):
        refunds.request_for_tickets(order.id, [first.id], True, "Could not come", ACTOR)
    db.session.rollback()
    order = db.session.get(Order, order.id)
    assert [r.status for r in refunds.of_order(order.id)] == ["succeeded"]
    assert refunds.of_order(order.id)[0].id == refund_id and refunds.of_order(order.id)[0].amount_minor == 2500
    assert sorted(t.status for t in order.tickets) == ["valid", "void"]
    assert (order.status, order.refunded_minor) == ("partially_refunded", 2500)
    assert _counters(order.event_id) == (1, 1)


def test_a_stale_confirm_page_refunds_nothing(shop, sandbox):
    order = paid_order(shop, sandbox)
    refunds.request(order.id, 1000, "first", ACTOR, expect_committed_minor=0)
    with pytest.raises(refunds.RefundsChangedMeanwhile):
        refunds.request(order.id, 1000, "double click", ACTOR, expect_committed_minor=0)
    assert [r.amount_minor for r in refunds.of_order(order.id)] == [1000]
