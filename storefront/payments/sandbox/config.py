"""How one sandbox instance is set up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class LiveKeyError(RuntimeError):
    """A live Stripe key was offered to a test-only tool."""


# Secret and restricted keys that would move real money.
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


def looks_live(key: str | None) -> bool:
    """True for keys that would move real money (``LIVE_KEY_PREFIXES``)."""
    return bool(key) and key.startswith(LIVE_KEY_PREFIXES)


def refuse_live_key(key: str | None, where: str) -> None:
    if looks_live(key):
        raise LiveKeyError(
            f"{where} looks like a live Stripe key ({key[:8]}…). The Stripe sandbox is a test "
            "tool and never runs with live keys: use an sk_test_ key, or unset it to use the sandbox."
        )


@dataclass
class SandboxConfig:
    """Settings of one sandbox; the defaults suit the in-process demo.

    ``api_key``: the only key accepted (``None``: any ``sk_test_``/``rk_test_`` key).
    ``webhook_urls``: where events are delivered, each signed with ``webhook_secret``.
    ``retry_base_seconds`` × 2ⁿ is the wait before retry n+1, up to ``max_attempts`` tries.
    ``public_url``: the sandbox's address as browsers see it (the hosted page's ``url``);
    ``None`` takes it from each API request.
    ``bank_debit_settle_seconds``: a bank debit settles by itself after this long
    (``None``: only when told through the control API); ``refund_settle_seconds`` the
    same for a refund that settles later (see ``refunds``).
    """

    db_path: str
    api_key: str | None = None
    webhook_urls: list[str] = field(default_factory=list)
    # The event types delivered to endpoints (Stripe's "enabled_events"); empty: all.
    # Every event is recorded and listed all the same.
    webhook_events: list[str] = field(default_factory=list)
    webhook_secret: str = "whsec_sandbox"
    retry_base_seconds: float = 5.0
    max_attempts: int = 6
    delivery_timeout_seconds: float = 10.0
    # Deliveries sent at once. Stripe sends concurrently and in no guaranteed order; 1
    # keeps the order of events as they were made, which the sandbox's own tests use.
    delivery_concurrency: int = 1
    tick_seconds: float = 1.0
    bank_debit_settle_seconds: float | None = 10.0
    refund_settle_seconds: float | None = 10.0
    public_url: str | None = None
    start_background: bool = True

    def __post_init__(self) -> None:
        refuse_live_key(self.api_key, "The sandbox's API key")
        refuse_live_key(os.environ.get("STRIPE_SECRET_KEY"), "STRIPE_SECRET_KEY")
        if not 1 <= self.delivery_concurrency <= 64:
            raise ValueError("delivery_concurrency must be 1..64")
        if not self.webhook_secret.startswith("whsec_"):
            raise ValueError("webhook_secret must start with whsec_")
