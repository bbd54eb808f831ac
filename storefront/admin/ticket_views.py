"""An event's tickets, found by their code, and reissuing one (a new secret and code).

The order pages come later (issue 11); until then a ticket is reached by typing its code
on the event's ticket page. Everything is looked up within the event of the URL, which
``requires(..., event=True)`` found among the member's organiser's events they may see:
another event's ticket code is "not found".
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import tickets
from ..staff_errors import StaffError
from . import bp, sessions
from .forms import ButtonForm, TicketLookupForm
from .permissions import Permission, requires


def _ticket_url(access, ticket) -> str:
    return url_for("admin.ticket", organiser=access.organiser.slug, event=access.event.slug, ticket_code=ticket.code)


@bp.get("/o/<organiser>/events/<event>/tickets")
@requires(Permission.VIEW_ORDERS, event=True)
def find_ticket(access):
    form = TicketLookupForm(formdata=request.args)
    if "code" not in request.args:
        return render_template("admin/ticket_lookup.html", access=access, form=TicketLookupForm(formdata=None))
    if not form.validate():
        return render_template("admin/ticket_lookup.html", access=access, form=form), 400
    found = tickets.ticket_of_event(access.event.id, form.code.data)
    if found is None:
        form.code.errors = [_("No ticket of this event has that code.")]
        return render_template("admin/ticket_lookup.html", access=access, form=form), 404
    return redirect(_ticket_url(access, found), code=303)


@bp.get("/o/<organiser>/events/<event>/tickets/<ticket_code>")
@requires(Permission.VIEW_ORDERS, event=True)
def ticket(access, ticket_code: str):
    found = tickets.ticket_of_event(access.event.id, ticket_code)
    if found is None:
        abort(404)
    return render_template("admin/ticket.html", access=access, ticket=found, form=ButtonForm())


@bp.post("/o/<organiser>/events/<event>/tickets/<ticket_code>/reissue")
@requires(Permission.REISSUE_TICKETS, event=True)
def reissue_ticket(access, ticket_code: str):
    found = tickets.ticket_of_event(access.event.id, ticket_code)
    if found is None:
        abort(404)
    form = ButtonForm()
    if not form.validate_on_submit():
        return render_template("admin/ticket.html", access=access, ticket=found, form=form), 400
    try:
        reissued = tickets.reissue(access.event.id, found.code, sessions.actor())
    except StaffError as error:
        return render_template("admin/ticket.html", access=access, ticket=found, form=form, error=error.message()), (
            error.status
        )
    flash(
        _(
            "Ticket reissued: its new code is %(code)s. The old QR code and code no longer work; the buyer's order "
            "page and PDF show the new ones.",
            code=tickets.format_ticket_code(reissued.code),
        ),
        "success",
    )
    return redirect(_ticket_url(access, reissued), code=303)
