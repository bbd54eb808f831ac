"""Cancelling an event: the confirm step, starting the run, watching its progress, and
retrying a refund that failed (``storefront.cancellations`` does the work).

Cancelling an event with paid orders needs both ``EDIT_EVENTS`` (it ends the event) and
``MANAGE_ORDERS`` (it refunds every order): a role that may edit events but not touch
money must not refund a whole event by way of cancelling it. (Today every role with
EDIT_EVENTS also has MANAGE_ORDERS; the check keeps that true if roles change.) The
progress page needs ``VIEW_ORDERS``; a retry ``MANAGE_ORDERS``.
"""

from __future__ import annotations

from flask import abort, flash, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import cancellations, htmx, jobs, refunds
from .. import events as event_admin
from ..extensions import db
from ..models import EventStatus, Order
from ..staff_errors import StaffError
from . import bp, sessions
from .permissions import Permission, requires


def _progress_url(access) -> str:
    return url_for("admin.event_cancellation", organiser=access.organiser.slug, event=access.event.slug)


def _confirm_page(access, status: int = 200, error: str | None = None):
    count, total = cancellations.paid_orders_of(access.event.id)
    return render_template(
        "admin/cancel_event.html",
        access=access,
        event=access.event,
        paid_count=count,
        refund_total=total,
        may_refund=access.can(Permission.MANAGE_ORDERS),
        error=error,
    ), status


@bp.route("/o/<organiser>/events/<event>/cancel", methods=["GET", "POST"])
@requires(Permission.EDIT_EVENTS, event=True)
def cancel_event(access):
    event = access.event
    if event.status == EventStatus.CANCELLED.value:
        # A double click, or the page reloaded: the run is there to watch, nothing starts again.
        if cancellations.of_event(event.id) is not None:
            return htmx.redirect(_progress_url(access))
    if request.method == "GET":
        return _confirm_page(access)
    count, _total = cancellations.paid_orders_of(event.id)
    if count and not access.can(Permission.MANAGE_ORDERS):
        return _confirm_page(
            access, 403, _("Cancelling this event refunds its paid orders: that needs the permission to manage orders.")
        )
    try:
        event_admin.cancel(access.organiser.id, event.id, sessions.actor())
    except StaffError as error:
        if cancellations.of_event(event.id) is not None:
            return htmx.redirect(_progress_url(access))
        return _confirm_page(access, error.status, error.message())
    run = cancellations.of_event(event.id)
    jobs.cancel_event_soon(run.id)
    flash(
        _("Cancelled: its sales have stopped.") + (" " + _("Its paid orders are being refunded.") if count else ""),
        "success",
    )
    return htmx.redirect(_progress_url(access))


def _progress_context(access):
    run = cancellations.of_event(access.event.id)
    if run is None:
        return {"access": access, "event": access.event, "run": None}
    return {
        "access": access,
        "event": access.event,
        "run": run,
        "progress": cancellations.progress(run.id),
        "failed": cancellations.failed_refunds(run.id),
        "may_retry": access.can(Permission.MANAGE_ORDERS),
    }


@bp.get("/o/<organiser>/events/<event>/cancellation")
@requires(Permission.VIEW_ORDERS, event=True)
def event_cancellation(access):
    context = _progress_context(access)
    response = htmx.render("admin/event_cancellation.html", "admin/_cancellation_progress.html", **context)
    if htmx.wants_fragment() and context["run"] is not None and context["progress"].finished:
        response.status_code = htmx.STOP_POLLING
    return response


@bp.post("/o/<organiser>/events/<event>/cancellation/orders/<order_code>/retry")
@requires(Permission.MANAGE_ORDERS, event=True)
def retry_cancellation_refund(access, order_code: str):
    order = db.session.execute(
        select(Order).where(Order.event_id == access.event.id, Order.code == order_code)
    ).scalar_one_or_none()
    if order is None:
        abort(404)
    run = cancellations.of_event(access.event.id)
    try:
        if run is None:
            raise refunds.RefundNotRetryable()
        cancellations.retry(run.id, order.id, sessions.actor())
    except refunds.RefundNotRetryable as error:
        context = _progress_context(access)
        return render_template("admin/event_cancellation.html", error=error.message(), **context), 409
    flash(_("The refund of order %(code)s is tried again.", code=order.code), "success")
    return htmx.redirect(_progress_url(access))
