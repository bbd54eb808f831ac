"""The control API under ``/_sandbox`` (not Stripe's): what tests and the demo use to
pay without a browser, arm faults, read the delivery log, expire and settle on demand."""

from __future__ import annotations

import time

from flask import Blueprint, Response, request

from . import faults
from .errors import ApiError
from .events import release_held
from .responses import current_sandbox, json_response
from .webhooks import deliveries

bp = Blueprint("control", __name__, url_prefix="/_sandbox")


def control_json() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def control_error(message: str, status: int = 400) -> Response:
    return json_response(status, {"error": message})


@bp.get("/health")
def health():
    return json_response(200, {"ok": True, "webhook_secret": current_sandbox().config.webhook_secret})


@bp.route("/endpoints", methods=["GET", "POST", "DELETE"])
def endpoints():
    sandbox = current_sandbox()
    with sandbox.store.write() as tx:
        if request.method == "POST":
            data = control_json()
            url, secret = data.get("url"), data.get("secret") or sandbox.config.webhook_secret
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return control_error("url must be an http(s) URL")
            if not isinstance(secret, str) or not secret.startswith("whsec_"):
                return control_error("secret must start with whsec_")
            tx.execute(
                "INSERT INTO endpoints (url, secret) VALUES (?, ?) ON CONFLICT (url) DO UPDATE SET secret "
                "= excluded.secret",
                (url, secret),
            )
        elif request.method == "DELETE":
            url = control_json().get("url")
            if url:
                tx.execute("DELETE FROM endpoints WHERE url = ?", (url,))
            else:
                tx.execute("DELETE FROM endpoints")
        rows = [dict(r) for r in tx.execute("SELECT url, secret FROM endpoints ORDER BY id")]
    return json_response(200, {"endpoints": rows})


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults_view():
    sandbox = current_sandbox()
    with sandbox.store.write() as tx:
        if request.method == "POST":
            try:
                armed = faults.arm(tx, control_json())
            except faults.FaultSpecError as error:
                return control_error(str(error))
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
    sandbox = current_sandbox()
    with sandbox.store.write() as tx:
        n = tx.execute("UPDATE deliveries SET next_attempt_at = ? WHERE state = 'pending'", (time.time(),)).rowcount
        tx.after_commit(sandbox.wake.set)
    return json_response(200, {"due": n})


@bp.post("/sweep")
def sweep():
    return json_response(200, current_sandbox().sweep())


@bp.post("/checkout/sessions/<session_id>/lapse")
def lapse(session_id):
    """Treat the session as past its expires_at; sweep now unless ``{"sweep": false}``
    (then the background loop finds it, as it finds any lapsed session)."""
    sandbox = current_sandbox()
    try:
        sandbox.sessions.lapse(session_id)
    except ApiError as error:
        return json_response(error.status, error.body())
    if control_json().get("sweep") is False:
        return json_response(200, {"expired": [], "settled": []})
    return json_response(200, sandbox.sweep())


@bp.post("/checkout/sessions/<session_id>/pay")
def pay(session_id):
    """Pay as a buyer would on the hosted page, without a browser.

    JSON: ``card`` (a test card number) or ``iban``; ``email``; ``name``;
    ``authenticate`` (``complete``/``fail``) for 3-D Secure cards."""
    sandbox = current_sandbox()
    data = control_json()
    if not sandbox.sessions.exists(session_id):
        return json_response(404, {"error": f"No such checkout.session: {session_id}"})
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
    try:
        result = sandbox.payments.pay(session_id, form)
        if result.outcome == "requires_action" and data.get("authenticate") in ("complete", "fail"):
            result = sandbox.payments.authenticate(session_id, data["authenticate"] == "complete")
    except ApiError as error:
        return json_response(error.status, error.body())
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
def authenticate(session_id):
    """Finish a waiting 3-D Secure step: ``{"result": "complete" | "fail"}``."""
    sandbox = current_sandbox()
    result_name = control_json().get("result")
    if result_name not in ("complete", "fail"):
        return control_error("result must be complete or fail")
    try:
        result = sandbox.payments.authenticate(session_id, result_name == "complete")
    except ApiError as error:
        return json_response(error.status, error.body())
    if result.outcome == "not_open":
        return control_error("No 3-D Secure step is waiting on this session.", 409)
    return json_response(200, {"outcome": result.outcome, "message": result.message, "redirect": result.redirect})


@bp.post("/reset")
def reset():
    """Forget every object, event, delivery, fault and idempotency key (endpoints stay)."""
    current_sandbox().store.reset()
    return json_response(200, {"reset": True})


@bp.post("/payment_intents/<pi_id>/settle")
def settle(pi_id):
    """Settle a processing bank debit now: ``{"outcome": "succeeded" | "failed"}``
    (default: what its test IBAN does)."""
    sandbox = current_sandbox()
    try:
        done = sandbox.payments.settle(pi_id, control_json().get("outcome"))
    except ApiError as error:
        return json_response(error.status, error.body())
    if not done:
        return control_error("This PaymentIntent is not processing.", 409)
    return json_response(200, {"payment_intent": sandbox.payments.get_payment_intent(pi_id)})
