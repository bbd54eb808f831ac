"""Stripe's API under ``/v1``, handled as Stripe handles it: ``Authorization: Bearer
sk_test_…`` first, then armed API faults, then bracket-notation params, then
``Idempotency-Key``. Every answer carries a ``Request-Id``; errors are Stripe's error
object with Stripe's status codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from . import faults
from .auth import authenticate
from .errors import ApiError
from .events import RequestInfo
from .formparse import parse_params
from .idempotency import run_idempotent
from .ids import new_id
from .responses import current_sandbox, cut_connection, json_response
from .service import Sandbox

bp = Blueprint("api", __name__, url_prefix="/v1")

API_VERSION = "2026-10-28.endive"


class ConnectionCut(Exception):
    """Raised to answer a request with a dropped connection (fault ``connection_error``)."""


def api(handler: Callable[..., dict]) -> Callable[..., Response]:
    """A view that runs ``handler(sandbox, params, req, **url_values)`` as an API call."""

    @functools.wraps(handler)
    def view(**kwargs):
        request_id = new_id("req", 14)
        try:
            response = _api_call(current_sandbox(), handler, kwargs, request_id)
        except ConnectionCut:
            return cut_connection()
        except ApiError as error:
            response = json_response(error.status, error.body())
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", API_VERSION)
        return response

    return view


def _api_call(sandbox: Sandbox, handler, kwargs, request_id: str) -> Response:
    authenticate(sandbox.config)
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

    def run() -> dict:
        return handler(sandbox, params, req, **kwargs)

    if key is None:
        response = json_response(200, run())
    else:
        response = run_idempotent(sandbox.store, key, method, path, params, req, run)
    if fault and fault["kind"] == "connection_error":  # "after": it ran and was saved
        raise ConnectionCut()
    return response


def hosted_base(sandbox: Sandbox) -> str:
    """Where the hosted page is, as the buyer's browser reaches it."""
    return sandbox.config.public_url or request.url_root


def expand_of(params: dict[str, Any]) -> list[str]:
    expand = params.get("expand") or []
    return expand if isinstance(expand, list) else [expand]


@bp.post("/checkout/sessions")
@api
def create_session(sandbox: Sandbox, params, req):
    expand = expand_of(params)
    params.pop("expand", None)
    session = sandbox.sessions.create(params, hosted_base=hosted_base(sandbox), req=req)
    return sandbox.sessions.expand(session, expand)


@bp.get("/checkout/sessions")
@api
def list_sessions(sandbox: Sandbox, params, req):
    listing = sandbox.sessions.list(params)
    expand = [e.removeprefix("data.") for e in expand_of(params)]
    listing["data"] = [sandbox.sessions.expand(s, expand) for s in listing["data"]]
    return listing


@bp.get("/checkout/sessions/<session_id>")
@api
def retrieve_session(sandbox: Sandbox, params, req, session_id):
    session, _ = sandbox.sessions.get(session_id)
    return sandbox.sessions.expand(session, expand_of(params))


@bp.get("/checkout/sessions/<session_id>/line_items")
@api
def session_line_items(sandbox: Sandbox, params, req, session_id):
    return sandbox.sessions.line_items(session_id, params)


@bp.post("/checkout/sessions/<session_id>/expire")
@api
def expire_session(sandbox: Sandbox, params, req, session_id):
    session = sandbox.sessions.expire(session_id, req=req)
    return sandbox.sessions.expand(session, expand_of(params))


@bp.get("/payment_intents/<pi_id>")
@api
def retrieve_payment_intent(sandbox: Sandbox, params, req, pi_id):
    return sandbox.payments.expand_payment_intent(sandbox.payments.get_payment_intent(pi_id), expand_of(params))


@bp.post("/refunds")
@api
def create_refund(sandbox: Sandbox, params, req):
    return sandbox.refunds.create(params, req=req)


@bp.get("/refunds")
@api
def list_refunds(sandbox: Sandbox, params, req):
    return sandbox.refunds.list(params)


@bp.get("/refunds/<refund_id>")
@api
def retrieve_refund(sandbox: Sandbox, params, req, refund_id):
    return sandbox.refunds.get(refund_id)


@bp.get("/events")
@api
def list_events(sandbox: Sandbox, params, req):
    return sandbox.events.list(params)


@bp.get("/events/<event_id>")
@api
def retrieve_event(sandbox: Sandbox, params, req, event_id):
    return sandbox.events.get(event_id)


@bp.route("/<path:rest>", methods=["GET", "POST", "DELETE"])
@api
def unknown_route(sandbox: Sandbox, params, req, rest):
    raise ApiError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({request.method}: /v1/{rest}). The Stripe sandbox implements only "
        "the slice of Stripe's API the storefront uses.",
    )
