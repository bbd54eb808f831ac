"""What one client may still take: the domain asks, ``storefront.limits`` answers.

Domain code knows nothing of clients or requests. Where it is about to do something
one client must not do without bound on a buyer's behalf (start a cart, hold more
tickets of an event, ask Stripe about a payment), it asks the allowance it was given,
which refuses by raising ``errors.TooManyRequests`` (inside the domain's transaction,
so nothing of the change is kept). Callers acting for no client (commands, jobs,
tests of the domain itself) pass ``UNLIMITED``.
"""

from __future__ import annotations

from typing import Protocol


class Allowance(Protocol):
    def start_cart(self) -> None:
        """A new cart is about to be made for this client."""

    def hold(self, event_id: int, tickets: int) -> None:
        """``tickets`` more tickets of this event are about to be held for this client."""

    def ask_stripe(self) -> None:
        """Stripe is about to be asked about this client's payment."""


class _Unlimited:
    def start_cart(self) -> None:
        pass

    def hold(self, event_id: int, tickets: int) -> None:
        pass

    def ask_stripe(self) -> None:
        pass


UNLIMITED: Allowance = _Unlimited()
