"""The sandbox's WSGI app: Stripe's API under ``/v1`` (``api``), the hosted page under
``/pay`` (``hosted``), and a test-only control API under ``/_sandbox`` (``control``).
Its templates and static files are its own, inside this package."""

from __future__ import annotations

from flask import Flask, Response

from . import api, control, hosted
from .config import SandboxConfig
from .service import Sandbox
from .webhooks import Deliverer

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def create_sandbox_app(config: SandboxConfig) -> Flask:
    """The sandbox as a Flask app; starts its delivery thread unless told not to."""
    app = Flask(__name__, template_folder="templates", static_folder="static")
    sandbox = Sandbox(config)
    deliverer = Deliverer(sandbox)
    app.extensions["stripe_sandbox"] = sandbox
    app.extensions["stripe_sandbox_deliverer"] = deliverer
    app.register_blueprint(api.bp)
    app.register_blueprint(hosted.bp)
    app.register_blueprint(control.bp)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    if config.start_background:
        deliverer.start()
    return app
