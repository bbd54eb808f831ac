"""storefront.money: Stripe's minor units, checked against Stripe's own documentation
(docs.stripe.com/currencies), ISO 4217 where Stripe departs from it, and Babel."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import get_currency_precision, list_currencies

from storefront import money
from storefront.errors import InvalidAmount, UnsupportedCurrency
from storefront.extensions import db
from storefront.models import Event

from .factories import make_event

ROOT = Path(__file__).resolve().parent.parent

# As Stripe's page lists them, UGX included: the module must not take that list at its word.
STRIPE_DOC_ZERO_DECIMAL = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".lower().split()
STRIPE_DOC_THREE_DECIMAL = "BHD JOD KWD OMR TND".lower().split()
# "Special cases": ISK and UGX are sent with two decimals that must be 00.
STRIPE_DOC_TWO_DECIMALS_WHOLE_UNITS = ["isk", "ugx"]


def stripe_documented_decimals(code: str) -> int:
    if code in STRIPE_DOC_TWO_DECIMALS_WHOLE_UNITS:
        return 2
    if code in STRIPE_DOC_ZERO_DECIMAL:
        return 0
    if code in STRIPE_DOC_THREE_DECIMAL:
        return 3
    return 2


def test_every_stripe_currency_has_the_decimals_stripe_documents():
    assert len(money.STRIPE_CURRENCIES) >= 135  # "more than 135 currencies"
    assert {"eur", "usd", "gbp", "jpy", "krw", "isk", "ugx", "huf", "twd", "kwd"} <= money.STRIPE_CURRENCIES
    for code in money.STRIPE_CURRENCIES:
        assert money.decimals(code) == stripe_documented_decimals(code), code
        assert money.decimals(code.upper()) == money.decimals(code)


def test_where_stripe_departs_from_iso_4217():
    # ISO 4217: ISK and UGX have no minor unit, MGA has 2; Stripe counts them otherwise.
    assert (money.decimals("isk"), money.step("isk")) == (2, 100)
    assert (money.decimals("ugx"), money.step("ugx")) == (2, 100)
    assert money.decimals("mga") == 0
    # HUF and TWD: whole units only for Stripe's payouts; charges keep ISO's two decimals.
    assert (money.decimals("huf"), money.step("huf")) == (2, 1)
    assert (money.decimals("twd"), money.step("twd")) == (2, 1)
    assert (money.decimals("kwd"), money.step("kwd")) == (3, 10)


def test_the_currencies_babel_shows_with_fewer_decimals_are_exactly_those_listed():
    known = list_currencies()
    fewer = set()
    for code in money.STRIPE_CURRENCIES:
        assert code.upper() in known, f"Babel does not know {code}"
        babel = get_currency_precision(code.upper())
        assert babel <= money.decimals(code), code  # Babel never shows more than Stripe counts
        if babel < money.decimals(code):
            fewer.add(code)
    assert fewer == money.BABEL_SHOWS_FEWER_DECIMALS


@pytest.mark.parametrize(
    "amount, currency, locale, shown",
    [
        (2500, "eur", "en", "€25.00"),
        (2500, "EUR", "fr", "25,00\xa0€"),
        (4550, "usd", "en", "$45.50"),
        (1800, "gbp", "en", "£18.00"),
        (12000, "jpy", "en", "¥12,000"),
        (12000, "JPY", "fr", "12\u202f000\xa0JPY"),
        (50000, "krw", "en", "₩50,000"),
        (500, "isk", "en", "ISK5"),
        (500, "ugx", "en", "UGX5"),
        (5120, "kwd", "en", "KWD5.120"),
        (1045, "huf", "en", "HUF10.45"),  # Babel alone would round it to HUF10
        (1000, "huf", "en", "HUF10"),
        (0, "eur", "en", "€0.00"),
    ],
)
def test_format_amount_shows_what_stripe_charges(amount, currency, locale, shown):
    assert money.format_amount(amount, currency, locale) == shown


@pytest.mark.parametrize(
    "major, currency, minor",
    [
        ("25.00", "eur", 2500),
        ("25", "EUR", 2500),
        (Decimal("0.5"), "usd", 50),
        ("12000", "jpy", 12000),
        (12000, "JPY", 12000),
        ("5", "isk", 500),
        ("5.12", "kwd", 5120),
        ("10.45", "huf", 1045),
        ("0", "jpy", 0),
    ],
)
def test_to_minor_and_back(major, currency, minor):
    assert money.to_minor(major, currency) == minor
    assert money.to_major(minor, currency) == Decimal(str(major))


@pytest.mark.parametrize(
    "major, currency",
    [
        ("0.5", "jpy"),
        ("10.50", "isk"),
        ("5.125", "kwd"),
        ("0.001", "eur"),
        ("-1", "eur"),
        ("abc", "eur"),
        ("NaN", "eur"),
    ],
)
def test_to_minor_never_rounds_or_takes_what_stripe_cannot_charge(major, currency):
    with pytest.raises(InvalidAmount):
        money.to_minor(major, currency)


@pytest.mark.parametrize("amount, currency", [(150, "isk"), (5125, "kwd"), (-1, "eur"), (True, "eur"), (1.5, "eur")])
def test_check_price_refuses(amount, currency):
    with pytest.raises(InvalidAmount):
        money.check_price(amount, currency)


def test_minimum_charges():
    assert (money.minimum_charge("EUR"), money.minimum_charge("gbp"), money.minimum_charge("jpy")) == (50, 30, 50)
    assert money.minimum_charge("huf") == 17500  # HUF 175.00
    assert money.minimum_charge("krw") == money.DEFAULT_MINIMUM_CHARGE


@pytest.mark.parametrize("code, normalised", [("jpy", "JPY"), ("EUR", "EUR"), (" gbp ", "GBP"), ("Isk", "ISK")])
def test_stripe_currency_accepts_stripes_currencies(code, normalised):
    assert money.stripe_currency(code) == normalised


@pytest.mark.parametrize("code", ["XYZ", "EURO", "", None, "BTC", "ZWL", 978])
def test_stripe_currency_refuses_others(code):
    with pytest.raises(UnsupportedCurrency):
        money.stripe_currency(code)


def test_an_event_is_made_only_in_a_currency_stripe_accepts(app):
    assert Event(currency="jpy").currency == "JPY"
    with pytest.raises(UnsupportedCurrency) as refused:
        make_event(currency="XBT")
    assert refused.value.message() == "Payments in XBT are not possible: Stripe does not accept this currency."
    db.session.rollback()
    assert db.session.execute(db.select(db.func.count(Event.id))).scalar_one() == 0


_SCALING = re.compile(r"[*/]\s*100\b|\b100\s*[*/]|scaleb|Decimal\(")


def test_nothing_but_the_money_module_scales_amounts():
    """No other module (templates included) divides or multiplies by 100 or builds
    decimal amounts: money.py alone converts."""
    offenders = []
    for path in [*(ROOT / "storefront").rglob("*.py"), *(ROOT / "templates").rglob("*.*")]:
        if path == ROOT / "storefront" / "money.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _SCALING.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
