"""POST /webhooks/stripe: Stripe's events, verified, stored and handled."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from . import views  # noqa: E402,F401
