"""The reconciliation inbox: what reconcile found for the organiser's events, the last
runs, and the actions on an item: fulfil, refund, dismiss with a note; and asking for a
run (``storefront.reconcile`` does the work, ``storefront.jobs`` runs it).

Runs are global (reconcile looks at the whole shop's Stripe account); items belong to
the event they concern, so a member sees only the items of events they may see, and
items with no event (a payment at Stripe no attempt of ours names) are in no
organiser's inbox. The list needs ``VIEW_ORDERS``; an action or a run ``MANAGE_ORDERS``.
"""

from __future__ import annotations

import logging

from flask import abort, flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import attempts, htmx, jobs, order_search, reconcile
from ..errors import StorefrontError
from . import bp, sessions
from .permissions import Permission, requires

log = logging.getLogger(__name__)

KIND_LABELS = {
    "amount_mismatch": _l("Paid another amount than we asked"),
    "paid_without_order": _l("Paid, but we have no order"),
    "no_attempt": _l("A payment we cannot attribute"),
    "order_not_paid": _l("An order Stripe does not call paid"),
    "open_at_stripe": _l("Still open at Stripe, ended here"),
}
STRIPE_STATUS_LABELS = {
    "complete/paid": _l("Paid"),
    "complete/unpaid": _l("Completed, payment still processing"),
    "open/unpaid": _l("Open, not paid"),
    "expired/unpaid": _l("Expired, not paid"),
}


def _running() -> bool:
    return reconcile.run_requested_until() is not None or reconcile.run_in_progress()


def _page(access, status: int = 200, error: str | None = None):
    return htmx.render(
        "admin/reconciliation.html",
        "admin/_reconcile_inbox.html",
        status=status,
        access=access,
        items=reconcile.open_items(order_search.visible_event_ids(access.membership)),
        runs=reconcile.last_runs(),
        running=_running(),
        may_act=access.can(Permission.MANAGE_ORDERS),
        actions_of=reconcile.actions_of,
        error=error,
        **_labels(),
    )


def _labels() -> dict:
    return {
        "kind_labels": KIND_LABELS,
        "stripe_labels": STRIPE_STATUS_LABELS,
        "attempt_labels": attempts.status_words(),
    }


def _confirm(access, item, action: str):
    """The confirm step of an action (the POST without ``confirm``): what it will do, nothing done."""
    if item.status != reconcile.OPEN:
        return _page(access, 409, reconcile.ItemNotOpen().message())
    if action not in reconcile.actions_of(item):
        return _page(access, 409, reconcile.ActionNotOffered().message())
    return render_template("admin/reconcile_confirm.html", access=access, item=item, action=action, **_labels())


def _back(access):
    return htmx.redirect(url_for("admin.reconciliation", organiser=access.organiser.slug))


def _item(access, item_id: int):
    item = reconcile.item_of(order_search.visible_event_ids(access.membership), item_id)
    if item is None:
        abort(404)
    return item


@bp.get("/o/<organiser>/reconciliation")
@requires(Permission.VIEW_ORDERS)
def reconciliation(access):
    response = _page(access)
    if htmx.wants_fragment() and not _running():
        response.status_code = htmx.STOP_POLLING  # the inbox polls while a run is asked for or works
    return response


@bp.post("/o/<organiser>/reconciliation/<id:item_id>/dismiss")
@requires(Permission.MANAGE_ORDERS)
def dismiss_reconcile_item(access, item_id: int):
    item = _item(access, item_id)
    note = (request.form.get("note") or "").strip()
    if not note:
        return _page(access, 422, _("Say in a note why this item needs nothing more."))
    if len(note) > reconcile.NOTE_MAX:
        return _page(access, 422, _("The note is too long (at most %(num)d characters).", num=reconcile.NOTE_MAX))
    try:
        reconcile.dismiss(item.id, note, sessions.actor(), access.organiser.id)
    except reconcile.ItemNotOpen:
        flash(_("That item was dealt with already."), "info")
    else:
        flash(_("Dismissed."), "success")
    return _back(access)


@bp.post("/o/<organiser>/reconciliation/<id:item_id>/fulfil")
@requires(Permission.MANAGE_ORDERS)
def fulfil_reconcile_item(access, item_id: int):
    item = _item(access, item_id)
    if request.form.get("confirm") != "1":
        return _confirm(access, item, reconcile.FULFIL)
    try:
        reconcile.fulfil_item(item.id, sessions.actor(), access.organiser.id)
    except StorefrontError as error:
        return _page(access, error.status, error.message())
    flash(_("Fulfilled through the normal order path."), "success")
    return _back(access)


@bp.post("/o/<organiser>/reconciliation/<id:item_id>/refund")
@requires(Permission.MANAGE_ORDERS)
def refund_reconcile_item(access, item_id: int):
    item = _item(access, item_id)
    if request.form.get("confirm") != "1":
        return _confirm(access, item, reconcile.REFUND)
    try:
        refund_id = reconcile.refund_item(item.id, sessions.actor(), access.organiser.id)
    except StorefrontError as error:
        return _page(access, error.status, error.message())
    flash(_("Refunded at Stripe (%(refund)s).", refund=refund_id), "success")
    return _back(access)


@bp.post("/o/<organiser>/reconciliation/runs")
@requires(Permission.MANAGE_ORDERS)
def start_reconcile_run(access):
    actor = sessions.actor()
    try:
        holder = reconcile.request_run(actor, access.organiser.id)
    except reconcile.RunAlreadyAsked as error:
        return _page(access, error.status, error.message())
    try:
        jobs.reconcile_run_soon(actor.name, holder)
    except Exception:
        log.exception("reconcile run asked by %s could not be queued", actor.name)
        reconcile.finish_request(holder)
        return _page(access, 503, _("The job queue could not be reached: no run was started. Try again later."))
    flash(_("A run was asked for: it starts as soon as a worker is free."), "success")
    return _back(access)
