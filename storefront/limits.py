"""Rate limits with Flask-Limiter: the ``limiter``, and the client it counts (``client_key``).

A minimal module for the back office's sign-in throttling (``storefront.admin.throttle``);
the buyer's limits (another branch) grow it. Storage: this process's memory by default,
Redis with ``REDIS_URL`` so that every process and host counts together. If the storage
cannot be reached, requests go through (``swallow_errors``).
"""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter


def client_key() -> str:
    """The client a request comes from: the address the nearest trusted proxy saw."""
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_key, strategy="moving-window", headers_enabled=False, swallow_errors=True)


def init_app(app: Flask) -> None:
    config = app.config
    config["RATELIMIT_STORAGE_URI"] = config.get("REDIS_URL") or "memory://"
    limiter.init_app(app)
