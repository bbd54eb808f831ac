"""The one owner of ``Order.status``: paid, partially refunded, refunded, cancelled.

An order is made ``paid`` by fulfilment. Its refund state follows the money: the sum of
its refunds that are pending or succeeded (``storefront.refunds`` keeps that sum in
``refunded_minor`` and calls ``follow_refunds``). A refund that fails gives the money
back to the order, so the state can also go back (refunded → partially refunded → paid).
Cancelled (without a refund: comps, fraud; or an event cancelled with its refunds) is an
end; refunds may still follow it, and it stays cancelled.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _

from . import ticket_lifecycle
from .models import Order, OrderStatus

S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PAID: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.CANCELLED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PAID, S.REFUNDED, S.CANCELLED}),
    S.REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.PAID, S.CANCELLED}),
    S.CANCELLED: frozenset(),
}


class IllegalOrderTransition(RuntimeError):
    def __init__(self, current: str, wanted: OrderStatus) -> None:
        super().__init__(f"an order cannot go from {current} to {wanted.value}")


def move(order: Order, to: OrderStatus) -> None:
    if order.status == to.value:
        return
    if to not in TRANSITIONS[OrderStatus(order.status)]:
        raise IllegalOrderTransition(order.status, to)
    order.status = to.value


def follow_refunds(order: Order, refunded_minor: int, now: datetime) -> None:
    """The order's refunded amount is now ``refunded_minor``: its status says so (a
    cancelled order stays cancelled)."""
    order.refunded_minor = refunded_minor
    if order.status == S.CANCELLED.value:
        return
    if refunded_minor <= 0:
        move(order, S.PAID)
    elif refunded_minor >= order.total_minor:
        move(order, S.REFUNDED)
        _void_valid_tickets(order.id)
    else:
        move(order, S.PARTIALLY_REFUNDED)


def refundable_minor(order: Order, committed_minor: int) -> int:
    """What can still be refunded, given refunds that have not failed (``committed_minor``)."""
    return max(0, order.total_minor - committed_minor)


def _void_valid_tickets(order_id: int) -> None:
    """All the money went back: no ticket of the order may get anyone in. (A partial
    refund names an amount, not tickets: which to void is the organiser's call.) A refund
    that fails later does not make them valid again: the buyer was told they are void, and
    the organiser retries the refund."""
    ticket_lifecycle.void_valid_of_order(order_id)


def status_words() -> dict[str, str]:
    """Each status as the back office says it."""
    return {
        S.PAID: _("Paid"),
        S.PARTIALLY_REFUNDED: _("Partly refunded"),
        S.REFUNDED: _("Refunded"),
        S.CANCELLED: _("Cancelled"),
    }
