"""Actions on one order: refund (full, by amount, by tickets), cancel without a refund,
retry a failed refund, correct an attendee's name, resend the confirmation.

Each GET shows the order it acts on and the form; a POST without ``confirm`` shows what
will happen (the confirm step), a POST with it acts through one domain call
(``storefront.refunds``, ``storefront.order_actions``) that locks the order, re-checks
its state and writes the audit entry. Refund, cancel and resend share that shape in
``_confirmed``; each states only how it reads its form and what it calls. An order (or
refund) is looked up inside the URL's event, so another organiser's is a 404. Bad input:
the form again, a 4xx, nothing saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from .. import htmx, jobs, money, order_actions, outbox, refunds
from ..audit import Actor
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


@dataclass(frozen=True)
class _Confirmed:
    """One confirmed action's parts, for ``_confirmed``: the page's name in
    ``order_action.html``; ``parse`` reads the posted form into what the member chose (or
    raises a ``StorefrontError``); ``act`` does it through one domain call and says what
    to flash, (category, words). With ``review``, a POST without ``confirm`` shows the
    ``<page>_confirm`` step; without, the GET page is the confirm step. ``context``: what
    the page shows besides the order."""

    page: str
    parse: Callable[[Order, MultiDict], dict]
    act: Callable[[Order, dict, Actor], tuple[str, str]]
    review: bool = True
    context: Callable[[Order], dict] = lambda order: {}


def _confirmed(access, order_code: str, step: _Confirmed):
    """GET: the form. POST: the CSRF check, then the review step or the action; any refusal
    is the form again with its message and status (a 429 with its Retry-After), after a
    rollback, so nothing is saved; done, a flash and back to the order."""
    order = _order(access, order_code)
    if request.method == "GET":
        return _page(access, order, step.page, **step.context(order))
    if not _csrf_ok():
        abort(400)
    try:
        choice = step.parse(order, request.form)
        if step.review and request.form.get("confirm") != "1":
            return _page(access, order, step.page + "_confirm", **step.context(order), **choice)
        category, words = step.act(order, choice, sessions.actor())
    except StorefrontError as error:
        db.session.rollback()
        order = db.session.get(Order, order.id)
        page, status = _page(access, order, step.page, error.status, error=error.message(), **step.context(order))
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else {}
        return page, status, headers
    flash(words, category)
    return htmx.redirect(_back(access, order))


def _count(raw: str | None) -> int:
    """A confirm form's hidden count of what it showed; a forged one is refused."""
    if raw is None or not raw.isdigit() or len(raw) > 12:
        raise order_actions.FormOutOfDate()
    return int(raw)


def _parse_refund(order: Order, form: MultiDict) -> dict:
    mode = form.get("mode", "full")
    chosen = form.getlist("tickets")
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
    choice = {
        "mode": mode,
        "amount": amount,
        "chosen": tickets,
        "reason": (form.get("reason") or "").strip()[: refunds.MAX_REASON],
        "put_back": form.get("put_back") == "1",
    }
    if form.get("confirm") == "1" and mode != "tickets":
        choice["seen_committed_minor"] = _count(form.get("committed_minor"))
    return choice


def _refund(order: Order, choice: dict, actor: Actor) -> tuple[str, str]:
    if choice["mode"] == "tickets":
        refunds.request_for_tickets(
            order.id, [t.id for t in choice["chosen"]], choice["put_back"], choice["reason"], actor
        )
    else:
        refunds.request(
            order.id, choice["amount"], choice["reason"], actor, expect_committed_minor=choice["seen_committed_minor"]
        )
    return "success", _("Refund asked of Stripe.")


REFUND = _Confirmed("refund", _parse_refund, _refund)


@bp.route(BASE + "/refund", methods=["GET", "POST"])
@requires(Permission.MANAGE_ORDERS, event=True)
def refund_order(access, order_code):
    return _confirmed(access, order_code, REFUND)


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


def _cancel(order: Order, choice: dict, actor: Actor) -> tuple[str, str]:
    if order_actions.cancel(order.id, choice["put_back"], actor):
        return "success", _("The order is cancelled and its tickets are void.")
    return "info", _("This order was cancelled already.")


CANCEL = _Confirmed("cancel", lambda order, form: {"put_back": form.get("put_back") == "1"}, _cancel)


@bp.route(BASE + "/cancel", methods=["GET", "POST"])
@requires(Permission.MANAGE_ORDERS, event=True)
def cancel_order(access, order_code):
    return _confirmed(access, order_code, CANCEL)


def _resend(order: Order, choice: dict, actor: Actor) -> tuple[str, str]:
    mail_id = order_actions.resend_confirmation(order.id, choice["resends"], actor)
    if mail_id is None:
        return "info", _("The confirmation was sent again already.")
    jobs.send_mail_soon(mail_id)
    return "success", _("The confirmation is on its way again to %(email)s.", email=order.buyer_email)


# The page is the confirm step (to whom, how often already); its form carries the number of
# resends it showed, so posting it twice sends one copy.
RESEND = _Confirmed(
    "resend",
    lambda order, form: {"resends": _count(form.get("resends"))},
    _resend,
    review=False,
    context=lambda order: {"resends": outbox.resends_of(order.id)},
)


@bp.route(BASE + "/resend", methods=["GET", "POST"])
@requires(Permission.RESEND_MAIL, event=True)
def resend_confirmation(access, order_code):
    return _confirmed(access, order_code, RESEND)


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


@bp.app_template_global()
def member_can(membership, permission) -> bool:
    """For the order partials, which other pages include with a membership in context."""
    from .permissions import allows

    return membership is not None and allows(membership.role, Permission(permission))
