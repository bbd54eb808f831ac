"""The reconciliation inbox: what reconcile found for the organiser's events, the last
runs, and dismissing an item with a note (``storefront.reconcile`` does the work).

Runs are global (reconcile looks at the whole shop's Stripe account); items belong to
the event they concern, so a member sees only the items of events they may see. The
list needs ``VIEW_ORDERS``; an action ``MANAGE_ORDERS``.
"""

from __future__ import annotations

from flask import abort, flash, render_template, request, url_for
from flask_babel import gettext as _

from .. import htmx, order_search, reconcile
from . import bp, sessions
from .permissions import Permission, requires


def _page(access, status: int = 200, error: str | None = None):
    return render_template(
        "admin/reconciliation.html",
        access=access,
        items=reconcile.open_items(order_search.visible_event_ids(access.membership)),
        runs=reconcile.last_runs(),
        may_act=access.can(Permission.MANAGE_ORDERS),
        error=error,
    ), status


@bp.get("/o/<organiser>/reconciliation")
@requires(Permission.VIEW_ORDERS)
def reconciliation(access):
    return _page(access)


@bp.post("/o/<organiser>/reconciliation/<id:item_id>/dismiss")
@requires(Permission.MANAGE_ORDERS)
def dismiss_reconcile_item(access, item_id: int):
    item = reconcile.item_of(order_search.visible_event_ids(access.membership), item_id)
    if item is None:
        abort(404)
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
    return htmx.redirect(url_for("admin.reconciliation", organiser=access.organiser.slug))
