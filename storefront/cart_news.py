"""What a cart change did, in words, for the cart's polite live region and its visible
note: "2 × Floor added. Total €50.00." Worked out from the cart's lines before and after
the change, so every kind of change (add, new quantity, remove, empty) is told the same way."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from .formatting import money

Lines = dict[int, tuple[str, int]]


def lines_of(cart_view) -> Lines:
    """The cart's lines as {ticket type id: (name, quantity)}, for comparing later."""
    return {item.ticket_type_id: (item.ticket_type.name, item.quantity) for item in cart_view.items}


def describe(before: Lines, cart_view) -> str | None:
    """The change from ``before`` to ``cart_view`` in a sentence or two, or None when the
    lines did not change (nothing to announce) or the hold lapsed (the cart says so)."""
    if cart_view.lapsed:
        return None
    after = lines_of(cart_view)
    parts = []
    for tt_id, (name, quantity) in after.items():
        was = before.get(tt_id, (name, 0))[1]
        if was == 0:
            parts.append(_("%(num)d × %(name)s added.", num=quantity, name=name))
        elif quantity != was:
            parts.append(
                ngettext("%(name)s: now %(num)d ticket.", "%(name)s: now %(num)d tickets.", quantity, name=name)
            )
    for tt_id, (name, _quantity) in before.items():
        if tt_id not in after:
            parts.append(_("%(name)s removed.", name=name))
    if not parts:
        return None
    if after:
        parts.append(_("Total %(total)s.", total=money(cart_view.total_minor, cart_view.currency)))
    else:
        parts.append(_("Your cart is empty."))
    return " ".join(parts)
