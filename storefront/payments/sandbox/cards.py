"""Stripe's test cards and IBANs, what each one does, and what the buyer reads."""

from __future__ import annotations

from typing import Any

# Stripe's test cards (https://stripe.com/testing) and what each one does.
CARDS: dict[str, dict[str, Any]] = {
    "4242424242424242": {"brand": "visa", "outcome": "succeed"},
    "5555555555554444": {"brand": "mastercard", "outcome": "succeed"},
    "4000000000000002": {
        "brand": "visa",
        "outcome": "decline",
        "code": "card_declined",
        "decline_code": "generic_decline",
    },
    "4000000000009995": {
        "brand": "visa",
        "outcome": "decline",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
    },
    "4000000000009987": {"brand": "visa", "outcome": "decline", "code": "card_declined", "decline_code": "lost_card"},
    "4000000000009979": {"brand": "visa", "outcome": "decline", "code": "card_declined", "decline_code": "stolen_card"},
    "4000000000000069": {"brand": "visa", "outcome": "decline", "code": "expired_card", "decline_code": "expired_card"},
    "4000000000000127": {
        "brand": "visa",
        "outcome": "decline",
        "code": "incorrect_cvc",
        "decline_code": "incorrect_cvc",
    },
    "4000000000000119": {
        "brand": "visa",
        "outcome": "decline",
        "code": "processing_error",
        "decline_code": "processing_error",
    },
    # Refunds (https://docs.stripe.com/testing#refunds): the charge succeeds; a refund of it
    # starts pending and succeeds later, or starts succeeded and fails later.
    "4000000000007726": {"brand": "visa", "outcome": "succeed", "refund": "pending"},
    "4000000000005126": {"brand": "visa", "outcome": "succeed", "refund": "fails"},
    "4000002500003155": {"brand": "visa", "outcome": "3ds"},
    "4000002760003184": {"brand": "visa", "outcome": "3ds"},
}


def N_(message: str) -> str:
    """Mark an English message for the catalog and give it back unchanged: Stripe's API
    answers in English, and the hosted page translates the same words (``hosted``)."""
    return message


GENERIC_DECLINE = N_("Your card was declined.")
# What the buyer reads on the hosted page (Stripe's wording), by decline code.
DECLINE_MESSAGES = {
    "generic_decline": GENERIC_DECLINE,
    "insufficient_funds": N_("Your card has insufficient funds."),
    "lost_card": GENERIC_DECLINE,
    "stolen_card": GENERIC_DECLINE,
    "expired_card": N_("Your card has expired."),
    "incorrect_cvc": N_("Your card's security code is incorrect."),
    "processing_error": N_("An error occurred while processing your card. Try again in a little bit."),
    "test_mode_live_card": N_(
        "Your card was declined. Your request was in test mode, but used a non test card. "
        "For a list of valid test cards, visit: https://stripe.com/docs/testing."
    ),
}
AUTHENTICATION_FAILED = N_(
    "We are unable to authenticate your payment method. Please choose a different payment method and try again."
)
# Stripe's SEPA Direct Debit test IBANs: the first settles, the second fails.
IBANS = {
    "DE89370400440532013000": "succeeded",
    "AT611904300234573201": "succeeded",
    "DE62370400440532013001": "failed",
    "AT861904300235473202": "failed",
}
BANK_DEBIT_FAILED = "The customer's bank account could not be debited."
# What a refund of a charge does: ``succeed`` at once (most cards), ``pending`` then
# succeeded, or ``fails`` (succeeded, then failed). A bank debit's refund is pending first.
REFUND_BEHAVIOURS = ("succeed", "pending", "fails")
REFUND_FAILURE_REASON = "expired_or_canceled_card"


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        checksum += digit
    return checksum % 10 == 0
