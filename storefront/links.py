"""Absolute links, for wherever a link leaves the page: Stripe's return URLs, mails,
"keep this link".

They are built from ``PUBLIC_BASE_URL``, the shop's address as buyers reach it, never
from the request's Host header: whoever sends a request chooses that header (a
forged ``Host: evil.example`` would otherwise make Stripe send the buyer back to
evil.example), and inside a webhook it is whoever delivered it.
"""

from __future__ import annotations

from flask import Flask, current_app


def public_url(endpoint: str, **values) -> str:
    """``PUBLIC_BASE_URL`` + the route's path (and ``values`` not in the path as the query)."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def init_app(app: Flask) -> None:
    app.add_template_global(public_url, "public_url")
