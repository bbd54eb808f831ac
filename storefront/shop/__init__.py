"""The buyer's side: events, the cart and its reservation."""

from flask import Blueprint

bp = Blueprint("shop", __name__)

from . import views  # noqa: E402,F401  (registers the routes)
