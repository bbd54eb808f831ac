"""The control API under ``/_sandbox`` (not Stripe's): what tests and the demo use to
pay without a browser, arm faults, read the delivery log, expire and settle on demand.

Every request needs the sandbox's API key (``Authorization: Bearer sk_test_…``, the
same check as ``/v1``) and is refused when a browser says it comes from another site
(``Sec-Fetch-Site``) or another origin (``Origin``). Every POST and DELETE carries a
JSON object (``Content-Type: application/json``), so a plain HTML form cannot reach it;
its fields are checked by name and type, and anything else is a 400 that changes nothing.
Webhook endpoints are not here: they come from the sandbox's configuration only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request

from . import faults
from .auth import authenticate
from .errors import ApiError
from .events import release_held
from .responses import current_sandbox, json_response
from .webhooks import deliveries

bp = Blueprint("control", __name__, url_prefix="/_sandbox")

MAX_TEXT = 500  # any string field


class ControlError(Exception):
    """A control request refused: ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@bp.errorhandler(ControlError)
def _control_error(error: ControlError) -> Response:
    return json_response(error.status, {"error": error.message})


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return json_response(error.status, error.body())


@bp.before_request
def _guard() -> None:
    refuse_cross_site()
    authenticate(current_sandbox().config)
    g.control_body = {}
    if request.method not in ("GET", "HEAD"):
        if request.mimetype != "application/json":
            raise ControlError("The control API takes a JSON object (Content-Type: application/json).", 415)
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ControlError("The body must be a JSON object.")
        g.control_body = data


def refuse_cross_site() -> None:
    """403 for what a browser sends on another site's behalf (a form post, a fetch)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise ControlError(f"The control API refuses cross-site requests (Sec-Fetch-Site: {site}).", 403)
    origin = request.headers.get("Origin")
    own = {request.host_url.rstrip("/")}
    if current_sandbox().config.public_url:
        own.add(_origin_of(current_sandbox().config.public_url))
    if origin is not None and origin.rstrip("/") not in own:
        raise ControlError("The control API refuses requests from another origin.", 403)


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def body(**fields: Callable[[Any], bool]) -> dict[str, Any]:
    """The request's JSON object, with only ``fields``, each passing its check."""
    data = g.control_body
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "none"
        raise ControlError(f"Unknown field(s): {', '.join(unknown)} (allowed: {allowed}).")
    for name, ok in fields.items():
        if name in data and not ok(data[name]):
            raise ControlError(f"{name}: {ok.__doc__}")
    return data


def text(value: Any) -> bool:
    """must be a string of at most 500 characters"""
    return isinstance(value, str) and len(value) <= MAX_TEXT


def boolean(value: Any) -> bool:
    """must be true or false"""
    return isinstance(value, bool)


def one_of(*choices: str | None) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, (str, type(None))) and value in choices

    check.__doc__ = "must be one of " + ", ".join("null" if c is None else c for c in choices)
    return check


@bp.get("/health")
def health():
    return json_response(200, {"ok": True})


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults_view():
    sandbox = current_sandbox()
    if request.method == "DELETE":
        body()
    with sandbox.store.write() as tx:
        if request.method == "POST":
            try:
                armed = faults.arm(tx, g.control_body)
            except faults.FaultSpecError as error:
                raise ControlError(str(error)) from None
            return json_response(200, armed)
        if request.method == "DELETE":
            faults.clear(tx)
            release_held(tx)  # whatever a reorder fault still held goes out now
            tx.after_commit(sandbox.wake.set)
        return json_response(200, {"faults": faults.listing(tx)})


@bp.get("/deliveries")
def deliveries_view():
    sandbox = current_sandbox()
    return json_response(
        200, {"deliveries": deliveries(sandbox, request.args.get("event_id"), request.args.get("type"))}
    )


@bp.post("/deliveries/retry")
def deliveries_retry():
    """Make every pending delivery due now (skip the backoff wait)."""
    body()
    sandbox = current_sandbox()
    with sandbox.store.write() as tx:
        n = tx.execute("UPDATE deliveries SET next_attempt_at = ? WHERE state = 'pending'", (time.time(),)).rowcount
        tx.after_commit(sandbox.wake.set)
    return json_response(200, {"due": n})


@bp.post("/sweep")
def sweep():
    body()
    return json_response(200, current_sandbox().sweep())


@bp.post("/checkout/sessions/<session_id>/lapse")
def lapse(session_id):
    """Treat the session as past its expires_at; sweep now unless ``{"sweep": false}``
    (then the background loop finds it, as it finds any lapsed session)."""
    data = body(sweep=boolean)
    sandbox = current_sandbox()
    sandbox.sessions.lapse(session_id)
    if data.get("sweep") is False:
        return json_response(200, {"expired": [], "settled": []})
    return json_response(200, sandbox.sweep())


@bp.post("/checkout/sessions/<session_id>/pay")
def pay(session_id):
    """Pay as a buyer would on the hosted page, without a browser.

    JSON: ``card`` (a test card number) or ``iban``; ``email``; ``name``; ``expiry``;
    ``cvc``; ``authenticate`` (``complete``/``fail``) for 3-D Secure cards."""
    data = body(
        card=text, iban=text, email=text, name=text, expiry=text, cvc=text, authenticate=one_of("complete", "fail")
    )
    sandbox = current_sandbox()
    if not sandbox.sessions.exists(session_id):
        raise ControlError(f"No such checkout.session: {session_id}", 404)
    session, _ = sandbox.sessions.get(session_id)
    form = {
        "email": data.get("email") or session["customer_email"] or "buyer@example.com",
        "name": data.get("name", "Test Buyer"),
        "method": "bank_debit" if data.get("iban") else "card",
        "card_number": data.get("card", ""),
        "card_expiry": data.get("expiry", "12 / 34"),
        "card_cvc": data.get("cvc", "123"),
        "iban": data.get("iban", ""),
    }
    result = sandbox.payments.pay(session_id, form)
    if result.outcome == "requires_action" and data.get("authenticate") in ("complete", "fail"):
        result = sandbox.payments.authenticate(session_id, data["authenticate"] == "complete")
    return json_response(
        200,
        {
            "outcome": result.outcome,
            "message": result.message,
            "decline_code": result.decline_code,
            "field_errors": result.field_errors,
            "redirect": result.redirect,
        },
    )


@bp.post("/checkout/sessions/<session_id>/authenticate")
def authenticate_view(session_id):
    """Finish a waiting 3-D Secure step: ``{"result": "complete" | "fail"}``."""
    result_name = body(result=one_of("complete", "fail")).get("result")
    if result_name is None:
        raise ControlError("result must be complete or fail")
    result = current_sandbox().payments.authenticate(session_id, result_name == "complete")
    if result.outcome == "not_open":
        raise ControlError("No 3-D Secure step is waiting on this session.", 409)
    return json_response(200, {"outcome": result.outcome, "message": result.message, "redirect": result.redirect})


@bp.post("/reset")
def reset():
    """Forget every object, event, delivery, fault and idempotency key."""
    body()
    current_sandbox().store.reset()
    return json_response(200, {"reset": True})


@bp.post("/payment_intents/<pi_id>/settle")
def settle(pi_id):
    """Settle a processing bank debit now: ``{"outcome": "succeeded" | "failed"}``
    (default: what its test IBAN does)."""
    outcome = body(outcome=one_of(None, "succeeded", "failed")).get("outcome")
    sandbox = current_sandbox()
    if not sandbox.payments.settle(pi_id, outcome):
        raise ControlError("This PaymentIntent is not processing.", 409)
    return json_response(200, {"payment_intent": sandbox.payments.get_payment_intent(pi_id)})


@bp.post("/refunds/<refund_id>/settle")
def settle_refund(refund_id):
    """Settle a refund that is still settling now: ``{"outcome": "succeeded" | "failed"}``
    (default: what its charge's card does)."""
    outcome = body(outcome=one_of(None, "succeeded", "failed")).get("outcome")
    sandbox = current_sandbox()
    if not sandbox.refunds.settle(refund_id, outcome):
        raise ControlError("This refund has nothing left to settle.", 409)
    return json_response(200, {"refund": sandbox.refunds.get(refund_id)})
