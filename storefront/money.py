"""Money: an integer in the currency's minor unit *as Stripe counts it*.

€25.00 is ``2500`` in ``eur``; ¥12,000 is ``12000`` in ``jpy``; 5.120 KWD is ``5120``.
This module alone turns such integers into decimal amounts and back, and formats
them; every page, mail, checkout line and sandbox page goes through it, so what a
buyer reads is what Stripe charges. It also knows which currencies Stripe accepts for
a charge, the smallest step a charge can take in each, and Stripe's minimum charge.

Sources: docs.stripe.com/currencies ("Supported presentment currencies", "Zero-decimal
currencies", "Three-decimal currencies", "Special cases", "Minimum and maximum charge
amounts"). Where Stripe's count differs from ISO 4217 or from Babel:

* Stripe's exponent differs from ISO 4217's minor unit for **ISK** and **UGX** (ISO:
  0 decimals; Stripe: 2, kept for backwards compatibility, and the hundredths must be 00,
  so ISK 5 is ``500``) and for **MGA** (ISO: 2; Stripe: zero-decimal, MGA 5 is ``5``).
  Stripe still lists UGX among its zero-decimal currencies, but its special cases say
  to send it with two decimals, and a charge of ``100`` is taken as USh 1.00.
* **HUF** and **TWD** are two-decimal for charges (only Stripe's payouts are in
  whole units), as in ISO 4217.
* Three-decimal currencies (BHD, JOD, KWD, OMR, TND) must end in 0.
* Babel formats with CLDR's digits, which are fewer than Stripe's for some currencies
  (``BABEL_SHOWS_FEWER_DECIMALS``: HUF, IDR, COP… are shown in whole units). The
  formatter never rounds an amount away to fit: HUF 10.45 reads "HUF10.45".
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency

from .errors import InvalidAmount, UnsupportedCurrency

# The currencies Stripe accepts for a charge (lower case, as the API wants them).
STRIPE_CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd
    cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd
    hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad
    mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln
    pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs
    uah ugx uyu uzs vnd vuv wst xaf xcd xcg xof xpf yer zar zmw
    """.split()
)
# Counted in whole units: ¥500 is 500. Stripe's list, less UGX (see the docstring).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf vnd vuv xaf xof xpf".split())
# Counted in thousandths, the last digit 0: 5.120 KWD is 5120.
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
# Counted in hundredths, but only whole units may be charged: ISK 5 is 500.
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"isk", "ugx"})
# Where Babel (CLDR) shows fewer decimals than Stripe counts; format_amount copes.
BABEL_SHOWS_FEWER_DECIMALS = frozenset("afn all cop huf idr isk lak lbp mmk sos std ugx yer".split())

# Stripe's minimum charge, in minor units, where Stripe states one per currency. For
# the others Stripe converts to the account's settlement currency (at least about
# US$0.50); without an exchange rate, 50 minor units is the floor we can state.
MINIMUM_CHARGE = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
DEFAULT_MINIMUM_CHARGE = 50


def decimals(currency: str) -> int:
    """How many decimals Stripe's integer amounts carry in ``currency``: 0, 2 or 3."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def step(currency: str) -> int:
    """The smallest difference between two amounts Stripe will charge, in minor units."""
    code = currency.lower()
    if code in WHOLE_UNITS_IN_HUNDREDTHS:
        return 100
    if code in THREE_DECIMAL:
        return 10
    return 1


def to_major(amount_minor: int, currency: str) -> Decimal:
    """``2500, "eur"`` → ``Decimal("25.00")``; ``12000, "jpy"`` → ``Decimal("12000")``."""
    return Decimal(amount_minor).scaleb(-decimals(currency))


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """A decimal amount in ``currency`` as Stripe's integer: ``"25.00", "eur"`` → 2500,
    ``"12000", "jpy"`` → 12000. Raises ``InvalidAmount`` for a negative amount, or one
    finer than the currency can be charged (¥0.5, ISK 10.50, 5.125 KWD): never rounds."""
    try:
        value = Decimal(str(amount).strip()) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise InvalidAmount(currency) from None
    if not value.is_finite():
        raise InvalidAmount(currency)
    minor = value.scaleb(decimals(currency))
    if minor != minor.to_integral_value():
        raise InvalidAmount(currency)
    return check_price(int(minor), currency)


def check_price(amount_minor: int, currency: str) -> int:
    """``amount_minor`` if Stripe can charge it in ``currency`` (a whole number of minor
    units, not negative, in the currency's ``step``); else ``InvalidAmount``."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        raise InvalidAmount(currency)
    if amount_minor % step(currency):
        raise InvalidAmount(currency)
    return amount_minor


def format_amount(amount_minor: int, currency: str, locale="en") -> str:
    """``2500, "eur"`` → "€25.00" (``locale`` "en") or "25,00 €" ("fr"); ``12000, "jpy"`` → "¥12,000"."""
    # decimal_quantization=False: Babel would otherwise round to CLDR's digits
    # (BABEL_SHOWS_FEWER_DECIMALS) and show an amount other than the one charged.
    return format_currency(
        to_major(amount_minor, currency), currency.upper(), locale=locale, decimal_quantization=False
    )


def minimum_charge(currency: str) -> int:
    """Stripe's smallest total for one payment in ``currency``, in minor units."""
    return MINIMUM_CHARGE.get(currency.lower(), DEFAULT_MINIMUM_CHARGE)


def stripe_currency(code: str | None) -> str:
    """``code`` as an event's currency (upper-case ISO 4217) if Stripe accepts it for a
    charge; else ``UnsupportedCurrency``. Every event is created through this check."""
    if not isinstance(code, str) or code.strip().lower() not in STRIPE_CURRENCIES:
        raise UnsupportedCurrency(code if isinstance(code, str) else "")
    return code.strip().upper()
