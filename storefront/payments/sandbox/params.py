"""Checks of API request parameters, raising Stripe's errors for what Stripe rejects."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .errors import invalid_request, missing_param, unknown_param
from .money import STRIPE_CURRENCIES


def only(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise unknown_param(name)


def integer(value: Any, param: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
        return int(value)
    raise invalid_request(f"Invalid integer: {value}", param=param)


def limit(params: dict[str, Any]) -> int:
    if params.get("limit") is None:
        return 10
    limit = integer(params["limit"], "limit")
    if not 1 <= limit <= 100:
        raise invalid_request(
            "This value must be greater than or equal to 1 and less than or equal to 100.", param="limit"
        )
    return limit


def created_filter(created: Any, where: list[str], args: list[Any]) -> None:
    if created is None:
        return
    if isinstance(created, dict):
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        for op, value in created.items():
            if op not in ops:
                raise unknown_param(f"created[{op}]")
            where.append(f"created {ops[op]} ?")
            args.append(integer(value, f"created[{op}]"))
    else:
        where.append("created = ?")
        args.append(integer(created, "created"))


def check_url(url: Any, param: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 5000:
        raise invalid_request("Not a valid URL", param=param, code="url_invalid")


def check_email(email: Any, param: str) -> None:
    if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) or len(email) > 800:
        raise invalid_request(f"Invalid email address: {email}", param=param, code="email_invalid")


def metadata(value: Any, param: str) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param=param)
    if len(value) > 50:
        raise invalid_request("You can have up to 50 metadata keys.", param=param)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid_request("Invalid string", param=f"{param}[{key}]")
        if len(key) > 40:
            raise invalid_request("Metadata keys can be up to 40 characters long.", param=f"{param}[{key}]")
        if len(item) > 500:
            raise invalid_request("Metadata values can be up to 500 characters long.", param=f"{param}[{key}]")
        if item != "":  # an empty value unsets the key
            out[key] = item
    return out


def line_items(value: Any) -> list[dict[str, Any]]:
    """Checked line items: ``{name, description, currency, unit_amount, quantity}``."""
    if value is None:
        raise missing_param("line_items")
    if not isinstance(value, list) or not value:
        raise invalid_request("Invalid array", param="line_items")
    if len(value) > 100:
        raise invalid_request("You may only specify up to 100 line items.", param="line_items")
    items = []
    for n, raw in enumerate(value):
        p = f"line_items[{n}]"
        if not isinstance(raw, dict):
            raise invalid_request("Invalid object", param=p)
        for name in raw:
            if name == "price":
                raise invalid_request(
                    "The Stripe sandbox supports only `price_data`, not stored prices.", param=f"{p}[price]"
                )
            if name not in ("price_data", "quantity", "adjustable_quantity"):
                raise unknown_param(f"{p}[{name}]")
        data = raw.get("price_data")
        if not isinstance(data, dict):
            raise invalid_request(
                "You must specify either `price` or `price_data` for each line item.", param=f"{p}[price_data]"
            )
        for name in data:
            if name not in ("currency", "unit_amount", "unit_amount_decimal", "product_data", "tax_behavior"):
                raise unknown_param(f"{p}[price_data][{name}]")
        currency = data.get("currency")
        if currency is None:
            raise missing_param(f"{p}[price_data][currency]")
        if not isinstance(currency, str) or currency.lower() not in STRIPE_CURRENCIES:
            raise invalid_request(
                f"Invalid currency: {currency}. Stripe currently supports these currencies: "
                + ", ".join(sorted(STRIPE_CURRENCIES)),
                param=f"{p}[price_data][currency]",
            )
        currency = currency.lower()
        if data.get("unit_amount") is None:
            raise missing_param(f"{p}[price_data][unit_amount]")
        unit_amount = integer(data["unit_amount"], f"{p}[price_data][unit_amount]")
        if unit_amount < 0:
            raise invalid_request(
                "This value must be greater than or equal to 0.", param=f"{p}[price_data][unit_amount]"
            )
        product = data.get("product_data")
        if not isinstance(product, dict):
            raise missing_param(f"{p}[price_data][product_data]")
        name = product.get("name")
        if not isinstance(name, str) or not name.strip():
            raise missing_param(f"{p}[price_data][product_data][name]")
        if raw.get("quantity") is None:
            raise missing_param(f"{p}[quantity]")
        quantity = integer(raw["quantity"], f"{p}[quantity]")
        if not 1 <= quantity <= 999_999:
            raise invalid_request("This value must be greater than or equal to 1.", param=f"{p}[quantity]")
        if items and currency != items[0]["currency"]:
            raise invalid_request("All line items must have the same currency.", param=f"{p}[price_data][currency]")
        items.append(
            {
                "name": name.strip(),
                "description": product.get("description") if isinstance(product.get("description"), str) else None,
                "currency": currency,
                "unit_amount": unit_amount,
                "quantity": quantity,
            }
        )
    return items
