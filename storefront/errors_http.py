"""Error answers: a person sees words, htmx a small fragment for the page's message area.

For an htmx request the message is retargeted (``htmx.show_message``) to the page's
``#messages`` area, so a failed cart change never swaps a whole error page into the
cart box. The webhook, whose caller is Stripe, gets JSON. Headers the error carries
(``Retry-After`` of a 429, ``Allow`` of a 405) are kept.
"""

from __future__ import annotations

from flask import Flask, make_response, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import htmx
from .extensions import db


def _words(reason: str) -> tuple[str, str]:
    """The title and the sentence a buyer reads for each kind of failure."""
    return {
        "csrf": (_("Your session has expired"), _("Please reload the page and try again.")),
        "bad_request": (_("That request was not understood"), _("Please reload the page and try again.")),
        "not_found": (_("Page not found"), _("This page does not exist, or the event is not on sale.")),
        "not_allowed": (_("That action is not possible here"), _("Please go back and use the buttons on the page.")),
        "too_large": (
            _("That was more than we accept"),
            _("What you sent is larger than this shop takes. Please shorten it and try again."),
        ),
        "too_many": (_("Too many requests"), _("Please wait a moment, then try again.")),
        # A 500 may come after part of the work was saved: say so honestly.
        "server": (
            _("Something went wrong"),
            _("We could not complete your request. Please reload the page to see where things stand, then try again."),
        ),
    }[reason]


def error_answer(code: int, reason: str, error: HTTPException | None = None):
    """The answer for a failed request: JSON, an htmx message fragment, or the error page."""
    # By path: a 404 or 405 matched no route, so it has no blueprint.
    if request.path.startswith("/webhooks/"):
        response = make_response({"error": reason}, code)
    else:
        title, text = _words(reason)
        if htmx.wants_fragment():
            response = make_response(render_template("_partials/error_message.html", title=title, text=text), code)
            htmx.show_message(response)
        else:
            # A server error may come from the database: its page reads no cart (no count).
            unread = {"cart": None} if code >= 500 else {}
            response = make_response(render_template("error.html", code=code, title=title, text=text, **unread), code)
    if error is not None:
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
    return response


# The failures a person can meet, by status code.
_REASONS = {400: "bad_request", 404: "not_found", 405: "not_allowed", 413: "too_large", 429: "too_many"}


def init_app(app: Flask) -> None:
    # A CSRF failure is a 400 with words of its own (registered first: the more specific).
    app.register_error_handler(CSRFError, lambda error: error_answer(400, "csrf", error))
    for code, reason in _REASONS.items():
        app.register_error_handler(code, lambda error, reason=reason: error_answer(error.code, reason, error))

    @app.errorhandler(500)
    def server_error(error):
        db.session.rollback()
        return error_answer(500, "server")
