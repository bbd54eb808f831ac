"""The hosted checkout page under ``/pay``: what a Checkout Session's ``url`` shows the
buyer. Line items and total in the session's currency (formatted for the buyer's
language), email, card or bank debit; the 3-D Secure step; no scripts at all."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request
from flask_babel import force_locale, gettext

from .cards import CARDS, IBANS
from .errors import ApiError
from .money import format_amount
from .responses import current_sandbox
from .sessions import is_past_expiry

bp = Blueprint("hosted", __name__, url_prefix="/pay")

LOCALES = ["en", "fr"]


def page_locale(session: dict) -> str:
    """The session's ``locale`` if the page has it, else the browser's best match, else English."""
    shown = current_app.extensions.get("stripe_sandbox_locales", ["en"])
    if session.get("locale") in shown:
        return session["locale"]
    return request.accept_languages.best_match(shown) or "en"


def render_page(session_id: str, *, status: int = 200, **extra) -> Response:
    sandbox = current_sandbox()
    try:
        session, internal = sandbox.sessions.get(session_id)
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
    if session["status"] == "open" and is_past_expiry(session, internal):
        sandbox.sweep()  # it lapsed a moment ago: say so now rather than at the next tick
        session, internal = sandbox.sessions.get(session_id)
    with force_locale(locale):
        html = _render_checkout(session, lines, currency, locale, extra)
    return Response(html, status=status)


def _render_checkout(session: dict, lines: list[dict], currency: str, locale: str, extra: dict) -> str:
    # The decline and the field errors are Stripe's English (as its API gives them, cards.N_);
    # the page shows them in its own language.
    if extra.get("decline"):
        extra["decline"] = gettext(extra["decline"])
    errors = {field: gettext(message) for field, message in (extra.pop("errors", None) or {}).items()}
    return render_template(
        "checkout.html",
        session=session,
        lines=lines,
        total=format_amount(session["amount_total"], currency, locale),
        cards=CARDS,
        ibans=IBANS,
        form=extra.pop("form", {}),
        errors=errors,
        **extra,
    )


def _page_of(session_id: str) -> str:
    return f"{request.script_root}/pay/{session_id}"


@bp.get("/<session_id>")
def hosted_page(session_id):
    sandbox = current_sandbox()
    if not sandbox.sessions.exists(session_id):
        abort(404)
    if sandbox.payments.pending_authentication(session_id):  # a 3-D Secure step is waiting
        return redirect(_page_of(session_id) + "/authenticate", 303)
    return render_page(session_id)


@bp.post("/<session_id>")
def hosted_page_submit(session_id):
    sandbox = current_sandbox()
    if not sandbox.sessions.exists(session_id):
        abort(404)
    form = request.form.to_dict()
    result = sandbox.payments.pay(session_id, form)
    if result.outcome in ("succeeded", "processing"):
        return redirect(result.redirect, 303)
    if result.outcome == "requires_action":
        return redirect(_page_of(session_id) + "/authenticate", 303)
    if result.outcome == "not_open":
        return redirect(_page_of(session_id), 303)
    safe_form = {k: v for k, v in form.items() if k in ("email", "name", "method", "card_expiry", "iban")}
    if result.outcome == "declined":
        # 200, not 402: the page itself worked; it shows the decline, as Stripe's does.
        return render_page(session_id, form=safe_form, decline=result.message, decline_code=result.decline_code)
    return render_page(session_id, status=422, form=safe_form, errors=result.field_errors)


@bp.get("/<session_id>/authenticate")
def challenge_page(session_id):
    sandbox = current_sandbox()
    if not sandbox.sessions.exists(session_id):
        abort(404)
    if not sandbox.payments.pending_authentication(session_id):
        return redirect(_page_of(session_id), 303)
    session, _ = sandbox.sessions.get(session_id)
    locale = page_locale(session)
    with force_locale(locale):
        return render_template(
            "challenge.html",
            session=session,
            total=format_amount(session["amount_total"], session["currency"], locale),
        )


@bp.post("/<session_id>/authenticate")
def challenge_submit(session_id):
    sandbox = current_sandbox()
    if not sandbox.sessions.exists(session_id):
        abort(404)
    result = sandbox.payments.authenticate(session_id, request.form.get("action") == "complete")
    if result.outcome == "succeeded":
        return redirect(result.redirect, 303)
    if result.outcome == "declined":
        return render_page(session_id, decline=result.message, decline_code=result.decline_code)
    return redirect(_page_of(session_id), 303)
