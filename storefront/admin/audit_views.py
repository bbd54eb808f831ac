"""The audit log, per organiser and per event (owners only), newest first, paginated."""

from __future__ import annotations

from flask import abort, render_template, request, url_for

from .. import audit, teams
from . import bp
from .permissions import Permission, requires


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        abort(404)
    return int(raw)


@bp.get("/o/<organiser>/audit")
@requires(Permission.VIEW_AUDIT)
def audit_log(access):
    event = None
    slug = request.args.get("event", "")
    if slug:
        event = teams.visible_event(access.membership, slug)
        if event is None:
            abort(404)
    page = audit.organiser_log(access.organiser.id, event_id=event.id if event else None, page=_page_number())
    return _render(access, page, event)


@bp.get("/o/<organiser>/events/<event>/audit")
@requires(Permission.VIEW_AUDIT, event=True)
def event_audit_log(access):
    page = audit.organiser_log(access.organiser.id, event_id=access.event.id, page=_page_number())
    return _render(access, page, access.event)


def _render(access, page, event):
    def page_url(number: int) -> str:
        values = dict(request.view_args)
        if event is not None and "event" not in values:
            values["event"] = event.slug  # the organiser log's filter, kept across pages
        return url_for(request.endpoint, page=number, **values)

    return render_template(
        "admin/audit.html",
        access=access,
        page=page,
        event=event,
        events=teams.organiser_events(access.organiser.id),
        changes=audit.changes,
        page_url=page_url,
    )
