"""The sandbox's WSGI app: Stripe's API under ``/v1``, the hosted page under ``/pay``,
and a test-only control API under ``/_sandbox``.

API requests are handled as Stripe handles them: ``Authorization: Bearer sk_test_…``
first, then bracket-notation params, then ``Idempotency-Key`` (same key and params →
the stored answer again; same key, other params → ``idempotency_error``). Every answer
carries a ``Request-Id``. Errors are Stripe's error object with Stripe's status codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, redirect, render_template, request

from . import faults
from .cards import CARDS, IBANS
from .config import SandboxConfig, looks_live
from .errors import ApiError, api_error, authentication
from .formparse import parse_params
from .ids import new_id
from .money import format_amount
from .service import RequestInfo, Sandbox, release_held
from .webhooks import Deliverer, deliveries

PROJECT_ROOT = Path(__file__).resolve().parents[3]
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class ConnectionCut(Exception):
    """Raised to answer a request with a dropped connection (fault ``connection_error``)."""


def create_sandbox_app(config: SandboxConfig) -> Flask:
    """The sandbox as a Flask app; starts its delivery thread unless told not to."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    sandbox = Sandbox(config)
    deliverer = Deliverer(sandbox)
    app.extensions["stripe_sandbox"] = sandbox
    app.extensions["stripe_sandbox_deliverer"] = deliverer
    if config.start_background:
        deliverer.start()

    # --- the API --------------------------------------------------------------------

    def api(handler: Callable[..., Any]) -> Callable[..., Response]:
        def view(**kwargs):
            request_id = new_id("req", 14)
            try:
                response = _api_call(handler, kwargs, request_id)
            except ConnectionCut:
                return _cut_connection()
            except ApiError as error:
                response = _json(error.status, error.body())
            response.headers["Request-Id"] = request_id
            response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", "2026-10-28.endive")
            return response

        view.__name__ = handler.__name__
        return view

    def _api_call(handler, kwargs, request_id: str) -> Response:
        _authenticate(config)
        method = request.method
        path = request.path
        fault = None
        if faults.any_armed(sandbox.store, faults.API_KINDS):  # a read: no write lock per call
            with sandbox.store.write() as tx:
                fault = faults.take(tx, faults.API_KINDS, method=method, path=path)
        if fault and fault["kind"] == "api_error":
            # As if the request never reached Stripe's API: nothing runs, nothing is saved
            # under the idempotency key, so a retry runs for real.
            raise ApiError(int(fault["status"]), "api_error", "An unknown error occurred (sandbox fault).")
        if fault and fault["kind"] == "connection_error" and fault["when"] == "before":
            raise ConnectionCut()
        pairs = request.form.items(multi=True) if method == "POST" else request.args.items(multi=True)
        params = parse_params(pairs)
        key = request.headers.get("Idempotency-Key") if method == "POST" else None
        req = RequestInfo(id=request_id, idempotency_key=key)
        if key is None:
            status, body = _run(handler, params, kwargs, req)
            response = _json(status, body)
        else:
            response = _idempotent(key, method, path, params, handler, kwargs, req)
        if fault and fault["kind"] == "connection_error":  # "after": it ran and was saved
            raise ConnectionCut()
        return response

    def _run(handler, params, kwargs, req) -> tuple[int, dict]:
        return 200, handler(params, req, **kwargs)

    def _idempotent(key, method, path, params, handler, kwargs, req) -> Response:
        if len(key) > 255:
            raise ApiError(400, "invalid_request_error", "Idempotency-Key must be at most 255 characters long.")
        fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
        now = time.time()
        with sandbox.store.write() as tx:
            tx.execute("DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL_SECONDS,))
            row = tx.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
            if row is None:
                tx.execute(
                    "INSERT INTO idempotency (key, method, path, fingerprint, state, created) VALUES (?, ?, ?, "
                    "?, 'running', ?)",
                    (key, method, path, fingerprint, now),
                )
        if row is not None:
            if row["fingerprint"] != fingerprint:
                raise ApiError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                    f"Try using a key other than '{key}' if you meant to execute a different request.",
                )
            if row["state"] == "running":
                raise ApiError(
                    409,
                    "invalid_request_error",
                    "There is currently another in-progress request using this Stripe token (probably the same "
                    "idempotency key). Please try again.",
                    code="idempotency_key_in_use",
                )
            response = Response(row["body"], status=row["status"], mimetype="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Original-Request"] = row["headers"] or ""
            response.headers["Idempotency-Key"] = key
            return response
        try:
            status, body = _run(handler, params, kwargs, req)
        except ApiError as error:
            if error.status == 400 and error.type == "invalid_request_error":
                # Failed validation: Stripe saves nothing, so the key may be used again.
                with sandbox.store.write() as tx:
                    tx.execute("DELETE FROM idempotency WHERE key = ?", (key,))
                raise
            status, body = error.status, error.body()
        except BaseException:
            with sandbox.store.write() as tx:
                tx.execute("DELETE FROM idempotency WHERE key = ?", (key,))
            raise
        text = json.dumps(body, indent=2)
        with sandbox.store.write() as tx:
            tx.execute(
                "UPDATE idempotency SET state = 'done', status = ?, body = ?, headers = ? WHERE key = ?",
                (status, text, req.id, key),
            )
        response = Response(text, status=status, mimetype="application/json")
        response.headers["Idempotency-Key"] = key
        response.headers["Original-Request"] = req.id
        return response

    def hosted_base() -> str:
        return config.public_url or request.url_root

    def expand_of(params) -> list[str]:
        expand = params.get("expand") or []
        return expand if isinstance(expand, list) else [expand]

    @app.post("/v1/checkout/sessions")
    @api
    def create_session(params, req):
        expand = expand_of(params)
        params.pop("expand", None)
        session = sandbox.create_session(params, hosted_base=hosted_base(), req=req)
        return sandbox.expand_session(session, expand)

    @app.get("/v1/checkout/sessions")
    @api
    def list_sessions(params, req):
        listing = sandbox.list_sessions(params)
        expand = [e.removeprefix("data.") for e in expand_of(params)]
        listing["data"] = [sandbox.expand_session(s, expand) for s in listing["data"]]
        return listing

    @app.get("/v1/checkout/sessions/<session_id>")
    @api
    def retrieve_session(params, req, session_id):
        session, _ = sandbox.get_session(session_id)
        return sandbox.expand_session(session, expand_of(params))

    @app.get("/v1/checkout/sessions/<session_id>/line_items")
    @api
    def session_line_items(params, req, session_id):
        return sandbox.line_items(session_id, params)

    @app.post("/v1/checkout/sessions/<session_id>/expire")
    @api
    def expire_session(params, req, session_id):
        session = sandbox.expire_session(session_id, req=req)
        return sandbox.expand_session(session, expand_of(params))

    @app.get("/v1/payment_intents/<pi_id>")
    @api
    def retrieve_payment_intent(params, req, pi_id):
        return sandbox.expand_payment_intent(sandbox.get_payment_intent(pi_id), expand_of(params))

    @app.post("/v1/refunds")
    @api
    def create_refund(params, req):
        return sandbox.create_refund(params, req=req)

    @app.get("/v1/refunds")
    @api
    def list_refunds(params, req):
        return sandbox.list_refunds(params)

    @app.get("/v1/events")
    @api
    def list_events(params, req):
        return sandbox.list_events(params)

    @app.get("/v1/events/<event_id>")
    @api
    def retrieve_event(params, req, event_id):
        return sandbox.get_event(event_id)

    @app.route("/v1/<path:rest>", methods=["GET", "POST", "DELETE"])
    @api
    def unknown_route(params, req, rest):
        raise ApiError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({request.method}: /v1/{rest}). The Stripe sandbox implements only "
            "the slice of Stripe's API the storefront uses.",
        )

    # --- the hosted checkout page ---------------------------------------------------

    def page_locale(session: dict) -> str:
        if session.get("locale") in ("en", "fr"):
            return session["locale"]
        return request.accept_languages.best_match(["en", "fr"]) or "en"

    def render_page(session_id: str, *, status: int = 200, **extra) -> Response:
        try:
            session, internal = sandbox.get_session(session_id)
        except ApiError:
            abort(404)
        locale = page_locale(session)
        currency = session["currency"]
        lines = [
            {
                **item,
                "unit": format_amount(item["unit_amount"], currency, locale),
                "total": format_amount(item["unit_amount"] * item["quantity"], currency, locale),
            }
            for item in internal["line_items"]
        ]
        if session["status"] == "open" and sandbox._is_past_expiry(session, internal):
            sandbox.sweep()  # it lapsed a moment ago: say so now rather than at the next tick
            session, internal = sandbox.get_session(session_id)
        html = render_template(
            "sandbox/checkout.html",
            session=session,
            lines=lines,
            total=format_amount(session["amount_total"], currency, locale),
            cards=CARDS,
            ibans=IBANS,
            form=extra.pop("form", {}),
            errors=extra.pop("errors", {}),
            **extra,
        )
        return Response(html, status=status)

    @app.get("/pay/<session_id>")
    def hosted_page(session_id):
        if not _exists(sandbox, session_id):
            abort(404)
        if sandbox.pending_authentication(session_id):  # a 3-D Secure step is waiting
            return redirect(f"{request.script_root}/pay/{session_id}/authenticate", 303)
        return render_page(session_id)

    @app.post("/pay/<session_id>")
    def hosted_page_submit(session_id):
        if not _exists(sandbox, session_id):
            abort(404)
        form = request.form.to_dict()
        result = sandbox.pay(session_id, form)
        if result.outcome in ("succeeded", "processing"):
            return redirect(result.redirect, 303)
        if result.outcome == "requires_action":
            return redirect(f"{request.script_root}/pay/{session_id}/authenticate", 303)
        if result.outcome == "not_open":
            return redirect(f"{request.script_root}/pay/{session_id}", 303)
        safe_form = {k: v for k, v in form.items() if k in ("email", "name", "method", "card_expiry", "iban")}
        if result.outcome == "declined":
            # 200, not 402: the page itself worked; it shows the decline, as Stripe's does.
            return render_page(session_id, form=safe_form, decline=result.message, decline_code=result.decline_code)
        return render_page(session_id, status=422, form=safe_form, errors=result.field_errors)

    @app.get("/pay/<session_id>/authenticate")
    def challenge_page(session_id):
        if not _exists(sandbox, session_id):
            abort(404)
        if not sandbox.pending_authentication(session_id):
            return redirect(f"{request.script_root}/pay/{session_id}", 303)
        session, _ = sandbox.get_session(session_id)
        locale = page_locale(session)
        return render_template(
            "sandbox/challenge.html",
            session=session,
            total=format_amount(session["amount_total"], session["currency"], locale),
        )

    @app.post("/pay/<session_id>/authenticate")
    def challenge_submit(session_id):
        if not _exists(sandbox, session_id):
            abort(404)
        result = sandbox.authenticate(session_id, request.form.get("action") == "complete")
        if result.outcome == "succeeded":
            return redirect(result.redirect, 303)
        if result.outcome == "declined":
            return render_page(session_id, decline=result.message, decline_code=result.decline_code)
        return redirect(f"{request.script_root}/pay/{session_id}", 303)

    # --- control API (tests and the demo; not part of Stripe) ----------------------------

    def control_json() -> dict:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def control_error(message: str, status: int = 400) -> Response:
        return _json(status, {"error": message})

    @app.get("/_sandbox/health")
    def health():
        return _json(200, {"ok": True, "webhook_secret": config.webhook_secret})

    @app.route("/_sandbox/endpoints", methods=["GET", "POST", "DELETE"])
    def endpoints():
        with sandbox.store.write() as tx:
            if request.method == "POST":
                data = control_json()
                url, secret = data.get("url"), data.get("secret") or config.webhook_secret
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
        return _json(200, {"endpoints": rows})

    @app.route("/_sandbox/faults", methods=["GET", "POST", "DELETE"])
    def faults_view():
        with sandbox.store.write() as tx:
            if request.method == "POST":
                try:
                    armed = faults.arm(tx, control_json())
                except faults.FaultSpecError as error:
                    return control_error(str(error))
                return _json(200, armed)
            if request.method == "DELETE":
                faults.clear(tx)
                release_held(tx)  # whatever a reorder fault still held goes out now
                tx.after_commit(sandbox.wake.set)
            return _json(200, {"faults": faults.listing(tx)})

    @app.get("/_sandbox/deliveries")
    def deliveries_view():
        return _json(200, {"deliveries": deliveries(sandbox, request.args.get("event_id"), request.args.get("type"))})

    @app.post("/_sandbox/deliveries/retry")
    def deliveries_retry():
        """Make every pending delivery due now (skip the backoff wait)."""
        with sandbox.store.write() as tx:
            n = tx.execute("UPDATE deliveries SET next_attempt_at = ? WHERE state = 'pending'", (time.time(),)).rowcount
            tx.after_commit(sandbox.wake.set)
        return _json(200, {"due": n})

    @app.post("/_sandbox/sweep")
    def sweep():
        return _json(200, sandbox.sweep())

    @app.post("/_sandbox/checkout/sessions/<session_id>/lapse")
    def lapse(session_id):
        """Treat the session as past its expires_at; sweep now unless ``{"sweep": false}``
        (then the background loop finds it, as it finds any lapsed session)."""
        try:
            sandbox.lapse_session(session_id)
        except ApiError as error:
            return _json(error.status, error.body())
        if control_json().get("sweep") is False:
            return _json(200, {"expired": [], "settled": []})
        return _json(200, sandbox.sweep())

    @app.post("/_sandbox/checkout/sessions/<session_id>/pay")
    def pay(session_id):
        """Pay as a buyer would on the hosted page, without a browser.

        JSON: ``card`` (a test card number) or ``iban``; ``email``; ``name``;
        ``authenticate`` (``complete``/``fail``) for 3-D Secure cards."""
        data = control_json()
        if not _exists(sandbox, session_id):
            return _json(404, {"error": f"No such checkout.session: {session_id}"})
        session, _ = sandbox.get_session(session_id)
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
            result = sandbox.pay(session_id, form)
            if result.outcome == "requires_action" and data.get("authenticate") in ("complete", "fail"):
                result = sandbox.authenticate(session_id, data["authenticate"] == "complete")
        except ApiError as error:
            return _json(error.status, error.body())
        return _json(
            200,
            {
                "outcome": result.outcome,
                "message": result.message,
                "decline_code": result.decline_code,
                "field_errors": result.field_errors,
                "redirect": result.redirect,
            },
        )

    @app.post("/_sandbox/checkout/sessions/<session_id>/authenticate")
    def authenticate(session_id):
        """Finish a waiting 3-D Secure step: ``{"result": "complete" | "fail"}``."""
        result_name = control_json().get("result")
        if result_name not in ("complete", "fail"):
            return control_error("result must be complete or fail")
        try:
            result = sandbox.authenticate(session_id, result_name == "complete")
        except ApiError as error:
            return _json(error.status, error.body())
        if result.outcome == "not_open":
            return control_error("No 3-D Secure step is waiting on this session.", 409)
        return _json(200, {"outcome": result.outcome, "message": result.message, "redirect": result.redirect})

    @app.post("/_sandbox/reset")
    def reset():
        """Forget every object, event, delivery, fault and idempotency key (endpoints stay)."""
        sandbox.store.reset()
        return _json(200, {"reset": True})

    @app.post("/_sandbox/payment_intents/<pi_id>/settle")
    def settle(pi_id):
        """Settle a processing bank debit now: ``{"outcome": "succeeded" | "failed"}``
        (default: what its test IBAN does)."""
        try:
            done = sandbox.settle(pi_id, control_json().get("outcome"))
        except ApiError as error:
            return _json(error.status, error.body())
        if not done:
            return control_error("This PaymentIntent is not processing.", 409)
        return _json(200, {"payment_intent": sandbox.get_payment_intent(pi_id)})

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.template_filter("money")
    def _money(amount: int, currency: str) -> str:
        return format_amount(amount, currency)

    return app


def _exists(sandbox: Sandbox, session_id: str) -> bool:
    try:
        sandbox.get_session(session_id)
        return True
    except ApiError:
        return False


def _authenticate(config: SandboxConfig) -> None:
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


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, indent=2), status=status, mimetype="application/json")


def _cut_connection() -> Response:
    """Drop the client's connection without an answer (werkzeug's server gives us the socket)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        return _json(
            500, api_error("The sandbox cannot drop this connection (no socket); answering 500 instead.").body()
        )
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return Response(b"", status=500)
