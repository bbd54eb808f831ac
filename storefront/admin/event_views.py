"""The events area: the events list, an event's page, creating and editing events and
their ticket types, publishing, cancelling, duplicating, previewing, the cover image.

Reading needs ``VIEW_ORGANISER``, every change ``EDIT_EVENTS``; an event (and a ticket
type inside it) is looked up within the member's organiser and allowed events, so
anything else is a 404. Each change is one domain call (``storefront.events``,
``storefront.ticket_types``) that writes its audit entry; a refusal re-renders the form
with the message beside its field and a 4xx, nothing saved.
"""

from __future__ import annotations

from flask import abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _

from .. import cover_images, exports, htmx, limits, request_body
from .. import events as event_admin
from .. import ticket_types as tt_admin
from ..cart import CartView
from ..catalog import availabilities, event_availability
from ..errors import StorefrontError
from ..models import utcnow
from ..staff_errors import StaffError
from . import bp, sessions
from .event_forms import CoverForm, EventForm, MoveForm, TicketTypeForm
from .forms import attach
from .permissions import Permission, requires


def _event_url(access, event=None) -> str:
    return url_for("admin.event", organiser=access.organiser.slug, event=(event or access.event).slug)


@bp.get("/o/<organiser>/events")
@requires(Permission.VIEW_ORGANISER)
def events(access):
    return render_template("admin/events.html", access=access, summaries=event_admin.summaries(access.membership))


def _event_form_page(access, form, status: int = 200, event=None):
    return render_template("admin/event_form.html", access=access, form=form, event=event), status


@bp.route("/o/<organiser>/events/new", methods=["GET", "POST"])
@requires(Permission.EDIT_EVENTS)
def new_event(access):
    if request.method == "GET":
        return _event_form_page(access, EventForm(formdata=None))
    form = EventForm()
    if not form.validate_on_submit():
        return _event_form_page(access, form, 400)
    try:
        event = event_admin.create_event(access.organiser.id, form.fields(), sessions.actor(), access.membership)
    except StaffError as error:
        attach(form, error)
        return _event_form_page(access, form, error.status)
    flash(_("%(title)s is saved as a draft. Add its ticket types, then publish it.", title=event.title), "success")
    return htmx.redirect(_event_url(access, event))


def _event_page(access, status: int = 200, *, error: str | None = None, tt_form=None, cover_form=None):
    event = access.event
    now = utcnow()
    return render_template(
        "admin/event.html",
        access=access,
        event=event,
        summary=event_admin.summary_of(event, now),
        export_labels=exports.labels(),
        error=error,
        tt_form=tt_form or TicketTypeForm(formdata=None, max_per_order=10),
        cover_form=cover_form or CoverForm(formdata=None),
    ), status


@bp.get("/o/<organiser>/events/<event>")
@requires(Permission.VIEW_ORGANISER, event=True)
def event(access):
    return _event_page(access)


@bp.route("/o/<organiser>/events/<event>/edit", methods=["GET", "POST"])
@requires(Permission.EDIT_EVENTS, event=True)
def edit_event(access):
    if request.method == "GET":
        return _event_form_page(access, EventForm.of(access.event), event=access.event)
    form = EventForm()
    if not form.validate_on_submit():
        return _event_form_page(access, form, 400, event=access.event)
    try:
        changed = event_admin.update_event(access.organiser.id, access.event.id, form.fields(), sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _event_form_page(access, form, error.status, event=access.event)
    flash(_("Changes saved."), "success")
    return htmx.redirect(_event_url(access, changed))


def _lifecycle(access, change, done: str):
    try:
        changed = change(access.organiser.id, access.event.id, sessions.actor())
    except StaffError as error:
        return _event_page(access, error.status, error=error.message())
    flash(done, "success")
    return htmx.redirect(_event_url(access, changed))


@bp.post("/o/<organiser>/events/<event>/publish")
@requires(Permission.EDIT_EVENTS, event=True)
def publish_event(access):
    return _lifecycle(access, event_admin.publish, _("Published: buyers can see it in the shop."))


@bp.post("/o/<organiser>/events/<event>/unpublish")
@requires(Permission.EDIT_EVENTS, event=True)
def unpublish_event(access):
    return _lifecycle(access, event_admin.unpublish, _("Taken off the shop: it is a draft again."))


@bp.post("/o/<organiser>/events/<event>/duplicate")
@requires(Permission.EDIT_EVENTS, event=True)
def duplicate_event(access):
    return _lifecycle(
        access,
        lambda organiser_id, event_id, actor: event_admin.duplicate(organiser_id, event_id, actor, access.membership),
        _("This is the copy, a draft. Change what differs, then publish it."),
    )


@bp.get("/o/<organiser>/events/<event>/preview")
@requires(Permission.VIEW_ORGANISER, event=True)
def preview_event(access):
    """The event page as a buyer would see it, draft or not; only members reach it, and
    nothing on it can be bought."""
    event = access.event
    now = utcnow()
    low = current_app.config["LOW_STOCK_THRESHOLD"]
    per_type = availabilities(event.ticket_types, low, now)
    return render_template(
        "shop/event.html",
        event=event,
        availability=per_type,
        event_availability=event_availability(event, per_type, low, now),
        cart=CartView(None, False),
        now=now,
        preview=True,
        back_to=_event_url(access),
    )


@bp.post("/o/<organiser>/events/<event>/cover")
@request_body.larger_body(lambda config: config["COVER_IMAGE_MAX_BYTES"] + request_body.MULTIPART_ENVELOPE)
@requires(Permission.EDIT_EVENTS, event=True)
def upload_cover(access):
    form = CoverForm()
    if not form.validate_on_submit():
        return _event_page(access, 400, cover_form=form)
    try:
        limits.check_cover_upload()
        name = cover_images.store(form.image.data.read(current_app.config["COVER_IMAGE_MAX_BYTES"] + 1))
        event_admin.set_cover(access.organiser.id, access.event.id, name, sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _event_page(access, error.status, cover_form=form)
    except StorefrontError as error:  # too many uploads
        return _event_page(access, error.status, error=error.message())
    flash(_("Cover image saved."), "success")
    return htmx.redirect(_event_url(access))


@bp.post("/o/<organiser>/events/<event>/cover/remove")
@requires(Permission.EDIT_EVENTS, event=True)
def remove_cover(access):
    return _lifecycle(
        access,
        lambda organiser_id, event_id, actor: event_admin.set_cover(organiser_id, event_id, None, actor),
        _("Cover image removed."),
    )


# --- ticket types ------------------------------------------------------------------------------


def _ticket_type_or_404(access, ticket_type_id: int):
    found = tt_admin.find(access.event, ticket_type_id)
    if found is None:
        abort(404)
    return found


@bp.post("/o/<organiser>/events/<event>/ticket-types")
@requires(Permission.EDIT_EVENTS, event=True)
def new_ticket_type(access):
    form = TicketTypeForm()
    if not form.validate_on_submit():
        return _event_page(access, 400, tt_form=form)
    try:
        created = tt_admin.create(access.organiser.id, access.event.id, form.fields(), sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _event_page(access, error.status, tt_form=form)
    flash(_("Ticket type %(name)s added.", name=created.name), "success")
    return htmx.redirect(_event_url(access) + "#ticket-types")


def _ticket_type_form_page(access, tt, form, status: int = 200):
    return render_template("admin/ticket_type_form.html", access=access, event=access.event, tt=tt, form=form), status


@bp.route("/o/<organiser>/events/<event>/ticket-types/<id:ticket_type_id>", methods=["GET", "POST"])
@requires(Permission.EDIT_EVENTS, event=True)
def edit_ticket_type(access, ticket_type_id: int):
    tt = _ticket_type_or_404(access, ticket_type_id)
    if request.method == "GET":
        return _ticket_type_form_page(access, tt, TicketTypeForm.of(tt, access.event))
    form = TicketTypeForm()
    if not form.validate_on_submit():
        return _ticket_type_form_page(access, tt, form, 400)
    try:
        tt_admin.update(access.organiser.id, access.event.id, tt.id, form.fields(), sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _ticket_type_form_page(access, tt, form, error.status)
    flash(_("Ticket type saved."), "success")
    return htmx.redirect(_event_url(access) + "#ticket-types")


def _ticket_types_answer(access, status: int = 200, error: str | None = None):
    """After a reorder or a hide: the ticket types' table for htmx, the event page otherwise."""
    if htmx.wants_fragment():
        return htmx.render(
            "admin/event.html",
            "admin/_ticket_types.html",
            status=status,
            access=access,
            event=access.event,
            error=error,
        )
    if error:
        return _event_page(access, status, error=error)
    return htmx.redirect(_event_url(access) + "#ticket-types")


@bp.post("/o/<organiser>/events/<event>/ticket-types/<id:ticket_type_id>/move")
@requires(Permission.EDIT_EVENTS, event=True)
def move_ticket_type(access, ticket_type_id: int):
    tt = _ticket_type_or_404(access, ticket_type_id)
    form = MoveForm()
    if not form.validate_on_submit():
        return _ticket_types_answer(access, 400, error=_("Move a ticket type up or down."))
    try:
        direction = -1 if form.direction.data == "up" else 1
        tt_admin.move(access.organiser.id, access.event.id, tt.id, direction, sessions.actor())
    except StaffError as error:
        return _ticket_types_answer(access, error.status, error=error.message())
    return _ticket_types_answer(access)


@bp.post("/o/<organiser>/events/<event>/ticket-types/<id:ticket_type_id>/hide")
@requires(Permission.EDIT_EVENTS, event=True)
def hide_ticket_type(access, ticket_type_id: int):
    return _set_hidden(access, ticket_type_id, True)


@bp.post("/o/<organiser>/events/<event>/ticket-types/<id:ticket_type_id>/show")
@requires(Permission.EDIT_EVENTS, event=True)
def show_ticket_type(access, ticket_type_id: int):
    return _set_hidden(access, ticket_type_id, False)


def _set_hidden(access, ticket_type_id: int, hidden: bool):
    tt = _ticket_type_or_404(access, ticket_type_id)
    try:
        tt_admin.set_hidden(access.organiser.id, access.event.id, tt.id, hidden, sessions.actor())
    except StaffError as error:
        return _ticket_types_answer(access, error.status, error=error.message())
    return _ticket_types_answer(access)


@bp.post("/o/<organiser>/events/<event>/ticket-types/<id:ticket_type_id>/delete")
@requires(Permission.EDIT_EVENTS, event=True)
def delete_ticket_type(access, ticket_type_id: int):
    tt = _ticket_type_or_404(access, ticket_type_id)
    try:
        tt_admin.delete(access.organiser.id, access.event.id, tt.id, sessions.actor())
    except StaffError as error:
        return _event_page(access, error.status, error=error.message())
    flash(_("Ticket type %(name)s deleted.", name=tt.name), "success")
    return htmx.redirect(_event_url(access) + "#ticket-types")
