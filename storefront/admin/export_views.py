"""GET .../events/<event>/exports/<kind>.csv: a streamed CSV per event (storefront/exports.py).

Permission VIEW_ORDERS: exports carry buyers' emails, which the door role (CHECK_IN only) must
not take away; the door has its own names-only door list."""

from __future__ import annotations

from flask import Response, abort, stream_with_context

from .. import csv_export, exports
from . import bp, sessions
from .permissions import Permission, requires


@bp.get("/o/<organiser>/events/<event>/exports/<kind>.csv")
@requires(Permission.VIEW_ORDERS, event=True)
def event_export(access, kind):
    build = exports.KINDS.get(kind)
    if build is None:
        abort(404)
    event = access.event
    exports.record(event, kind, sessions.actor())
    header, rows = build(event)
    response = Response(stream_with_context(csv_export.stream(header, rows)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{kind}-{event.slug}.csv"'
    return response
