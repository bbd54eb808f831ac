"""Entry point for `flask --app wsgi …` and for gunicorn (`gunicorn wsgi:app`)."""

import sys

from storefront import create_app
from storefront.config import ConfigurationError

# gunicorn's "the app failed to load" exit status: its master stops instead of starting
# worker after worker. flask and python stop with it too.
APP_LOAD_ERROR = 4

try:
    app = create_app()
except ConfigurationError as error:
    print(f"Refusing to start: {error}", file=sys.stderr)
    raise SystemExit(APP_LOAD_ERROR) from None
