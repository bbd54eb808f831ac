"""Typed errors of editing events and ticket types in the back office, and their words.

As ``storefront.staff_errors``: raised with data by the domain (``storefront.events``,
``storefront.ticket_types``, ``storefront.inventory``, ``storefront.cover_images``), put
beside the form field named in ``field`` (or above the form) by the view.
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from .staff_errors import StaffError


class EventError(StaffError):
    def __init__(self, *args, field: str | None = None):
        super().__init__(*args)
        if field is not None:
            self.field = field


class CapacityBelowTaken(EventError):
    """A capacity lower than what is sold and held right now."""

    status = 409
    field = "capacity"

    def __init__(self, taken: int, field: str | None = None):
        super().__init__(taken, field=field)
        self.taken = taken

    def message(self) -> str:
        return ngettext(
            "%(num)d ticket is sold or held in carts right now: the capacity cannot be lower.",
            "%(num)d tickets are sold or held in carts right now: the capacity cannot be lower.",
            self.taken,
        )


class EventSlugTaken(EventError):
    status = 409
    field = "slug"

    def message(self) -> str:
        return _("Another event uses this web address already. Choose another.")


class InvalidEventSlug(EventError):
    field = "slug"

    def message(self) -> str:
        return _("Use 2 to 120 lower-case letters, digits and dashes, starting with a letter or digit.")


class NonexistentLocalTime(EventError):
    """A wall-clock time the zone skips (the hour clocks go forward)."""

    def __init__(self, field: str, local: str, timezone: str):
        super().__init__(local, timezone, field=field)
        self.local, self.timezone = local, timezone

    def message(self) -> str:
        return _(
            "%(time)s does not exist in %(zone)s: the clocks go forward then. Choose a time an hour later.",
            time=self.local,
            zone=self.timezone,
        )


class EndsBeforeStart(EventError):
    field = "ends_at"

    def message(self) -> str:
        return _("The end must come after the start.")


class SalesWindowInvalid(EventError):
    field = "sales_end"

    def message(self) -> str:
        return _("Sales must end after they start.")


class SalesNeverOpen(EventError):
    field = "sales_start"

    def message(self) -> str:
        return _("Sales must open before the event starts.")


class CurrencyLocked(EventError):
    status = 409
    field = "currency"

    def message(self) -> str:
        return _("Tickets of this event are sold or held in carts: its currency cannot change any more.")


class PriceNotInCurrency(EventError):
    """Changing the currency: a ticket type's price cannot be charged in the new one."""

    field = "currency"

    def __init__(self, name: str, currency: str):
        super().__init__(name, currency)
        self.name, self.currency = name, currency

    def message(self) -> str:
        return _(
            "The price of %(name)s cannot be charged in %(currency)s. Change the price first.",
            name=self.name,
            currency=self.currency,
        )


class InvalidPrice(EventError):
    field = "price"

    def __init__(self, currency: str):
        super().__init__(currency)
        self.currency = currency

    def message(self) -> str:
        return _(
            "Enter an amount that can be charged in %(currency)s, such as 25 or 12.50 (no more decimals than it has).",
            currency=self.currency,
        )


class CannotPublish(EventError):
    status = 409

    NO_TICKET_TYPES, SALES_WINDOW, PAST, CANCELLED = "no_ticket_types", "sales_window", "past", "cancelled"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def message(self) -> str:
        return {
            self.NO_TICKET_TYPES: _("Add a ticket type buyers can see before publishing."),
            self.SALES_WINDOW: _(
                "The sales window is not valid: sales must open before they end and before the event."
            ),
            self.PAST: _("This event has started already; it cannot go on sale."),
            self.CANCELLED: _("This event is cancelled; it cannot go on sale again."),
        }[self.reason]


class CannotCancel(EventError):
    status = 409

    PAID_ORDERS, PAYMENTS_IN_PROGRESS, CANCELLED = "paid_orders", "payments_in_progress", "cancelled"

    def __init__(self, reason: str, count: int = 0):
        super().__init__(reason, count)
        self.reason, self.count = reason, count

    def message(self) -> str:
        if self.reason == self.PAID_ORDERS:
            return ngettext(
                "This event has %(num)d paid order. Cancelling it, with refunds, comes with the orders area.",
                "This event has %(num)d paid orders. Cancelling it, with refunds, comes with the orders area.",
                self.count,
            )
        if self.reason == self.PAYMENTS_IN_PROGRESS:
            return ngettext(
                "%(num)d payment for this event is in progress. Try again once it has finished (at most 30 minutes).",
                "%(num)d payments for this event are in progress. Try again once they have finished"
                " (at most 30 minutes).",
                self.count,
            )
        return _("This event is cancelled already.")


class EventLocked(EventError):
    """A cancelled event is not edited any more."""

    status = 409

    def message(self) -> str:
        return _("This event is cancelled: it cannot be changed any more.")


class TicketTypeHasSales(EventError):
    status = 409

    def message(self) -> str:
        return _("Tickets of this type were sold or are held in carts: hide it instead of deleting it.")


class TicketTypeNotFound(EventError):
    status = 404

    def message(self) -> str:
        return _("That ticket type does not exist.")


class InvalidCoverImage(EventError):
    field = "image"

    TOO_LARGE, NOT_AN_IMAGE, FORMAT, TOO_MANY_PIXELS = "too_large", "not_an_image", "format", "too_many_pixels"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def message(self) -> str:
        return {
            self.TOO_LARGE: _("This file is too large for a cover image."),
            self.NOT_AN_IMAGE: _("This file is not an image we can read."),
            self.FORMAT: _("Upload a JPEG, PNG or WebP image."),
            self.TOO_MANY_PIXELS: _("This image has too many pixels. Upload one of at most 40 megapixels."),
        }[self.reason]
