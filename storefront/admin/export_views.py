"""GET .../events/<event>/exports/<kind>.csv: a streamed CSV per event (storefront/exports.py).

Permission VIEW_ORDERS: exports carry buyers' emails, which the door role (CHECK_IN only) must
not take away; the door has its own names-only door list. Each member may export
``LIMIT_STAFF_EXPORTS`` times in a window (each export reads a whole event); past it the
answer is 429 with ``Retry-After``, and nothing is read or written (no audit entry)."""

from __future__ import annotations

from flask import Response, abort, stream_with_context

from .. import csv_export, exports, limits
from ..errors import TooManyRequests
from . import bp, sessions, throttle
from .permissions import Permission, requires


@bp.get("/o/<organiser>/events/<event>/exports/<kind>.csv")
@requires(Permission.VIEW_ORDERS, event=True)
def event_export(access, kind):
    build = exports.KINDS.get(kind)
    if build is None:
        abort(404)
    try:
        limits.check_staff_export(access.user.id)
    except TooManyRequests as error:
        return throttle.too_many(error.retry_after)
    event = access.event
    exports.record(event, kind, sessions.actor())
    header, rows = build(event)
    response = Response(stream_with_context(csv_export.stream(header, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{kind}-{event.slug}.csv"'
    return response
