"""Log lines of the domain modules carry the request's id when they run in a request.

Each request gets an id (the ``X-Request-Id`` it came with, if sane, else a new one),
answered back in ``X-Request-Id``. A filter on the domain modules' loggers prefixes
their messages with it, so the domain code logs state changes without knowing about
HTTP; webhook handling also names the Stripe event id in its own messages.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, g, has_request_context, request

LOGGERS = ("storefront.checkout", "storefront.fulfilment", "storefront.stripe_events", "storefront.reconcile")
_SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and not getattr(record, "request_id", None):
            request_id = getattr(g, "request_id", None)
            if request_id:
                record.request_id = request_id
                record.msg = f"[req {request_id}] {record.msg}"
        return True


_filter = RequestIdFilter()


def init_app(app: Flask) -> None:
    # State changes are INFO: shown unless the deployment chose a level of its own.
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)

    @app.before_request
    def _request_id():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _SANE.match(given) else secrets.token_hex(8)

    @app.after_request
    def _answer_request_id(response):
        if "request_id" in g:
            response.headers.setdefault("X-Request-Id", g.request_id)
        return response
