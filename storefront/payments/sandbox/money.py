"""Amounts in minor units, as Stripe counts them, and how the hosted page shows them."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency

# Stripe's zero-decimal currencies: amounts are whole units (¥100 is 100).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
# Stripe's minimum charge per currency, in minor units; others default to 50.
MINIMUM_CHARGE = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "chf": 50,
    "cad": 50,
    "aud": 50,
    "jpy": 50,
    "dkk": 250,
    "sek": 300,
    "nok": 300,
}


def to_major(amount: int, currency: str) -> Decimal:
    if currency.lower() in ZERO_DECIMAL:
        return Decimal(amount)
    return Decimal(amount) / 100


def format_amount(amount: int, currency: str, locale: str = "en") -> str:
    """``1999, "eur"`` → ``€19.99`` (in ``locale``)."""
    return format_currency(to_major(amount, currency), currency.upper(), locale=locale)


def minimum_charge(currency: str) -> int:
    return MINIMUM_CHARGE.get(currency.lower(), 50)
