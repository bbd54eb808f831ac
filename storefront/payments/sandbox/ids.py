"""Stripe-looking identifiers: a prefix and random base-62 characters."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    """``length`` random base-62 characters."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """An id such as ``pi_3Pq…`` (Stripe's prefixes: cs_test, pi, ch, re, evt, req, li, price, prod, pm)."""
    return f"{prefix}_{random_token(length)}"


def new_session_id() -> str:
    """A test-mode Checkout Session id; Stripe's are long (``cs_test_a1…``, 58 characters after the prefix)."""
    return "cs_test_" + random_token(58)
