"""Typed errors of the back office's domain, and the words a staff member reads for each.

Like ``storefront.errors``: domain code raises these with data, views turn them into a
status code and ``message()``; the ones tied to one form field name it in ``field``.
"""

from __future__ import annotations

from flask_babel import gettext as _

from .errors import StorefrontError
from .passwords import PolicyViolation


class StaffError(StorefrontError):
    # The form field the message belongs beside (None: the whole form).
    field: str | None = None


class InvalidStaffEmail(StaffError):
    field = "email"

    def message(self) -> str:
        return _("Please enter one valid email address, such as name@example.com.")


class InvalidContactEmail(InvalidStaffEmail):
    field = "contact_email"


class WeakPassword(StaffError):
    field = "password"

    def __init__(self, violation: PolicyViolation):
        super().__init__(violation.reason)
        self.violation = violation

    def message(self) -> str:
        return self.violation.message()


class WrongPassword(StaffError):
    """The current password, asked again before a sensitive change, is not the account's."""

    field = "current_password"

    def message(self) -> str:
        return _("That is not your current password.")


class EmailTaken(StaffError):
    status = 409
    field = "email"

    def message(self) -> str:
        return _("An account with this email address exists already. Sign in with it instead.")


class InvalidLink(StaffError):
    """An invitation or reset link that does not exist, was used, revoked or expired."""

    status = 404

    def message(self) -> str:
        return _("This link is not valid any more: it was used already, or it expired. Ask for a new one.")


class InvitationForSomeoneElse(StaffError):
    status = 403

    def __init__(self, email: str):
        super().__init__(email)
        self.email = email

    def message(self) -> str:
        return _("This invitation is for %(email)s. Sign out, then open the link again.", email=self.email)


class AlreadyMember(StaffError):
    status = 409
    field = "email"

    def message(self) -> str:
        return _("This person is a member already. Change their role on the members page instead.")


class LastOwner(StaffError):
    status = 409

    def message(self) -> str:
        return _("An organiser needs at least one owner. Make another member owner first.")


class MemberNotFound(StaffError):
    status = 404

    def message(self) -> str:
        return _("That member does not exist.")


class UnknownOrganiser(StaffError):
    status = 404

    def message(self) -> str:
        return _("There is no organiser with that name.")


class InvalidOrganiserName(StaffError):
    field = "name"

    def message(self) -> str:
        return _("Give the organiser a name of up to 200 characters.")


class SlugTaken(StaffError):
    status = 409
    field = "slug"

    def message(self) -> str:
        return _("Another organiser uses this short name already.")


class InvalidSlug(StaffError):
    field = "slug"

    def message(self) -> str:
        return _("Use 2 to 60 lower-case letters, digits and dashes, starting with a letter or digit.")


class WrongCode(StaffError):
    field = "code"

    def message(self) -> str:
        return _("That code is not right, or it was used already. Enter the current code from your app.")


class TwoFactorAlreadyOn(StaffError):
    status = 409

    def message(self) -> str:
        return _("Two-factor sign-in is on already.")


class TwoFactorNotStarted(StaffError):
    status = 409

    def message(self) -> str:
        return _("Start setting up two-factor sign-in first.")


class TwoFactorRequired(StaffError):
    """An organiser of the user's requires two-factor sign-in, so it cannot be turned off."""

    status = 409

    def __init__(self, organiser_name: str):
        super().__init__(organiser_name)
        self.organiser_name = organiser_name

    def message(self) -> str:
        return _(
            "%(name)s requires two-factor sign-in of its members, so it cannot be turned off.",
            name=self.organiser_name,
        )


class OwnTwoFactorFirst(StaffError):
    """An owner may only require two-factor sign-in of everyone once they use it themselves."""

    status = 409
    field = "require_two_factor"

    def message(self) -> str:
        return _("Turn on two-factor sign-in for your own account first, then require it of everyone.")


class EventNotOfOrganiser(StaffError):
    status = 404
    field = "events"

    def message(self) -> str:
        return _("One of the chosen events does not exist.")


# --- the door (storefront.check_in) ------------------------------------------------------------


class NothingScanned(StaffError):
    field = "code"

    def message(self) -> str:
        return _("Scan a ticket's QR code or type its code.")


class NotATicketCode(StaffError):
    field = "code"

    def message(self) -> str:
        return _("That is not a ticket code: it has 10 letters and digits, like ACDEF-GHJKM.")


class NonceReused(StaffError):
    """A scan's nonce came again with something else scanned, or for another event."""

    status = 409

    def message(self) -> str:
        return _("This scan was sent before for another ticket. Reload the page and scan again.")


class CheckInNotFound(StaffError):
    status = 404

    def message(self) -> str:
        return _("That check-in does not exist.")


class NothingToUndo(StaffError):
    """The check-in to undo is no longer the ticket's admission (undone already, or the
    ticket was checked in again since)."""

    status = 409

    def message(self) -> str:
        return _("This check-in cannot be undone any more: it was undone already, or the ticket was checked in again.")


class InvalidNonce(StaffError):
    """A scan without the nonce the door's page gives each scan (or a malformed one)."""

    def message(self) -> str:
        return _("This scan could not be sent as it was. Reload the page and scan again.")


class InvalidDoorName(StaffError):
    field = "door"

    def message(self) -> str:
        return _("Name the door in up to 60 letters, digits and spaces, such as North gate.")


class TicketNotFound(StaffError):
    status = 404
    field = "code"

    def message(self) -> str:
        return _("No ticket of this event has that code.")


class TicketNotReissuable(StaffError):
    status = 409

    def __init__(self, status: str, changed_meanwhile: bool = False):
        super().__init__(status, changed_meanwhile)
        self.ticket_status = status
        self.changed_meanwhile = changed_meanwhile

    def message(self) -> str:
        if self.changed_meanwhile:
            return _("The ticket changed while you were looking at it. Look at it again, then reissue it.")
        if self.ticket_status == "void":
            return _("This ticket is void (refunded or cancelled): there is nothing to reissue.")
        return _("This ticket was already used at the door: a new code would not undo that.")
