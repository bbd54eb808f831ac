"""Orders in the back office, read side: the order list (one event's, and every event's
the member may see), an order's page with its payment attempts' timeline, and the
attempts of an event that never became an order.

The lists search as the organiser types (htmx swaps the results table; without
JavaScript the form submits) and page by keyset ("Newer"/"Older"). A parameter that does
not parse is ignored and the page says so; nothing here is a 500. The queries are in
``storefront.order_search``.
"""

from __future__ import annotations

from flask import abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import failure_reasons, htmx, order_search, outbox, refunds, teams
from ..failure_reasons import REASON_LABELS, Reason
from ..models import AttemptStatus, OrderStatus
from ..order_search import Problem
from ..payments import gateway
from . import bp
from .permissions import Permission, requires


def _problem_words(problem: Problem) -> str:
    return {
        Problem.STATUS: _("That status is not one we know; it was left out."),
        Problem.TICKET_TYPE: _("That ticket type is not one of this event's; it was left out."),
        Problem.DATE_FROM: _("The start date is not a date (use YYYY-MM-DD); it was left out."),
        Problem.DATE_TO: _("The end date is not a date (use YYYY-MM-DD); it was left out."),
        Problem.CURSOR: _("That page link is not valid; showing the newest instead."),
        Problem.REASON: _("That failure reason is not one we know; it was left out."),
        Problem.QUERY: _("The search was cut to 100 characters."),
    }[problem]


ORDER_STATUS_LABELS = {
    OrderStatus.PAID: _l("Paid"),
    OrderStatus.PARTIALLY_REFUNDED: _l("Partly refunded"),
    OrderStatus.REFUNDED: _l("Refunded"),
    OrderStatus.CANCELLED: _l("Cancelled"),
}


def attempt_status_labels() -> dict[str, str]:
    return {
        AttemptStatus.CREATING: _("Starting"),
        AttemptStatus.OPEN: _("Open (buyer on the payment page)"),
        AttemptStatus.PROCESSING: _("Bank debit processing"),
        AttemptStatus.PAID: _("Paid"),
        AttemptStatus.EXPIRED: _("Expired"),
        AttemptStatus.FAILED: _("Failed"),
        AttemptStatus.REFUNDING: _("Refunding (paid, no tickets left)"),
        AttemptStatus.REFUNDED: _("Refunded (paid, no tickets left)"),
        AttemptStatus.AMOUNT_MISMATCH: _("Paid another amount: for a person"),
    }


def stripe_dashboard_url(payment_intent_id: str | None) -> str | None:
    """Where the payment is in Stripe's dashboard: the live one with a live key; the test
    one with a test key against the real Stripe; none for a sandbox (nothing to see there)."""
    if not payment_intent_id:
        return None
    if gateway.get_gateway().live:
        return f"https://dashboard.stripe.com/payments/{payment_intent_id}"
    key = current_app.config.get("STRIPE_SECRET_KEY") or ""
    if key.startswith("sk_test_") and not current_app.config.get("STRIPE_API_BASE"):
        if not current_app.config.get("DEMO_MODE"):
            return f"https://dashboard.stripe.com/test/payments/{payment_intent_id}"
    return None


def _page_links(page, filters_args: dict[str, str]) -> dict[str, str | None]:
    values = {**(request.view_args or {}), **filters_args}

    def link(**cursor: str) -> str:
        return url_for(request.endpoint, **cursor, **values)

    return {
        "newer": link(after=page.newer.encode()) if page.newer else None,
        "older": link(before=page.older.encode()) if page.older else None,
    }


def _render_orders(access, event):
    ticket_types = event.ticket_types if event is not None else None
    filters = order_search.filters_from(request.args, ticket_types)
    paging, paging_problems = order_search.paging_from(request.args)
    page = order_search.orders(access.membership, filters, paging, event=event)
    problems = [_problem_words(p) for p in [*filters.problems, *paging_problems]]
    return htmx.render(
        "admin/orders.html",
        "admin/_orders_results.html",
        access=access,
        event=event,
        filters=filters,
        results=page,
        links=_page_links(page, filters.as_args()),
        problems=problems,
        ticket_types=ticket_types,
        statuses=ORDER_STATUS_LABELS,
        action=url_for(request.endpoint, **(request.view_args or {})),
    )


@bp.get("/o/<organiser>/orders")
@requires(Permission.VIEW_ORDERS)
def orders(access):
    return _render_orders(access, None)


@bp.get("/o/<organiser>/events/<event>/orders")
@requires(Permission.VIEW_ORDERS, event=True)
def event_orders(access):
    return _render_orders(access, access.event)


@bp.get("/o/<organiser>/events/<event>/orders/<order_code>")
@requires(Permission.VIEW_ORDERS, event=True)
def order(access, order_code: str):
    found = order_search.order_of_event(access.event.id, order_code)
    if found is None:
        abort(404)
    return htmx.render(
        "admin/order.html",
        "admin/order.html",
        access=access,
        membership=access.membership,
        organiser=access.organiser,
        event=access.event,
        order=found,
        mails=outbox.mails_of_order(found.id),
        refunds=refunds.of_order(found.id),
        history=order_search.audit_history(found),
        timelines=order_search.timelines(found.cart_id),
        statuses=ORDER_STATUS_LABELS,
        attempt_statuses=attempt_status_labels(),
        dashboard_url=stripe_dashboard_url,
    )


@bp.get("/o/<organiser>/events/<event>/attempts")
@requires(Permission.VIEW_ORDERS, event=True)
def event_attempts(access):
    filters = order_search.attempt_filters_from(request.args)
    paging, paging_problems = order_search.paging_from(request.args)
    page = order_search.attempts_without_order(access.event.id, filters, paging)
    problems = [_problem_words(p) for p in [*filters.problems, *paging_problems]]
    labels = attempt_status_labels()
    return htmx.render(
        "admin/attempts.html",
        "admin/attempts.html",
        access=access,
        event=access.event,
        filters=filters,
        results=page,
        links=_page_links(page, filters.as_args()),
        problems=problems,
        statuses={s: labels[s] for s in order_search.UNORDERED_STATUSES},
        reasons=REASON_LABELS,
        Reason=Reason,
        of_attempt=failure_reasons.of_attempt,
        visible_events=teams.visible_events,
    )
