"""The words the back office uses for a failed payment, for what the sandbox really sends."""

from __future__ import annotations

import pytest

from storefront.failure_reasons import Reason, explain
from storefront.payments.sandbox.cards import CARDS


@pytest.mark.parametrize(
    ("code", "decline_code", "reason", "words"),
    [
        ("card_declined", "insufficient_funds", Reason.INSUFFICIENT_FUNDS, "Card declined: insufficient funds"),
        ("expired_card", "expired_card", Reason.EXPIRED_CARD, "Card declined: the card has expired"),
        ("card_declined", "stolen_card", Reason.LOST_OR_STOLEN, "Card declined: the card was reported stolen"),
        ("payment_intent_authentication_failure", None, Reason.AUTHENTICATION_FAILED, "3-D Secure failed"),
        ("payment_method_provider_decline", None, Reason.BANK_DEBIT_FAILED, "Bank debit failed"),
        ("card_declined", "some_new_code", Reason.CARD_DECLINED, "Card declined (some_new_code)"),
    ],
)
def test_a_failure_reads_as_words_and_counts_under_its_reason(code, decline_code, reason, words):
    failure = explain(code, decline_code)
    assert failure.reason == reason
    assert failure.words.startswith(words)
    assert (failure.code, failure.decline_code) == (code, decline_code)


def test_an_unknown_code_shows_stripes_message_and_no_failure_is_none():
    assert explain("brand_new_error", None, "Something Stripe says").words == "Something Stripe says"
    assert explain("brand_new_error", None).words == "Stripe reported brand_new_error"
    assert explain(None, None) is None


def test_every_decline_of_the_sandbox_cards_has_words_of_its_own():
    declines = [card for card in CARDS.values() if card["outcome"] == "decline"]
    assert declines
    for card in declines:
        failure = explain(card["code"], card["decline_code"])
        assert failure.reason != Reason.OTHER, card
        assert failure.words != f"Card declined ({card['decline_code']})", f"no words for {card['decline_code']}"
