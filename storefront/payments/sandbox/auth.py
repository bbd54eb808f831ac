"""``Authorization: Bearer sk_test_…``, checked as Stripe checks it (``curl -u key:`` too)."""

from __future__ import annotations

import base64

from flask import request

from .config import SandboxConfig, looks_live
from .errors import authentication


def authenticate(config: SandboxConfig) -> None:
    """Raise Stripe's 401 unless the request carries a key this sandbox accepts."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise authentication(
            "You did not provide an API key. You need to provide your API key in the Authorization header, "
            "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() == "basic":  # curl -u sk_test_…: works on Stripe too
        try:
            key = base64.b64decode(key).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
        scheme = "bearer"
    masked = (key[:8] + "*" * 8 + key[-4:]) if len(key) > 12 else key
    if scheme.lower() != "bearer" or not key:
        raise authentication("Invalid API Key provided: " + masked)
    if looks_live(key):
        raise authentication("The Stripe sandbox never accepts live keys: use an sk_test_ key.")
    if config.api_key is not None and key != config.api_key:
        raise authentication("Invalid API Key provided: " + masked)
    if config.api_key is None and not key.startswith(("sk_test_", "rk_test_")):
        raise authentication("Invalid API Key provided: " + masked)
