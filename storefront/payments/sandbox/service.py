"""What the sandbox does, apart from HTTP: one ``Sandbox`` made of its parts, each with
one job: ``sessions`` (Checkout Sessions and their expiry), ``payments`` (the buyer pays;
PaymentIntents, charges, bank debits), ``refunds``, and ``events`` (recorded, listed and
scheduled for delivery).

Every change is one transaction on the sandbox's SQLite file (``Store.write``) and
emits its events in that same transaction, so an event exists exactly when the change
it describes does. Deliveries of those events are rows too; ``webhooks.Deliverer``
sends them.

Times are Unix seconds (UTC); money is integer minor units, as on Stripe.
"""

from __future__ import annotations

import threading
import time

from .config import SandboxConfig
from .events import Events
from .payments import Payments
from .refunds import Refunds
from .sessions import Sessions
from .store import Store


class Sandbox:
    """One sandbox: its configuration, its SQLite state, and its parts."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.wake = threading.Event()  # set when a delivery may be due
        self.events = Events(self.store, config, self.wake)
        self.payments = Payments(self.store, self.events, config)
        self.sessions = Sessions(self.store, self.events, self.payments)
        self.refunds = Refunds(self.store, self.events, config)
        with self.store.write() as tx:
            # Deliveries a crash interrupted mid-send are sent again (at least once).
            tx.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")
            # A key whose request died with a process would answer 409 forever; free it. (Not
            # the last minute's: another process on this file may still be running those.)
            tx.execute("DELETE FROM idempotency WHERE state = 'running' AND created < ?", (time.time() - 60,))

    def sweep(self) -> dict[str, list[str]]:
        """Expire open sessions past ``expires_at``; settle bank debits and refunds that are due."""
        return {
            "expired": self.sessions.expire_lapsed(),
            "settled": self.payments.settle_due(),
            "refunds_settled": self.refunds.settle_due(),
        }
