"""The one module that knows htmx's header names and answer conventions."""

from __future__ import annotations

import json

from flask import Response, make_response, render_template, request
from flask import redirect as flask_redirect

HX_REDIRECT = "HX-Redirect"
HX_RESWAP = "HX-Reswap"
HX_RETARGET = "HX-Retarget"
HX_TRIGGER = "HX-Trigger"
# The element of base.html that shows a failed request's message.
MESSAGES = "#messages"
STOP_POLLING = 286


def wants_fragment() -> bool:
    """True for an htmx request that swaps a part of the page.

    A history-restore request wants the whole page back (the back button after a
    cache miss), so it is not a fragment request.
    """
    hx = request.htmx
    return bool(hx) and not hx.history_restore_request


def render(page: str, fragment: str, status: int = 200, **context) -> Response:
    """Render the whole page, or only its fragment for htmx. The page template
    includes the fragment, so both come from the same markup."""
    template = fragment if wants_fragment() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


def redirect(location: str) -> Response:
    """Go to ``location``: ``HX-Redirect`` for htmx (a full navigation, possibly to
    another site), else a 303 so the browser follows with a GET."""
    if request.htmx:
        response = make_response("", 200)
        response.headers[HX_REDIRECT] = location
        return response
    return flask_redirect(location, code=303)


def trigger(response: Response, event: str, detail: object = None) -> Response:
    """Ask htmx to fire ``event`` on the page after this answer is swapped in."""
    events = json.loads(response.headers.get(HX_TRIGGER, "{}"))
    events[event] = detail if detail is not None else ""
    response.headers[HX_TRIGGER] = json.dumps(events)
    return response


def show_message(response: Response) -> Response:
    """Swap this answer into the page's message area (``MESSAGES``) instead of the
    element the request meant to replace."""
    response.headers[HX_RETARGET] = MESSAGES
    response.headers[HX_RESWAP] = "innerHTML"
    response.vary.add("HX-Request")
    return response
