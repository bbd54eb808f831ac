"""The one module that imports ``stripe``: a thin gateway over Stripe's API.

Three ways to reach "Stripe", chosen by configuration (``storefront/config.py``):

* ``STRIPE_SECRET_KEY`` set, ``STRIPE_API_BASE`` unset: the real Stripe.
* ``STRIPE_SECRET_KEY`` and ``STRIPE_API_BASE`` set: whatever serves that address,
  usually the Stripe sandbox run as its own process (tests, benchmarks).
* neither set, in demo mode only (``STOREFRONT_DEMO=1``): the built-in sandbox, mounted
  in this app under ``/_sandbox/stripe`` with a generated ``sk_test_`` key and ``whsec_``
  secret. API calls then go straight to the sandbox's WSGI app (``SandboxTransport``), so
  the storefront needs no port of its own to talk to it, and the hosted page is served
  from the storefront's public address (``PUBLIC_BASE_URL``).

Without a key and outside demo mode the app refuses to start (``ConfigurationError``),
as it does with a key but no ``STRIPE_WEBHOOK_SECRET``. A live key (``sk_live_``/
``rk_live_``) is refused anywhere but the real Stripe, and in demo mode.
Callers catch the exceptions re-exported here and never import ``stripe`` themselves.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import stripe
from flask import Flask, current_app
from werkzeug.datastructures import Headers
from werkzeug.test import Client

from .. import parsing
from ..config import SANDBOX_CREDENTIALS, ConfigurationError, sandbox_credential
from .sandbox.config import LiveKeyError, SandboxConfig, looks_live, refuse_live_key

# What callers catch (so that only this module imports stripe).
StripeError = stripe.StripeError
CardError = stripe.CardError
InvalidRequestError = stripe.InvalidRequestError
IdempotencyError = stripe.IdempotencyError
AuthenticationError = stripe.AuthenticationError
APIError = stripe.APIError
APIConnectionError = stripe.APIConnectionError
SignatureVerificationError = stripe.SignatureVerificationError

SANDBOX_PREFIX = "/_sandbox/stripe"
# The base URL the library is given for the in-process sandbox; SandboxTransport
# replaces the origin with the storefront's public address.
IN_PROCESS_BASE = "http://127.0.0.1" + SANDBOX_PREFIX
NETWORK_RETRIES = 2  # StripeClient retries nothing unless told (FACTS.md §0.7)

NOT_CONFIGURED = (
    "No payments are configured. For real payments set STRIPE_SECRET_KEY (your Stripe secret key) and "
    "STRIPE_WEBHOOK_SECRET (the whsec_ signing secret of your webhook endpoint at Stripe). For the demo, "
    "with the built-in Stripe sandbox and no real payments, set STOREFRONT_DEMO=1 (bin/demo does)."
)
NO_WEBHOOK_SECRET = (
    "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: set it to the whsec_ signing secret of your "
    "webhook endpoint, or no payment's webhook can be verified."
)


class Gateway:
    """Stripe calls the storefront makes; each returns the library's objects."""

    def __init__(
        self,
        secret_key: str,
        *,
        webhook_secret: str | None,
        api_base: str | None = None,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = NETWORK_RETRIES,
    ) -> None:
        if looks_live(secret_key) and api_base not in (None, stripe.DEFAULT_API_BASE):
            raise LiveKeyError(
                f"STRIPE_API_BASE is {api_base!r} but STRIPE_SECRET_KEY is a live key: a live key only ever "
                "goes to Stripe."
            )
        self.webhook_secret = webhook_secret
        # Real money moves only with a live key, and a live key only ever reaches Stripe.
        self.live = looks_live(secret_key)
        options: dict[str, Any] = {"max_network_retries": max_network_retries}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        if http_client is not None:
            options["http_client"] = http_client
        self.client = stripe.StripeClient(secret_key, **options)

    # --- Checkout Sessions ----------------------------------------------------------

    def create_checkout_session(self, params: Mapping[str, Any], *, idempotency_key: str | None = None):
        return self.client.v1.checkout.sessions.create(params=dict(params), options=_options(idempotency_key))

    def retrieve_checkout_session(self, session_id: str, *, expand: Iterable[str] = ()):
        return self.client.v1.checkout.sessions.retrieve(session_id, params=_expand(expand))

    def list_checkout_sessions(self, **params: Any):
        return self.client.v1.checkout.sessions.list(params=params)

    def expire_checkout_session(self, session_id: str, *, idempotency_key: str | None = None):
        return self.client.v1.checkout.sessions.expire(session_id, options=_options(idempotency_key))

    # --- PaymentIntents and refunds --------------------------------------------------

    def retrieve_payment_intent(self, payment_intent_id: str, *, expand: Iterable[str] = ()):
        return self.client.v1.payment_intents.retrieve(payment_intent_id, params=_expand(expand))

    def create_refund(
        self,
        payment_intent_id: str,
        *,
        amount: int | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ):
        """Refund ``amount`` (minor units; all that remains when None) of a PaymentIntent."""
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        if reason is not None:
            params["reason"] = reason
        if metadata:
            params["metadata"] = dict(metadata)
        return self.client.v1.refunds.create(params=params, options=_options(idempotency_key))

    def list_refunds(self, **params: Any):
        return self.client.v1.refunds.list(params=params)

    def list_events(self, **params: Any):
        return self.client.v1.events.list(params=params)

    # --- webhooks ---------------------------------------------------------------------

    def construct_event(self, payload: bytes | str, sig_header: str | None, *, now: float | None = None):
        """The verified event.

        Raises ``SignatureVerificationError`` for a missing, bad, stale or future
        signature (stripe's library refuses only the stale ones: a timestamp more than
        ``WEBHOOK_TOLERANCE`` seconds ahead is refused here), and ``MalformedEvent``
        for a signed payload that is not a Stripe event (not JSON, not an object, no
        ``id``/``type``/``data.object``).
        """
        if not self.webhook_secret:
            raise SignatureVerificationError("No STRIPE_WEBHOOK_SECRET configured", sig_header)
        if isinstance(payload, bytes | bytearray):
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise SignatureVerificationError("The payload is not UTF-8", sig_header) from None
        stripe.WebhookSignature.verify_header(payload, sig_header or "", self.webhook_secret, WEBHOOK_TOLERANCE)
        if _signed_at(sig_header or "") > (time.time() if now is None else now) + WEBHOOK_TOLERANCE:
            raise SignatureVerificationError("Timestamp in the future, outside the tolerance zone", sig_header)
        try:
            values = json.loads(payload)
        except (ValueError, RecursionError):
            raise MalformedEvent("not JSON (or nested beyond what the parser takes)") from None
        _check_event_envelope(values)
        try:
            return stripe.Event.construct_from(values, None)
        except Exception as error:  # whatever the library cannot build from it is no event of Stripe's
            raise MalformedEvent(f"not buildable as an event: {type(error).__name__}") from error


class MalformedEvent(ValueError):
    """A correctly signed webhook payload that is not a Stripe event."""


# Stripe's own default: how far a signature's timestamp may be from now, either way.
WEBHOOK_TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE
_EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
# Stripe's objects nest a handful of levels (an event, its object, an expanded charge…).
MAX_EVENT_DEPTH = 32


def _signed_at(sig_header: str) -> int:
    """The ``t=`` of a header ``verify_header`` accepted (so there is exactly one valid one)."""
    for item in sig_header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise SignatureVerificationError("No timestamp in the signature header", sig_header)


def _check_event_envelope(values: Any) -> None:
    """What every handler relies on: an object with an ``evt_`` id, a dotted type, and
    ``data.object`` an object with an id; nested no deeper than Stripe's objects are,
    and no NUL anywhere (PostgreSQL text cannot hold one, and Stripe never sends one)."""
    if not isinstance(values, dict):
        raise MalformedEvent(f"a JSON {type(values).__name__}, not an object")
    if parsing.stripe_id(values.get("id"), "evt_") is None:
        raise MalformedEvent("no evt_ id")
    kind = values.get("type")
    if not isinstance(kind, str) or len(kind) > 100 or not _EVENT_TYPE.fullmatch(kind):
        raise MalformedEvent("no type")
    data = values.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedEvent("no data.object")
    if not isinstance(data["object"].get("id"), str):
        raise MalformedEvent("data.object has no id")
    # Walked without recursion: a deep payload must not exhaust the stack.
    pending: list[tuple[Any, int]] = [(values, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_EVENT_DEPTH:
            raise MalformedEvent("nested too deep")
        if isinstance(value, str):
            if "\x00" in value:
                raise MalformedEvent("a NUL character")
        elif isinstance(value, dict):
            pending.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def _options(idempotency_key: str | None) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _expand(expand: Iterable[str]) -> dict[str, Any]:
    expand = list(expand)
    return {"expand": expand} if expand else {}


# --- the in-process sandbox ---------------------------------------------------------------


class LazySandbox:
    """The mounted sandbox app, built on first use (most requests never touch it)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from .sandbox import create_sandbox_app

                    self._app = create_sandbox_app(self.config)
        return self._app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)

    def stop(self) -> None:
        if self._app is not None:
            self._app.extensions["stripe_sandbox_deliverer"].stop()


class SandboxTransport(stripe.HTTPClient):
    """stripe's HTTP client interface, answered by the in-process sandbox's WSGI app.

    The sandbox sees the storefront's public address (``PUBLIC_BASE_URL``, read at each
    call), so the Checkout Session's ``url`` points the buyer's browser at the mounted
    hosted page there, whatever Host header the request that made the session carried.
    """

    name = "storefront-sandbox"

    def __init__(self, sandbox: LazySandbox, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.settings = settings

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        return self._request(method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):  # pragma: no cover - unused
        raise NotImplementedError("the sandbox serves no streaming endpoints")

    def _request(self, method, url, headers, post_data):
        path = url.split(SANDBOX_PREFIX, 1)[1] if SANDBOX_PREFIX in url else url
        origin = self.settings["PUBLIC_BASE_URL"].rstrip("/")
        client = Client(self.sandbox)
        response = client.open(
            path,
            base_url=origin + SANDBOX_PREFIX,
            method=method.upper(),
            headers=dict(headers or {}),
            data=post_data,
        )
        try:
            # stripe reads headers case-insensitively ("request-id"): werkzeug's Headers do.
            return response.get_data(), response.status_code, Headers(response.headers)
        finally:
            response.close()

    def close(self):
        pass


# --- wiring -------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Choose where Stripe calls go (see the module docstring); mount the sandbox in demo mode.
    Raises ``ConfigurationError`` (what to set) when payments are not configured."""
    key = app.config.get("STRIPE_SECRET_KEY")
    api_base = app.config.get("STRIPE_API_BASE")
    demo = bool(app.config.get("DEMO_MODE"))
    if demo:
        refuse_live_key(key, "STRIPE_SECRET_KEY (with STOREFRONT_DEMO=1, where no real payment is taken)")
    if key:
        # Real Stripe, or a sandbox running as its own process at STRIPE_API_BASE.
        gateway = Gateway(key, webhook_secret=app.config.get("STRIPE_WEBHOOK_SECRET"), api_base=api_base)
        if not gateway.webhook_secret:
            raise ConfigurationError(NO_WEBHOOK_SECRET)
        app.extensions["payments_gateway"] = gateway
        return
    if not demo:
        raise ConfigurationError(NOT_CONFIGURED)
    for name in SANDBOX_CREDENTIALS:
        if not app.config.get(name):
            app.config[name] = sandbox_credential(app.instance_path, name)
    if api_base:  # a sandbox process at STRIPE_API_BASE, with the demo's own test key
        app.extensions["payments_gateway"] = Gateway(
            app.config["STRIPE_SANDBOX_KEY"], webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"], api_base=api_base
        )
        return
    _mount_sandbox(app)


def _mount_sandbox(app: Flask) -> None:
    sandbox = LazySandbox(
        SandboxConfig(
            db_path=app.config["STRIPE_SANDBOX_DB"],
            api_key=app.config["STRIPE_SANDBOX_KEY"],
            webhook_urls=list(app.config.get("STRIPE_SANDBOX_WEBHOOK_URLS") or []),
            webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"],
            # Deliveries and expiry sweeps run in a thread of their own, except under test
            # apps (tests of the sandbox run it as its own process).
            start_background=app.config.get("STRIPE_SANDBOX_BACKGROUND", not app.testing),
        )
    )
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    # Say it loudly: in demo mode nobody pays real money, and anyone who can reach this
    # app can "pay" with a test card (every page says so too).
    if not app.testing:
        app.logger.warning(
            "Demo mode (STOREFRONT_DEMO=1): payments go to the built-in Stripe sandbox at %s (test mode, no real "
            "money).",
            SANDBOX_PREFIX,
        )
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {SANDBOX_PREFIX: sandbox})
    app.extensions["stripe_sandbox"] = sandbox
    app.extensions["payments_gateway"] = Gateway(
        app.config["STRIPE_SANDBOX_KEY"],
        webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"],
        api_base=IN_PROCESS_BASE,
        http_client=SandboxTransport(sandbox, app.config),
        # In process there is no network to retry over.
        max_network_retries=0,
    )


# Where Stripe serves its hosted Checkout page.
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def hosted_page_origin(config: Mapping[str, Any]) -> str | None:
    """The origin of the page a Checkout Session's ``url`` opens (the checkout form's
    303 goes there): ``STRIPE_CHECKOUT_ORIGIN`` if set (a custom domain at Stripe, or a
    sandbox started with ``--public-url``); Stripe's for the real Stripe; the API's own
    origin for a sandbox running as its own process; None for the in-process sandbox,
    whose page is on the shop's own origin."""
    if config.get("STRIPE_CHECKOUT_ORIGIN"):
        return config["STRIPE_CHECKOUT_ORIGIN"].rstrip("/")
    api_base = config.get("STRIPE_API_BASE")
    if api_base in (None, stripe.DEFAULT_API_BASE):
        return STRIPE_CHECKOUT_ORIGIN if config.get("STRIPE_SECRET_KEY") else None
    parts = urlsplit(api_base)
    return f"{parts.scheme}://{parts.netloc}"


def get_gateway() -> Gateway:
    return current_app.extensions["payments_gateway"]
