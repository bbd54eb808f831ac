"""The door: choosing an event, its check-in page (scan, typed code, search), the live
counters, undoing a check-in, and the door list (printable and CSV) for when the
network fails.

Each answer is the door page, or for htmx its fragment; a scan's answer also carries
the next scan's nonce (out of band) and fires ``door-scanned``, on which the counters
and the search results refresh themselves. The page's answer allows the camera (and
playing its picture, and keeping the screen on) in its ``Permissions-Policy``, which
every other page denies.
"""

from __future__ import annotations

import secrets
from zoneinfo import ZoneInfo

from flask import Response, flash, make_response, render_template, request, session, url_for
from flask_babel import gettext as _

from .. import check_in, csv_export, htmx, http_security, limits, teams
from ..errors import TooManyRequests
from ..models import utcnow
from ..parsing import db_id
from ..staff_errors import StaffError
from ..tickets import format_ticket_code
from . import bp, sessions
from .forms import DoorSearchForm, ScanForm, UndoCheckInForm
from .permissions import Permission, requires

DOOR_NAME_KEY = "door_name"
# What the door page may use: the camera, its picture playing in the page, and keeping the
# phone's screen on while it scans.
DOOR_FEATURES = ("camera", "autoplay", "screen-wake-lock")
SCANNED_EVENT = "door-scanned"


@bp.get("/o/<organiser>/door")
@requires(Permission.CHECK_IN)
def door_index(access):
    return render_template("admin/door_index.html", access=access, events=teams.visible_events(access.membership))


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _scan_form(door: str | None = None) -> ScanForm:
    """An empty scan form with a nonce for the next scan and the door's name as last given."""
    return ScanForm(formdata=None, nonce=_new_nonce(), door=session.get(DOOR_NAME_KEY, "") if door is None else door)


def _urls(access) -> dict[str, str]:
    values = {"organiser": access.organiser.slug, "event": access.event.slug}
    return {
        "door": url_for("admin.door", **values),
        "scan": url_for("admin.door_scan", **values),
        "search": url_for("admin.door_search", **values),
        "counters": url_for("admin.door_counters", **values),
        "undo": url_for("admin.door_undo", **values),
        "list": url_for("admin.door_list", **values),
        "csv": url_for("admin.door_list_csv", **values),
    }


def _context(access, **extra) -> dict:
    event = access.event
    context = {
        "urls": _urls(access),
        "access": access,
        "event": event,
        "form": None,
        "search_form": DoorSearchForm(formdata=None),
        "results": None,
        "query": "",
        "admissions": {},
        "answer": None,
        "error": None,
        "undone": None,
        "counters": check_in.counters(event.id),
        "other_day": check_in.other_day(event),
        "can_undo": access.can(Permission.UNDO_CHECK_IN),
        "new_nonce": _new_nonce,
        "format_ticket_code": format_ticket_code,
        "door_status": check_in.door_status,
        "door_status_words": check_in.door_status_words(),
    }
    context.update(extra)
    if context["form"] is None:
        context["form"] = _scan_form()
    return context


def _door_answer(access, fragment: str, status: int = 200, **extra) -> Response:
    response = htmx.render("admin/door.html", fragment, status, **_context(access, **extra))
    return http_security.allow_features(response, *DOOR_FEATURES)


@bp.get("/o/<organiser>/events/<event>/door")
@requires(Permission.CHECK_IN, event=True)
def door(access):
    return _door_answer(access, "admin/door.html")


def _too_many(access, error: TooManyRequests, fragment: str) -> Response:
    return _door_answer(access, fragment, error.status, error=error.message())


@bp.post("/o/<organiser>/events/<event>/door/scan")
@requires(Permission.CHECK_IN, event=True)
def door_scan(access):
    fragment = "admin/_door_scan_answer.html"
    form = ScanForm()
    try:
        limits.check_door("scan", access.user.id)
    except TooManyRequests as error:
        return _too_many(access, error, fragment)
    # A search result's button brings no door field: the door is the one last named here.
    door_name = form.door.data if form.door.raw_data else session.get(DOOR_NAME_KEY, "")
    if not form.validate_on_submit():
        message = _("This scan could not be sent as it was. Reload the page and scan again.")
        if form.code.errors or form.secret.errors:
            message = _("That is not a ticket code: it has 10 letters and digits, like ACDEF-GHJKM.")
        elif form.door.errors:
            message = _("Name the door in up to 60 letters, digits and spaces, such as North gate.")
        return _door_answer(access, fragment, 400, error=message)
    try:
        scanned = check_in.Scanned.from_input(form.secret.data, form.code.data)
        answer = check_in.scan(
            access.membership,
            access.event,
            scanned,
            nonce=form.nonce.data,
            door=door_name,
            actor=sessions.actor(),
        )
    except StaffError as error:
        return _door_answer(access, fragment, error.status, error=error.message())
    session[DOOR_NAME_KEY] = check_in.door_name(door_name)
    response = _door_answer(access, fragment, answer=answer, form=_scan_form(door_name))
    return htmx.trigger(response, SCANNED_EVENT)


@bp.get("/o/<organiser>/events/<event>/door/search")
@requires(Permission.CHECK_IN, event=True)
def door_search(access):
    fragment = "admin/_door_results.html"
    try:
        limits.check_door("lookup", access.user.id)
    except TooManyRequests as error:
        return _too_many(access, error, fragment)
    form = DoorSearchForm(request.args)
    query = (form.q.data or "").strip() if form.validate() else ""
    results = check_in.search(access.event.id, query) if query else None
    admissions = check_in.latest_admissions([t.id for t in results or []])
    return _door_answer(access, fragment, search_form=form, results=results, query=query, admissions=admissions)


@bp.get("/o/<organiser>/events/<event>/door/counters")
@requires(Permission.CHECK_IN, event=True)
def door_counters(access):
    fragment = "admin/_door_counters.html"
    try:
        limits.check_door("lookup", access.user.id)
    except TooManyRequests as error:
        return _too_many(access, error, fragment)
    return _door_answer(access, fragment)


@bp.post("/o/<organiser>/events/<event>/door/undo")
@requires(Permission.UNDO_CHECK_IN, event=True)
def door_undo(access):
    fragment = "admin/_door_scan_answer.html"
    try:
        limits.check_door("scan", access.user.id)
    except TooManyRequests as error:
        return _too_many(access, error, fragment)
    form = UndoCheckInForm()
    check_in_id = db_id(form.check_in.data) if form.validate_on_submit() else None
    if check_in_id is None:
        return _door_answer(access, fragment, 400, error=_("Choose a check-in to undo."))
    try:
        undone = check_in.undo(access.event, check_in_id, sessions.actor())
    except StaffError as error:
        return _door_answer(access, fragment, error.status, error=error.message())
    if htmx.wants_fragment():
        return htmx.trigger(_door_answer(access, fragment, undone=undone), SCANNED_EVENT)
    flash(
        _("Check-in undone: %(name)s (%(code)s) can be scanned again.", name=undone.attendee, code=undone.ticket_code),
        "success",
    )
    return htmx.redirect(url_for("admin.door", organiser=access.organiser.slug, event=access.event.slug))


# --- the door list: the fallback on paper or in a file ------------------------------------------


def _door_list_or_refusal(access):
    try:
        limits.check_door("export", access.user.id)
    except TooManyRequests as error:
        return None, _door_answer(access, "admin/door.html", error.status, error=error.message())
    return check_in.door_list(access.event.id), None


@bp.get("/o/<organiser>/events/<event>/door/list")
@requires(Permission.CHECK_IN, event=True)
def door_list(access):
    tickets, refusal = _door_list_or_refusal(access)
    if refusal is not None:
        return refusal
    check_in.record_export(access.event, "print", len(tickets), sessions.actor())
    admissions = check_in.latest_admissions([t.id for t in tickets])
    return render_template(
        "admin/door_list.html",
        access=access,
        event=access.event,
        urls=_urls(access),
        now=utcnow(),
        tickets=tickets,
        admissions=admissions,
        counters=check_in.counters(access.event.id),
        format_ticket_code=format_ticket_code,
        door_status=check_in.door_status,
        door_status_words=check_in.door_status_words(),
    )


@bp.get("/o/<organiser>/events/<event>/door/list.csv")
@requires(Permission.CHECK_IN, event=True)
def door_list_csv(access):
    tickets, refusal = _door_list_or_refusal(access)
    if refusal is not None:
        return refusal
    event = access.event
    admissions = check_in.latest_admissions([t.id for t in tickets])
    header = [
        _("Last name"),
        _("First name"),
        _("Ticket type"),
        _("Ticket code"),
        _("Order"),
        _("Status"),
        _("Checked in (%(zone)s)", zone=event.timezone),
        _("Door"),
    ]
    words = check_in.door_status_words()
    zone = ZoneInfo(event.timezone)

    def rows():
        for ticket in tickets:
            admission = admissions.get(ticket.id)
            yield [
                ticket.attendee_last_name,
                ticket.attendee_first_name,
                ticket.ticket_type.name,
                format_ticket_code(ticket.code),
                ticket.order.code,
                words[check_in.door_status(ticket)],
                ticket.checked_in_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if ticket.checked_in_at else "",
                admission.door if admission is not None and ticket.checked_in_at else "",
            ]

    body = csv_export.render(header, rows())
    check_in.record_export(event, "csv", len(tickets), sessions.actor())
    response = make_response(body)
    response.mimetype = "text/csv"
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="door-list-{event.slug}.csv"'
    return response
