"""Entry point for `flask --app wsgi …` and for gunicorn (`gunicorn wsgi:app`)."""

from storefront import create_app
from storefront.config import ConfigurationError

try:
    app = create_app()
except ConfigurationError as error:
    # Say what to set, without a traceback (gunicorn and flask print this and stop).
    raise SystemExit(f"Refusing to start: {error}") from None
