"""What every part of the sandbox's WSGI app answers with: JSON, or a dropped connection."""

from __future__ import annotations

import json
import socket

from flask import Response, current_app, request

from .errors import api_error
from .service import Sandbox


def current_sandbox() -> Sandbox:
    """The ``Sandbox`` behind the app serving this request."""
    return current_app.extensions["stripe_sandbox"]


def json_response(status: int, body: dict) -> Response:
    return Response(json.dumps(body, indent=2), status=status, mimetype="application/json")


def cut_connection() -> Response:
    """Drop the client's connection without an answer (werkzeug's server gives us the socket)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        return json_response(
            500, api_error("The sandbox cannot drop this connection (no socket); answering 500 instead.").body()
        )
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return Response(b"", status=500)
