"""Running one change of a buyer's cart: the retry policy, in one place.

A change (``cart.AddTickets``, ``SetQuantity``, ``RemoveLine``, ``EmptyCart``,
``ReleaseIfLapsed``) is applied inside one write transaction. When it fails, it is
tried again at most once for each of two reasons, and never otherwise:

* it ran short of stock, and lapsed holds could make good (lapsed carts hold what ran
  short, or more is left than when it failed): the lapsed holds of what ran short are
  released, and the change tried once more;
* the cart is being paid for (the buyer came back from Stripe): what the change would
  refuse even with that payment closed is refused first, with nothing closed (the
  change is rehearsed on the cart as it is, and undone: a line not in the cart, more
  than a limit allows, another event's tickets); else the open Checkout Session is
  closed at Stripe (``checkout.return_to_cart``, which refuses if the buyer paid
  meanwhile), and the change tried once more.

A cart found lapsed is released (in a transaction of its own: the change's was
rolled back) and the buyer told. This module sits above ``cart`` and ``checkout``
because its policy needs both.
"""

from __future__ import annotations

from datetime import datetime

from . import cart as carts
from . import checkout as checkouts
from .allowance import UNLIMITED, Allowance
from .database import rehearsal, write_transaction
from .errors import CartCheckingOut, CartLapsed, SoldOut
from .models import utcnow


def change_cart(
    token: str | None,
    change: carts.CartChange,
    *,
    allowance: Allowance = UNLIMITED,
    now: datetime | None = None,
) -> str | bool | None:
    """Apply ``change`` to the buyer's cart with the retry policy above; returns what the
    change returns (``AddTickets``: the cart's token). ``allowance`` is what this
    client may still take (``storefront.limits.for_client()`` in a request). Raises a
    ``StorefrontError``, with nothing changed, when the change cannot be made."""
    released_lapsed_holds = closed_checkout = False
    while True:
        lapsed_holds_may_help = False
        try:
            with write_transaction(durable=False):
                try:
                    return change.apply(token, now or utcnow(), allowance)
                except SoldOut as short:
                    # Asked in the transaction that ran short, in one query, so refusing
                    # a buyer stays cheap (most buyers of a flash sale are refused).
                    lapsed_holds_may_help = not released_lapsed_holds and carts.lapsed_holds_may_help(short, utcnow())
                    raise
        except SoldOut as short:
            if not lapsed_holds_may_help:
                raise
            carts.release_lapsed_holds(
                ticket_type_ids=[short.ticket_type_id] if short.ticket_type_id else None,
                event_id=None if short.ticket_type_id else short.event_id,
            )
            released_lapsed_holds = True
        except CartCheckingOut:
            if closed_checkout:
                raise
            _refuse_what_closing_would_not_change(token, change)
            checkouts.return_to_cart(token)
            closed_checkout = True
        except CartLapsed:
            carts.release_if_lapsed(token)
            raise


def _refuse_what_closing_would_not_change(token: str | None, change: carts.CartChange) -> None:
    """Rehearse ``change`` on the cart being paid for as if its payment were closed, and
    undo it; raise what it refused, unless closing the payment could still make it go
    through: the hold lapsed (closing releases it, and the buyer is told), or it ran
    short where lapsed holds could make good (the change's own retry). The allowance
    is not asked: the change itself, once the payment is closed, asks it."""
    now = utcnow()
    try:
        with rehearsal(), carts.as_if_payment_closed():
            try:
                change.apply(token, now, UNLIMITED)
            except SoldOut as short:
                if not carts.lapsed_holds_may_help(short, now):
                    raise
    except CartLapsed:
        pass
