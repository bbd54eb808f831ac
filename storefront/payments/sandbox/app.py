"""The sandbox's WSGI app: Stripe's API under ``/v1`` (``api``), the hosted page under
``/pay`` (``hosted``), and a test-only control API under ``/_sandbox`` (``control``).
Its templates and static files are its own, inside this package."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response
from flask_babel import Babel, get_locale

from . import api, control, hosted
from .config import SandboxConfig
from .service import Sandbox
from .webhooks import Deliverer

# The hosted page's words are in the storefront's catalog (one catalog to keep complete:
# tests/test_translations.py); a language shows only once compiled, else English.
TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"

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
    Babel(app, default_translation_directories=str(TRANSLATIONS))
    app.extensions["stripe_sandbox_locales"] = [
        lang
        for lang in hosted.LOCALES
        if lang == "en" or (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").is_file()
    ]

    @app.context_processor
    def _page_locale():
        return {"page_locale": str(get_locale() or "en")}

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
