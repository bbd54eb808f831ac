"""Anti-automation limits: one client must not take an event's stock.

The client (``client_key``) is the address the load balancer saw (``request.remote_addr``
once ``storefront.proxies`` applied ``TRUSTED_PROXIES``); an IPv6 client by its /64,
which one household or host is given whole, so that moving within it is no new client.

Each limit is a setting in Flask-Limiter's notation (``"30 per minute"``), counted per
client in a moving window (a refused request adds nothing to its count), in
Flask-Limiter's storage: this process's memory by default (swept every few seconds,
``_SweepingSlowlyMemoryStorage``), Redis with ``REDIS_URL``, so that every process and
host counts together:

* ``LIMIT_ADD_TO_CART``: add-to-cart requests, whatever their outcome (the view);
* ``LIMIT_CHECKOUT``: checkout starts, ``POST /checkout`` (the view);
* ``LIMIT_NEW_CARTS``: carts made for the client (the domain asks, ``Allowance.start_cart``);
* ``LIMIT_TICKETS_PER_EVENT`` tickets over ``HOLD_MINUTES``, per client and event:
  tickets newly held (``Allowance.hold``, from adding and from raising a quantity);
* ``LIMIT_PAYMENT_CHECKS``: success-page polls that ask Stripe (``Allowance.ask_stripe``);
* ``LIMIT_DOOR_SCANS``, ``LIMIT_DOOR_LOOKUPS``, ``LIMIT_DOOR_EXPORTS``: the door's scans,
  searches and counter refreshes, and door-list exports, per member (``check_door``).
* ``LIMIT_COVER_UPLOADS``: cover images uploaded in the back office (the view).
* ``LIMIT_RESEND_MAIL``: confirmations sent again from the back office, per member
  (``check_resend_mail``; each order has its own cap besides, ``order_actions``).
* ``LIMIT_STAFF_ACTIONS``: every other change (POST) a signed-in member makes in the back
  office, per member (``storefront.admin.permissions`` asks, before the view runs).
* ``LIMIT_STAFF_EXPORTS``: an event's CSV exports (orders, attendees, attempts, refunds),
  per member (``check_staff_export``): each one reads a whole event.

The tickets limit stands for "tickets this client holds of this event". A hold lasts
``HOLD_MINUTES`` after the cart's last addition, so counting the tickets taken in the
last ``HOLD_MINUTES`` comes close: it over-counts tickets given back within the window,
and a cart kept alive by a late addition keeps holding tickets whose count has left the
window. With the other limits it bounds what one client can hold at once to about
``LIMIT_TICKETS_PER_EVENT`` tickets, however many carts or requests it uses. The domain
asks only once a change is otherwise sure (stock there, quantities valid), so a buyer
refused "sold out" spends none of it.

A refusal is ``errors.TooManyRequests`` (429), raised inside the change's transaction
(so nothing is kept); the view shows its message in the fragment or the page, and
``Retry-After`` says in how many seconds the window lets the client through again. If
the storage cannot be reached (Redis down), requests go through and a warning is
logged: selling tickets matters more than counting them.

Flask-Limiter keeps its storage on the ``limiter`` object: one app per process in
production; tests make apps one after the other, and each ``init_app`` starts a fresh
storage. The back office's sign-in throttling (``storefront.admin.throttle``) counts
with the same ``limiter`` and ``client_key``. Flask-Limiter's decorators work too
(``@limiter.limit("5 per minute")``, keyed by ``client_key``; they check inside the
view), and their 429 is answered here, with ``Retry-After``. Its request hooks are not
installed: they ran on every request, the event page's included, for about 0.08 ms of
CPU each (a tenth of that page's cost in process) to look for limits the shop does not
declare that way. So default and application-wide limits, ``deduct_when`` and its
``X-RateLimit-*`` headers are not available; declare a limit on the view instead.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import threading
import time

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage

from .allowance import UNLIMITED, Allowance
from .errors import TooManyRequests

log = logging.getLogger(__name__)

SETTINGS = (
    "LIMIT_ADD_TO_CART",
    "LIMIT_CHECKOUT",
    "LIMIT_NEW_CARTS",
    "LIMIT_PAYMENT_CHECKS",
    "LIMIT_DOOR_SCANS",
    "LIMIT_DOOR_LOOKUPS",
    "LIMIT_DOOR_EXPORTS",
    "LIMIT_TICKET_DOWNLOADS",
    "LIMIT_LOST_TICKETS_CLIENT",
    "LIMIT_LOST_TICKETS_ADDRESS",
    "LIMIT_COVER_UPLOADS",
    "LIMIT_RESEND_MAIL",
    "LIMIT_STAFF_ACTIONS",
    "LIMIT_STAFF_EXPORTS",
)
# The door's limits, by kind of request (``check_door``).
_DOOR_SETTINGS = {"scan": "LIMIT_DOOR_SCANS", "lookup": "LIMIT_DOOR_LOOKUPS", "export": "LIMIT_DOOR_EXPORTS"}
# Seconds between two warnings that the storage is unreachable (each request would log one).
_WARN_EVERY = 60.0


def client_key() -> str:
    """The client a request comes from, as the limits count it."""
    address = request.remote_addr or ""
    if ":" not in address:
        return address or "unknown"
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class _SweepingSlowlyMemoryStorage(MemoryStorage):
    """limits' memory storage, sweeping old entries out every few seconds rather than
    every 10 ms: each sweep walks every client's keys, and with the thousands of clients
    of an on-sale minute that cost the process more CPU than its requests did
    (bench/cpu_per_add.py). The counts do not depend on the sweep (an entry is judged
    by its time), only how long old entries take memory. (It overrides a private
    method of limits 5; should that change, the sweep is simply back to 10 ms.)"""

    STORAGE_SCHEME = ["storefront-memory"]
    SWEEP_SECONDS = 5.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.SWEEP_SECONDS, self._MemoryStorage__expire_events)
            self.timer.daemon = True  # never keeps the process from exiting
            self.timer.start()


limiter = Limiter(key_func=client_key, strategy="moving-window", headers_enabled=False, swallow_errors=True)


@functools.lru_cache(maxsize=64)
def _item(text: str) -> RateLimitItem:
    return parse(text)


def _take(item: RateLimitItem, *scope: str, cost: int, what: str, client: str | None = None) -> None:
    """Count ``cost`` against ``item`` for this client (``client_key`` unless named), or
    raise ``TooManyRequests``."""
    _take_for(item, (client or client_key(), *scope), cost=cost, what=what)


def _take_for(item: RateLimitItem, keys: tuple[str, ...], *, cost: int = 1, what: str) -> None:
    """Count ``cost`` against ``item`` under ``keys``, or raise ``TooManyRequests``."""
    strategy = limiter.limiter
    try:
        if strategy.hit(item, *keys, cost=cost):
            return
        reset, _ = strategy.get_window_stats(item, *keys)
    except StorageError as error:
        now, state = time.monotonic(), current_app.extensions["storefront.limits"]
        if now - state["warned_at"] > _WARN_EVERY:
            state["warned_at"] = now
            log.warning("rate limit storage unreachable, letting requests through: %s", error)
        return
    retry_after = max(1, math.ceil(reset - time.time()))
    g.retry_after = retry_after
    raise TooManyRequests(what, retry_after, item.amount)


def _enabled() -> bool:
    return bool(current_app.config["RATELIMIT_ENABLED"])


def check_add_to_cart() -> None:
    """One more add-to-cart request from this client, or ``TooManyRequests``."""
    if _enabled():
        _take(_item(current_app.config["LIMIT_ADD_TO_CART"]), "add-to-cart", cost=1, what=TooManyRequests.REQUESTS)


def check_checkout() -> None:
    """One more checkout start from this client, or ``TooManyRequests``."""
    if _enabled():
        _take(_item(current_app.config["LIMIT_CHECKOUT"]), "checkout", cost=1, what=TooManyRequests.REQUESTS)


def check_door(kind: str, user_id: int) -> None:
    """One more door request of ``kind`` (``"scan"``, ``"lookup"``: search and counters,
    ``"export"``: the door list) by this member, or ``TooManyRequests``. Counted per
    member, not per address: a venue's phones often share one address."""
    if _enabled():
        item = _item(current_app.config[_DOOR_SETTINGS[kind]])
        _take(item, f"door-{kind}", cost=1, what=TooManyRequests.DOOR, client=f"member:{user_id}")


def check_staff_action(user_id: int) -> None:
    """One more change (a POST) made in the back office by this member, or ``TooManyRequests``."""
    if _enabled():
        item = _item(current_app.config["LIMIT_STAFF_ACTIONS"])
        _take(item, "staff-action", cost=1, what=TooManyRequests.REQUESTS, client=f"member:{user_id}")


def check_staff_export(user_id: int) -> None:
    """One more CSV export of an event by this member, or ``TooManyRequests``. Per member,
    like the door's: an office's staff often share one address."""
    if _enabled():
        item = _item(current_app.config["LIMIT_STAFF_EXPORTS"])
        _take(item, "staff-export", cost=1, what=TooManyRequests.REQUESTS, client=f"member:{user_id}")


def check_ticket_download() -> None:
    """One more download of an order's PDF or calendar file from this client, or ``TooManyRequests``."""
    if _enabled():
        _take(
            _item(current_app.config["LIMIT_TICKET_DOWNLOADS"]),
            "ticket-download",
            cost=1,
            what=TooManyRequests.REQUESTS,
        )


def check_lost_tickets(address: str) -> None:
    """One more "lost your tickets?" mail asked for, by this client and for this address
    (as normalised by the caller), or ``TooManyRequests``. The address's count is taken
    only once the client's allowed it, so a refused client spends none of it."""
    if not _enabled():
        return
    config = current_app.config
    _take(_item(config["LIMIT_LOST_TICKETS_CLIENT"]), "lost-tickets", cost=1, what=TooManyRequests.LOST_TICKETS)
    _take_for(
        _item(config["LIMIT_LOST_TICKETS_ADDRESS"]),
        ("lost-tickets-address", address),
        what=TooManyRequests.LOST_TICKETS,
    )


def check_cover_upload() -> None:
    """One more cover image uploaded from this client (back office), or ``TooManyRequests``."""
    if _enabled():
        _take(_item(current_app.config["LIMIT_COVER_UPLOADS"]), "cover-upload", cost=1, what=TooManyRequests.REQUESTS)


def check_resend_mail(user_id: int) -> None:
    """One more confirmation sent again by this member (back office), or ``TooManyRequests``."""
    if _enabled():
        item = _item(current_app.config["LIMIT_RESEND_MAIL"])
        _take(item, "resend-mail", cost=1, what=TooManyRequests.RESEND_MEMBER, client=f"member:{user_id}")


class _ClientAllowance:
    """The ``Allowance`` of the client of the current request."""

    def start_cart(self) -> None:
        _take(_item(current_app.config["LIMIT_NEW_CARTS"]), "new-cart", cost=1, what=TooManyRequests.NEW_CARTS)

    def hold(self, event_id: int, tickets: int) -> None:
        config = current_app.config
        item = _item(f"{config['LIMIT_TICKETS_PER_EVENT']} per {config['HOLD_MINUTES']} minutes")
        _take(item, "tickets", f"event{event_id}", cost=tickets, what=TooManyRequests.TICKETS)

    def ask_stripe(self) -> None:
        item = _item(current_app.config["LIMIT_PAYMENT_CHECKS"])
        _take(item, "payment-check", cost=1, what=TooManyRequests.PAYMENT_CHECKS)


_CLIENT = _ClientAllowance()


def for_client() -> Allowance:
    """What the client of the current request may still take (everything, with the
    limits turned off)."""
    return _CLIENT if _enabled() else UNLIMITED


def _with_retry_after(response):
    if response.status_code == 429 and "retry_after" in g:
        response.headers["Retry-After"] = str(g.retry_after)
    return response


def _decorator_limit_reached(error: RateLimitExceeded):
    from . import errors_http

    current = limiter.current_limit
    response = errors_http.error_answer(429, "too_many")
    retry_after = max(1, math.ceil(current.window.reset_time - time.time())) if current is not None else 60
    response.headers["Retry-After"] = str(retry_after)
    return response


def init_app(app: Flask) -> None:
    """Check every limit setting (a typo fails at start, saying which), choose the
    storage (Redis with ``REDIS_URL``, else memory) and bind the limiter."""
    config = app.config
    for setting in SETTINGS:
        try:
            parse(config[setting])
        except ValueError:
            raise RuntimeError(f"{setting} must be a limit such as '30 per minute', got {config[setting]!r}") from None
    if not isinstance(config["LIMIT_TICKETS_PER_EVENT"], int) or config["LIMIT_TICKETS_PER_EVENT"] < 1:
        raise RuntimeError(
            f"LIMIT_TICKETS_PER_EVENT must be a whole number of tickets, got {config['LIMIT_TICKETS_PER_EVENT']!r}"
        )
    if config["REDIS_URL"]:
        config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"]
        config["RATELIMIT_STORAGE_OPTIONS"] = {
            "key_prefix": f"{config['REDIS_KEY_PREFIX']}:limits",
            "wrap_exceptions": True,
            # A Redis that hangs costs each request at most this, then it goes through.
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
        }
    else:
        config["RATELIMIT_STORAGE_URI"] = "storefront-memory://"
        config["RATELIMIT_STORAGE_OPTIONS"] = {"wrap_exceptions": True}
    # Flask-Limiter installs its hooks only on an app it has not seen; marked as seen,
    # it installs none (see the module docstring).
    app.extensions.setdefault("limiter", set()).add(limiter)
    limiter.init_app(app)
    app.extensions["storefront.limits"] = {"warned_at": -_WARN_EVERY}
    app.after_request(_with_retry_after)
    app.register_error_handler(RateLimitExceeded, _decorator_limit_reached)
