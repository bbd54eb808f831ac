"""What every answer says about trust: security headers, caching, the session cookie.

* ``Content-Security-Policy``: only our own scripts and styles; forms may post to us
  and be redirected to the payment page only (``form-action``: browsers apply it to
  the redirect that follows a form post too, and the checkout form's answer is a 303
  to Stripe's hosted page, whose origin comes from configuration, see
  ``gateway.hosted_page_origin``).
* ``Permissions-Policy``: every powerful feature denied; a page that needs one (the
  door's camera) says so on its own answer with ``allow_features``.
* ``Strict-Transport-Security`` (one year) on answers served over https
  (``request.is_secure``, after the proxy fix).
* ``Cache-Control: no-store`` on every page and fragment: each carries the buyer's
  cart, order or CSRF token, and no shared cache or back-button copy may keep them.
  Static files keep their own caching.
* The session cookie: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` unless the shop runs
  in demo mode (set explicitly with ``SESSION_COOKIE_SECURE``), and named
  ``__Host-session`` when ``PUBLIC_BASE_URL`` is https (the browser then refuses it
  from any other origin or path, or without Secure).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from flask import Flask, Response, request

from .payments import gateway

HSTS = "max-age=31536000"
_CSP_BASE = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
# Features the shop does not use (names Chromium knows: an unknown one is a console error).
DENIED_FEATURES = (
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "encrypted-media",
    "fullscreen",
    "geolocation",
    "gyroscope",
    "hid",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "picture-in-picture",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
)
HOST_PREFIXED_COOKIE = "__Host-session"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@lru_cache(maxsize=16)
def content_security_policy(form_targets: tuple[str, ...]) -> str:
    return f"{_CSP_BASE}; form-action 'self' {' '.join(form_targets)}".rstrip()


@lru_cache(maxsize=16)
def permissions_policy(allowed: frozenset[str] = frozenset()) -> str:
    """Every feature of ``DENIED_FEATURES`` denied, except ``allowed`` ones (for this origin)."""
    return ", ".join(f"{name}=(self)" if name in allowed else f"{name}=()" for name in DENIED_FEATURES)


def allow_features(response: Response, *features: str) -> Response:
    """Let this one answer's page use ``features`` (e.g. ``"camera"``) on our own origin."""
    response.headers["Permissions-Policy"] = permissions_policy(frozenset(features))
    return response


def _form_targets(config) -> tuple[str, ...]:
    """Where a form's answer may send the browser besides us: the payment page."""
    hosted = gateway.hosted_page_origin(config)
    public = origin_of(config["PUBLIC_BASE_URL"])
    return tuple(dict.fromkeys(origin for origin in (hosted, public) if origin))


def resolve_session_cookie(config) -> None:
    """Settle the session cookie's attributes once the configuration is complete."""
    https = config["PUBLIC_BASE_URL"].startswith("https://")
    secure = config.get("SESSION_COOKIE_SECURE")
    if secure is None:
        secure = https or not config.get("DEMO_MODE")
    if https and not secure:
        raise RuntimeError(
            "PUBLIC_BASE_URL is https, so the session cookie must be Secure: unset SESSION_COOKIE_SECURE=0."
        )
    config["SESSION_COOKIE_SECURE"] = bool(secure)
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if https and config.get("SESSION_COOKIE_NAME", "session") == "session":
        config["SESSION_COOKIE_NAME"] = HOST_PREFIXED_COOKIE


def init_app(app: Flask) -> None:
    resolve_session_cookie(app.config)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        # Read per answer: `flask demo --port` sets PUBLIC_BASE_URL after the app is built.
        headers.setdefault("Content-Security-Policy", content_security_policy(_form_targets(app.config)))
        headers.setdefault("Permissions-Policy", permissions_policy())
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint != "static" and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
