"""Why a payment failed, in the words an organiser reads, and the reason it counts under.

Stripe reports a failed try with an error ``code`` and, for card declines, a
``decline_code`` (https://docs.stripe.com/declines/codes). The back office shows both,
but leads with a sentence ("Card declined: insufficient funds"); the payments dashboard
groups failures by ``Reason``. One table here, so the timeline, the dashboard and the
exports say the same thing for the same failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """What a failure counts as on the dashboard, in the order it lists them."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    AUTHENTICATION_FAILED = "authentication_failed"  # 3-D Secure
    BANK_DEBIT_FAILED = "bank_debit_failed"
    INCORRECT_DETAILS = "incorrect_details"  # number, CVC, expiry, postcode
    LOST_OR_STOLEN = "lost_or_stolen"
    CARD_DECLINED = "card_declined"  # every other decline by the bank
    PROCESSING_ERROR = "processing_error"
    OTHER = "other"


REASON_LABELS: dict[Reason, str] = {
    Reason.INSUFFICIENT_FUNDS: "Insufficient funds",
    Reason.EXPIRED_CARD: "Expired card",
    Reason.AUTHENTICATION_FAILED: "3-D Secure failed",
    Reason.BANK_DEBIT_FAILED: "Bank debit failed",
    Reason.INCORRECT_DETAILS: "Incorrect card details",
    Reason.LOST_OR_STOLEN: "Lost or stolen card",
    Reason.CARD_DECLINED: "Card declined",
    Reason.PROCESSING_ERROR: "Processing error",
    Reason.OTHER: "Other",
}

# Card declines: decline_code -> (reason, the words after "Card declined: ").
_DECLINES: dict[str, tuple[Reason, str]] = {
    "insufficient_funds": (Reason.INSUFFICIENT_FUNDS, "insufficient funds"),
    "expired_card": (Reason.EXPIRED_CARD, "the card has expired"),
    "lost_card": (Reason.LOST_OR_STOLEN, "the card was reported lost"),
    "stolen_card": (Reason.LOST_OR_STOLEN, "the card was reported stolen"),
    "pickup_card": (Reason.LOST_OR_STOLEN, "the bank asked to keep the card"),
    "incorrect_cvc": (Reason.INCORRECT_DETAILS, "the security code (CVC) is wrong"),
    "invalid_cvc": (Reason.INCORRECT_DETAILS, "the security code (CVC) is wrong"),
    "incorrect_number": (Reason.INCORRECT_DETAILS, "the card number is wrong"),
    "invalid_number": (Reason.INCORRECT_DETAILS, "the card number is wrong"),
    "invalid_expiry_month": (Reason.INCORRECT_DETAILS, "the expiry date is wrong"),
    "invalid_expiry_year": (Reason.INCORRECT_DETAILS, "the expiry date is wrong"),
    "incorrect_zip": (Reason.INCORRECT_DETAILS, "the postcode is wrong"),
    "processing_error": (Reason.PROCESSING_ERROR, "an error at the bank while processing it"),
    "card_velocity_exceeded": (Reason.CARD_DECLINED, "the card's limit was exceeded"),
    "withdrawal_count_limit_exceeded": (Reason.CARD_DECLINED, "the card's limit was exceeded"),
    "do_not_honor": (Reason.CARD_DECLINED, "the bank refused without saying why"),
    "generic_decline": (Reason.CARD_DECLINED, "the bank refused without saying why"),
    "fraudulent": (Reason.CARD_DECLINED, "the bank suspects fraud"),
    "card_not_supported": (Reason.CARD_DECLINED, "the card does not support this kind of purchase"),
    "currency_not_supported": (Reason.CARD_DECLINED, "the card does not support this currency"),
    "test_mode_live_card": (Reason.CARD_DECLINED, "a real card was used in test mode"),
}

# Error codes that are not card declines (or carry no decline code): code -> (reason, sentence).
_CODES: dict[str, tuple[Reason, str]] = {
    "payment_intent_authentication_failure": (
        Reason.AUTHENTICATION_FAILED,
        "3-D Secure failed: the buyer did not confirm",
    ),
    "authentication_required": (Reason.AUTHENTICATION_FAILED, "3-D Secure was required and not completed"),
    "payment_method_provider_decline": (Reason.BANK_DEBIT_FAILED, "Bank debit failed: the bank refused it"),
    "insufficient_funds": (Reason.INSUFFICIENT_FUNDS, "Bank debit failed: insufficient funds"),
    "expired_card": (Reason.EXPIRED_CARD, "Card declined: the card has expired"),
    "incorrect_cvc": (Reason.INCORRECT_DETAILS, "Card declined: the security code (CVC) is wrong"),
    "incorrect_number": (Reason.INCORRECT_DETAILS, "Card declined: the card number is wrong"),
    "processing_error": (Reason.PROCESSING_ERROR, "Card declined: an error at the bank while processing it"),
    "rate_limit": (Reason.OTHER, "Stripe was busy (rate limited); the shop may try again"),
    "api_connection_error": (Reason.OTHER, "Stripe could not be reached"),
}


@dataclass(frozen=True)
class Failure:
    reason: Reason
    words: str  # the sentence the back office leads with
    code: str | None
    decline_code: str | None

    @property
    def label(self) -> str:
        return REASON_LABELS[self.reason]


def explain(code: str | None, decline_code: str | None, message: str | None = None) -> Failure | None:
    """The failure Stripe reported, in plain words; None when it reported none."""
    if not code and not decline_code:
        return None
    if decline_code and decline_code in _DECLINES:
        reason, words = _DECLINES[decline_code]
        return Failure(reason, f"Card declined: {words}", code, decline_code)
    if code and code in _CODES:
        reason, words = _CODES[code]
        return Failure(reason, words, code, decline_code)
    if code == "card_declined" or decline_code:
        detail = f" ({decline_code})" if decline_code else ""
        return Failure(Reason.CARD_DECLINED, f"Card declined{detail}", code, decline_code)
    # A code we have no words for: Stripe's own message says more than the code.
    return Failure(Reason.OTHER, message or f"Stripe reported {code}", code, decline_code)


def of_attempt(attempt) -> Failure | None:
    """The last failure recorded on a ``PaymentAttempt`` (``checkout`` and ``stripe_events`` record it)."""
    return explain(attempt.error_code, attempt.decline_code, attempt.error_message)


# For a query that filters attempts by reason (``storefront.order_search.reason_condition``,
# which follows ``explain``'s order: a known decline code first, then a known code).


def known_decline_codes() -> list[str]:
    return sorted(_DECLINES)


def known_codes() -> list[str]:
    return sorted(_CODES)


def decline_codes_of(reason: Reason) -> list[str]:
    return sorted(code for code, (r, _words) in _DECLINES.items() if r == reason)


def codes_of(reason: Reason) -> list[str]:
    return sorted(code for code, (r, _words) in _CODES.items() if r == reason)
