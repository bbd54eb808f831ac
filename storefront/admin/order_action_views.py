"""Actions on one order: refund (full, by amount, by tickets), cancel without a refund,
retry a failed refund, correct an attendee's name, resend the confirmation.

Each GET shows the order it acts on and the form; a POST without ``confirm`` shows what
will happen (the confirm step), a POST with it acts through one domain call
(``storefront.refunds``, ``storefront.order_actions``) that locks the order, re-checks
its state and writes the audit entry. An order (or refund) is looked up inside the URL's
event, so another organiser's is a 404. Bad input: the form again, a 4xx, nothing saved.
"""

from __future__ import annotations

from flask import abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import htmx, jobs, money, order_actions, outbox, refunds
from ..errors import StorefrontError, TooManyRequests
from ..extensions import db
from ..models import Order, Refund, Ticket, TicketStatus
from . import bp, sessions
from .forms import ButtonForm
from .permissions import Permission, requires

BASE = "/o/<organiser>/events/<event>/orders/<order_code>"


def _order(access, order_code: str) -> Order:
    order = db.session.execute(
        select(Order).where(Order.code == order_code, Order.event_id == access.event.id)
    ).scalar_one_or_none()
    if order is None:
        abort(404)
    return order


def _back(access, order: Order) -> str:
    """The order's page (orders-view) when the app has it, else this refund page."""
    endpoint = "admin.order" if "admin.order" in current_app.view_functions else "admin.refund_order"
    return url_for(endpoint, organiser=access.organiser.slug, event=access.event.slug, order_code=order.code)


def _page(access, order, action: str, status: int = 200, **context):
    return render_template(
        "admin/order_action.html",
        access=access,
        event=access.event,
        order=order,
        action=action,
        form=ButtonForm(formdata=None),
        committed_minor=refunds.committed_minor(order.id),
        refundable_minor=refunds.refundable_minor(order.id),
        refunds=refunds.of_order(order.id),
        money=money,
        **context,
    ), status


def _csrf_ok() -> bool:
    return ButtonForm().validate_on_submit()


@bp.route(BASE + "/refund", methods=["GET", "POST"])
@requires(Permission.MANAGE_ORDERS, event=True)
def refund_order(access, order_code):
    order = _order(access, order_code)
    if request.method == "GET":
        return _page(access, order, "refund")
    if not _csrf_ok():
        abort(400)
    form = request.form
    mode = form.get("mode", "full")
    reason = (form.get("reason") or "").strip()[: refunds.MAX_REASON]
    put_back = form.get("put_back") == "1"
    chosen = form.getlist("tickets")
    try:
        if mode not in ("full", "amount", "tickets"):
            raise refunds.RefundAmountInvalid(refunds.refundable_minor(order.id), order.currency)
        amount = None
        tickets: list[Ticket] = []
        if mode == "amount":
            amount = money.to_minor(form.get("amount") or "", order.currency)
            left = refunds.refundable_minor(order.id)
            if not 1 <= amount <= left:
                raise refunds.RefundAmountInvalid(left, order.currency)
        elif mode == "tickets":
            tickets = [t for t in order.tickets if t.code in chosen and t.status != TicketStatus.VOID.value]
            if not tickets or len(tickets) != len(set(chosen)):
                raise refunds.NoTicketsChosen()
            amount = sum(t.price_minor for t in tickets)
        if form.get("confirm") != "1":
            confirm = {"mode": mode, "amount": amount, "chosen": tickets, "reason": reason, "put_back": put_back}
            return _page(access, order, "refund_confirm", **confirm)
        actor = sessions.actor()
        if mode == "tickets":
            refunds.request_for_tickets(order.id, [t.id for t in tickets], put_back, reason, actor)
        else:
            expected = int(form.get("committed_minor") or -1)
            refunds.request(order.id, amount, reason, actor, expect_committed_minor=expected)
    except StorefrontError as error:
        db.session.rollback()
        return _page(access, db.session.get(Order, order.id), "refund", error.status, error=error.message())
    flash(_("Refund asked of Stripe."), "success")
    return htmx.redirect(_back(access, order))


@bp.post(BASE + "/refunds/<id:refund_id>/retry")
@requires(Permission.MANAGE_ORDERS, event=True)
def retry_refund(access, order_code, refund_id):
    order = _order(access, order_code)
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.order_id != order.id:
        abort(404)
    if not _csrf_ok():
        abort(400)
    try:
        refunds.retry(refund.id, sessions.actor())
    except StorefrontError as error:
        db.session.rollback()
        return _page(access, order, "refund", error.status, error=error.message())
    flash(_("The refund is asked of Stripe again."), "success")
    return htmx.redirect(_back(access, order))


@bp.route(BASE + "/cancel", methods=["GET", "POST"])
@requires(Permission.MANAGE_ORDERS, event=True)
def cancel_order(access, order_code):
    order = _order(access, order_code)
    if request.method == "GET":
        return _page(access, order, "cancel")
    if not _csrf_ok():
        abort(400)
    put_back = request.form.get("put_back") == "1"
    if request.form.get("confirm") != "1":
        return _page(access, order, "cancel_confirm", put_back=put_back)
    if order_actions.cancel(order.id, put_back, sessions.actor()):
        flash(_("The order is cancelled and its tickets are void."), "success")
    else:
        flash(_("This order was cancelled already."), "info")
    return htmx.redirect(_back(access, order))


@bp.route(BASE + "/tickets/<ticket_code>/name", methods=["GET", "POST"])
@requires(Permission.EDIT_ATTENDEES, event=True)
def rename_attendee(access, order_code, ticket_code):
    order = _order(access, order_code)
    ticket = next((t for t in order.tickets if t.code == ticket_code), None)
    if ticket is None:
        abort(404)
    if request.method == "GET":
        return _page(access, order, "rename", ticket=ticket)
    if not _csrf_ok():
        abort(400)
    try:
        changed = order_actions.rename_attendee(
            order.id, ticket.code, request.form.get("first_name"), request.form.get("last_name"), sessions.actor()
        )
    except StorefrontError as error:
        return _page(access, order, "rename", error.status, ticket=ticket, error=error.message())
    flash(_("Name corrected.") if changed else _("The ticket had this name already."), "success")
    return htmx.redirect(_back(access, order))


@bp.route(BASE + "/resend", methods=["GET", "POST"])
@requires(Permission.RESEND_MAIL, event=True)
def resend_confirmation(access, order_code):
    """The page is the confirm step (it says to whom and how often already); its form
    carries the number of resends it showed, so posting it twice sends one copy."""
    order = _order(access, order_code)
    if request.method == "GET":
        return _page(access, order, "resend", resends=outbox.resends_of(order.id))
    if not _csrf_ok():
        abort(400)
    try:
        seen = request.form.get("resends", "")
        if not seen.isdigit() or len(seen) > 6:
            raise order_actions.ResendFormInvalid()
        mail_id = order_actions.resend_confirmation(order.id, int(seen), sessions.actor())
    except StorefrontError as error:
        db.session.rollback()
        page, status = _page(
            access, order, "resend", error.status, resends=outbox.resends_of(order.id), error=error.message()
        )
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else {}
        return page, status, headers
    if mail_id is None:
        flash(_("The confirmation was sent again already."), "info")
    else:
        jobs.send_mail_soon(mail_id)
        flash(_("The confirmation is on its way again to %(email)s.", email=order.buyer_email), "success")
    return htmx.redirect(_back(access, order))


@bp.app_template_global()
def member_can(membership, permission) -> bool:
    """For the order partials, which other pages include with a membership in context."""
    from .permissions import allows

    return membership is not None and allows(membership.role, Permission(permission))
