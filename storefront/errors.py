"""Typed domain errors and the words a buyer reads for each.

Domain code raises these with data; views turn them into a status code and a
message through ``message()``. Nothing shows ``str(e)`` to a buyer.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import ngettext


class StorefrontError(Exception):
    status = 400

    def message(self) -> str:  # pragma: no cover - every subclass says its own
        raise NotImplementedError


class InvalidQuantity(StorefrontError):
    def __init__(self, raw: str | None = None):
        super().__init__(raw)
        self.raw = raw

    def message(self) -> str:
        return _("Please enter a whole number of tickets.")


class QuantityBelowOne(InvalidQuantity):
    """A cart line set to 0: removing is its own button."""

    def message(self) -> str:
        return _(
            "Please enter a whole number of tickets, at least 1. To take these tickets out of your cart, press Remove."
        )


class NothingChosen(StorefrontError):
    def message(self) -> str:
        return _("Choose how many tickets you want first.")


class EventNotFound(StorefrontError):
    status = 404

    def message(self) -> str:
        return _("This event does not exist or is not on sale.")


class UnknownTicketType(StorefrontError):
    status = 404

    def message(self) -> str:
        return _("That ticket type does not exist.")


class TicketTypeOfOtherEvent(StorefrontError):
    def message(self) -> str:
        return _("That ticket type belongs to another event.")


class LineNotFound(StorefrontError):
    status = 404

    def message(self) -> str:
        return _("That line is not in your cart.")


class NotOnSaleYet(StorefrontError):
    status = 409

    def __init__(self, name: str, opens_at: datetime | None = None, timezone: str | None = None):
        super().__init__(name)
        self.name = name
        self.opens_at, self.timezone = opens_at, timezone

    def message(self) -> str:
        if self.opens_at is None or self.timezone is None:
            return _("Sales for %(name)s have not opened yet.", name=self.name)
        from .formatting import event_time

        return _(
            "Sales for %(name)s have not opened yet: they open on %(when)s.",
            name=self.name,
            when=event_time(self.opens_at, self.timezone),
        )


class SalesEnded(StorefrontError):
    status = 409

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def message(self) -> str:
        return _("Sales for %(name)s have ended.", name=self.name)


class SoldOut(StorefrontError):
    """Not enough stock: ``left`` tickets could still be had (0: sold out)."""

    status = 409

    def __init__(self, name: str, left: int, ticket_type_id: int | None = None, event_id: int | None = None):
        super().__init__(name, left)
        self.name = name
        self.left = left
        self.ticket_type_id = ticket_type_id
        self.event_id = event_id

    def message(self) -> str:
        if self.left <= 0:
            return _("%(name)s is sold out.", name=self.name)
        return ngettext(
            "Only %(num)d ticket left for %(name)s.",
            "Only %(num)d tickets left for %(name)s.",
            self.left,
            name=self.name,
        )


class OverPerOrderLimit(StorefrontError):
    def __init__(self, name: str, limit: int):
        super().__init__(name, limit)
        self.name = name
        self.limit = limit

    def message(self) -> str:
        return ngettext(
            "You can buy at most %(num)d ticket of %(name)s per order.",
            "You can buy at most %(num)d tickets of %(name)s per order.",
            self.limit,
            name=self.name,
        )


class OverCartLimit(StorefrontError):
    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit

    def message(self) -> str:
        return ngettext(
            "A cart can hold at most %(num)d ticket.",
            "A cart can hold at most %(num)d tickets.",
            self.limit,
        )


class CartHoldsOtherEvent(StorefrontError):
    status = 409

    def __init__(self, title: str):
        super().__init__(title)
        self.title = title

    def message(self) -> str:
        return _(
            "Your cart holds tickets for %(title)s. Check out or empty your cart before choosing another event.",
            title=self.title,
        )


class CartLapsed(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("Your reservation lapsed and the tickets went back on sale. Add them again to hold them anew.")


# --- checkout -------------------------------------------------------------------------------


class CartCheckingOut(StorefrontError):
    """The cart is being paid for on Stripe: changes must first close that payment
    (``checkout.return_to_cart``); the views do that and try again."""

    status = 409

    def message(self) -> str:
        return _("Your cart is being paid for. Finish or cancel the payment first.")


class PaymentAlreadyMade(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("You already paid for this cart; your order is being confirmed.")


class PaymentNeedsReview(StorefrontError):
    """Stripe reports a payment for this cart of another amount or currency than it
    asked for (``fulfilment``): the cart stays as it is until a person has looked."""

    status = 409

    def message(self) -> str:
        return _(
            "We received a payment for this cart that does not match it. Our team is looking into it and will "
            "contact you by email; please do not pay again."
        )


class NothingToPay(StorefrontError):
    status = 409

    def message(self) -> str:
        return _("Your cart is empty, so there is nothing to pay yet.")


class PriceChanged(StorefrontError):
    """A price changed between the checkout form and the press of Pay."""

    status = 409

    def __init__(self, total_minor: int, currency: str):
        super().__init__(total_minor, currency)
        self.total_minor, self.currency = total_minor, currency

    def message(self) -> str:
        from .formatting import money

        return _(
            "A price changed while you were checking out: the total is now %(total)s. "
            "Check it below and press Pay again.",
            total=money(self.total_minor, self.currency),
        )


class InvalidEmail(StorefrontError):
    def message(self) -> str:
        return _("Please enter a valid email address, so we can send your tickets.")


class AttendeeNameMissing(StorefrontError):
    """Ticket number ``position`` (1-based) lacks a first or last name, or one is too long."""

    def __init__(self, position: int):
        super().__init__(position)
        self.position = position

    def message(self) -> str:
        return _(
            "Please give a first and a last name (up to 100 characters each) for ticket %(num)d.", num=self.position
        )


class AttendeeNameUnprintable(StorefrontError):
    """A name for ticket number ``position`` holds control characters (a tab, a line break…)."""

    def __init__(self, position: int):
        super().__init__(position)
        self.position = position

    def message(self) -> str:
        return _("The name for ticket %(num)d holds characters that cannot be printed on a ticket.", num=self.position)


class PaymentServiceUnavailable(StorefrontError):
    """Stripe errored or could not be reached: nothing was charged, the cart stays held."""

    status = 503

    def message(self) -> str:
        return _("We could not reach the payment service. Your tickets are still held; please try again in a moment.")


# --- money (storefront.money) ------------------------------------------------------------


class UnsupportedCurrency(StorefrontError):
    """An event's currency that Stripe does not accept for a charge."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code

    def message(self) -> str:
        return _("Payments in %(code)s are not possible: Stripe does not accept this currency.", code=self.code)


class InvalidAmount(StorefrontError):
    """A price that is negative, or finer than Stripe can charge in its currency."""

    def __init__(self, currency: str):
        super().__init__(currency)
        self.currency = currency

    def message(self) -> str:
        return _("This is not an amount that can be charged in %(currency)s.", currency=self.currency.upper())


# --- limits (storefront/limits.py) ------------------------------------------------------------


class TooManyRequests(StorefrontError):
    """One client went past one of its limits; nothing was changed. ``retry_after`` is
    the number of seconds until the limit lets it through again (the ``Retry-After``)."""

    status = 429
    REQUESTS, NEW_CARTS, TICKETS, PAYMENT_CHECKS = "requests", "new_carts", "tickets", "payment_checks"
    DOOR = "door"
    LOST_TICKETS = "lost_tickets"
    RESEND_ORDER, RESEND_MEMBER = "resend_order", "resend_member"

    def __init__(self, what: str, retry_after: int, allowed: int = 0):
        super().__init__(what, retry_after, allowed)
        self.what = what
        self.retry_after = retry_after
        self.allowed = allowed

    def message(self) -> str:
        if self.what == self.TICKETS:
            why = ngettext(
                "One buyer may reserve at most %(num)d ticket of this event at a time.",
                "One buyer may reserve at most %(num)d tickets of this event at a time.",
                self.allowed,
            )
        elif self.what == self.NEW_CARTS:
            why = _("Too many new carts were started from your connection.")
        elif self.what == self.DOOR:
            why = _("Too many requests came from your account at the door in a short time.")
        elif self.what == self.LOST_TICKETS:
            why = _("Links to orders were asked for too often, from your connection or for this address.")
        elif self.what == self.RESEND_ORDER:
            why = ngettext(
                "This order's confirmation was sent again %(num)d time in the last hour; that is the most.",
                "This order's confirmation was sent again %(num)d times in the last hour; that is the most.",
                self.allowed,
            )
        elif self.what == self.RESEND_MEMBER:
            why = _("You sent confirmations again too often in a short time.")
        elif self.what == self.PAYMENT_CHECKS:
            why = _("Your payment was checked too often from your connection; the confirmation also comes by email.")
        else:
            why = _("Too many requests came from your connection.")
        wait = ngettext("Please try again in %(num)d second.", "Please try again in %(num)d seconds.", self.retry_after)
        return f"{why} {wait}"
