"""Thin views: parse the request, call one domain function, render."""

from __future__ import annotations

import time

from flask import abort, current_app, flash, render_template, request, session, url_for
from flask_babel import gettext as _

from .. import cart as carts
from .. import cart_news, catalog, htmx, limits, parsing, ticket_calendar, ticket_pdf
from .. import checkout as checkouts
from .. import lost_tickets as lost
from ..cart_changes import change_cart
from ..errors import (
    AttendeeNameMissing,
    AttendeeNameUnprintable,
    CartLapsed,
    InvalidEmail,
    InvalidQuantity,
    StorefrontError,
    TooManyRequests,
    UnknownTicketType,
)
from ..links import public_url
from ..models import utcnow
from . import bp
from .forms import LostTicketsForm

CART_KEY = "cart"
# The Checkout Session this browser started: only it is shown that payment (the
# success page), whatever cart token another browser holds.
CHECKOUT_KEY = "checkout"
# The checkout form as typed when the hold lapsed before a payment could start.
DRAFT_KEY = "checkout_draft"


def _cart_token() -> str | None:
    return session.get(CART_KEY)


def _event_context(event, cart_view, now):
    return {**_event_availability(event, now), "cart": cart_view, "now": now}


def _event_availability(event, now) -> dict:
    """Each ticket type's availability, and the event's as a whole (its Add button)."""
    low = current_app.config["LOW_STOCK_THRESHOLD"]
    per_type = catalog.availabilities(event.ticket_types, low, now)
    return {
        "event": event,
        "availability": per_type,
        "event_availability": catalog.event_availability(event, per_type, low, now),
    }


@bp.app_context_processor
def _header_cart_count():
    """The header's cart count on a page that does not show the cart (the order, the
    success page, an error page...): read only when the header asks, so the pages that
    have the cart pay no second query."""

    def header_cart_count() -> int:
        return carts.view_cart(_cart_token()).count

    return {"header_cart_count": header_cart_count}


@bp.get("/")
def events():
    now = utcnow()
    upcoming = catalog.upcoming_events(now)
    low = current_app.config["LOW_STOCK_THRESHOLD"]
    # From the ticket types loaded with the events: no query per event.
    states = {event.id: catalog.event_availability(event, None, low, now) for event in upcoming}
    return render_template(
        "shop/events.html",
        events=upcoming,
        availability=states,
        cart=carts.view_cart(_cart_token(), now),
        now=now,
    )


@bp.get("/events/<slug:slug>")
def event(slug: str):
    event = catalog.published_event(slug)
    if event is None:
        abort(404)
    now = utcnow()
    return render_template("shop/event.html", **_event_context(event, carts.view_cart(_cart_token(), now), now))


@bp.post("/events/<slug:slug>/cart")
def add_to_cart(slug: str):
    before = cart_news.lines_of(carts.view_cart(_cart_token())) if htmx.wants_fragment() else None
    try:
        limits.check_add_to_cart()
        change = carts.AddTickets(slug, _parse_add_form())
        session[CART_KEY] = change_cart(_cart_token(), change, allowance=limits.for_client())
    except StorefrontError as error:
        return _add_failed(slug, error)
    if htmx.wants_fragment():
        return _cart_fragment(changed_event_slug=slug, before=before)
    flash(_("Added to your cart."), "success")
    return htmx.redirect(url_for("shop.event", slug=slug))


def _parse_add_form() -> dict[int, int]:
    """``quantity-<ticket type id>`` fields; anything else named quantity-… is bad input,
    and an id no row can have names no ticket type."""
    quantities: dict[int, int] = {}
    for name, raw in request.form.items():
        if not name.startswith("quantity-"):
            continue
        key = name.removeprefix("quantity-")
        if not parsing.is_ascii_digits(key):
            raise InvalidQuantity(raw)
        tt_id = parsing.db_id(key)
        if tt_id is None:
            raise UnknownTicketType()
        quantities[tt_id] = carts.parse_quantity(raw, allow_zero=True)
    return quantities


def _add_failed(slug: str, error: StorefrontError):
    if htmx.wants_fragment():
        return _cart_fragment(error=error, changed_event_slug=slug)
    now = utcnow()
    event = catalog.published_event(slug)
    if event is None:
        abort(404)
    return render_template(
        "shop/event.html", error=error.message(), **_event_context(event, carts.view_cart(_cart_token(), now), now)
    ), error.status


@bp.get("/cart")
def cart():
    now = utcnow()
    return htmx.render("shop/cart.html", "_partials/cart.html", cart=carts.view_cart(_cart_token(), now), now=now)


@bp.post("/cart/lines/<id:line_id>")
def update_line(line_id: int):
    return _change_cart(
        lambda: carts.SetQuantity(line_id, carts.parse_quantity(request.form.get("quantity"), allow_zero=False))
    )


@bp.post("/cart/lines/<id:line_id>/remove")
def remove_line(line_id: int):
    return _change_cart(lambda: carts.RemoveLine(line_id))


@bp.post("/cart/empty")
def empty_cart():
    return _change_cart(carts.EmptyCart)


@bp.post("/cart/lapse")
def lapse():
    """The countdown reached zero: give the tickets back if the hold really lapsed."""
    return _change_cart(carts.ReleaseIfLapsed)


def _change_cart(parse_change):
    """Parse the request into a change of the cart (``parse_change()``), apply it, and
    answer the cart: the fragment for htmx, else a redirect (or the page with the error)."""
    # Decided before anything changes: an unsafe target is no reason to fail after a commit.
    back_to = parsing.local_redirect_target(request.form.get("next")) or url_for("shop.cart")
    before_view = carts.view_cart(_cart_token())
    event_slug = _cart_event_slug(before_view)
    before = cart_news.lines_of(before_view)  # now: the change refreshes these rows
    try:
        change_cart(_cart_token(), parse_change(), allowance=limits.for_client())
    except StorefrontError as error:
        if htmx.wants_fragment():
            return _cart_fragment(error=error, changed_event_slug=event_slug)
        now = utcnow()
        return render_template(
            "shop/cart.html", error=error.message(), cart=carts.view_cart(_cart_token(), now), now=now
        ), error.status
    if htmx.wants_fragment():
        return _cart_fragment(changed_event_slug=event_slug, before=before)
    return htmx.redirect(back_to)


def _cart_event_slug(view) -> str | None:
    """The event of the cart's lines (``view``), lapsed ones included (their stock comes back)."""
    items = view.cart.items if view.cart is not None else []
    return items[0].ticket_type.event.slug if items else None


def _cart_fragment(
    error: StorefrontError | None = None,
    changed_event_slug: str | None = None,
    before: cart_news.Lines | None = None,
):
    """The cart fragment, with out-of-band updates of the header count, of the
    availability of the event whose stock just changed, and of the live region telling
    what changed (the cart's lines ``before`` the change, compared with now)."""
    now = utcnow()
    cart_view = carts.view_cart(_cart_token(), now, with_event_ticket_types=True)
    event = None
    if changed_event_slug:
        # Usually the cart's own event, loaded with the cart; else one more query.
        in_cart = cart_view.event
        event = (
            in_cart
            if in_cart is not None and in_cart.slug == changed_event_slug
            else (catalog.published_event(changed_event_slug))
        )
    context = {"cart": cart_view, "now": now, "error": error.message() if error else None}
    if error is None and before is not None:
        context["news"] = cart_news.describe(before, cart_view)
    if event is not None:
        context.update(_event_availability(event, now))
    response = htmx.render(
        "shop/cart.html", "_partials/cart_changed.html", status=error.status if error else 200, **context
    )
    return response


@bp.get("/checkout")
def checkout():
    now = utcnow()
    return _checkout_page(carts.view_cart(_cart_token(), now), now)


def _checkout_page(cart_view, now, error: StorefrontError | None = None, *, count_changed: bool = False):
    if request.method == "POST":
        form = request.form
    else:
        # What this browser typed before (a payment declined or left, a hold lapsed).
        form = session.get(DRAFT_KEY) or checkouts.remembered_form(_cart_token(), session.get(CHECKOUT_KEY))
    status = error.status if error else 200
    if cart_view.lapsed:
        # One message says it (the page's own), with the way back; what was typed is
        # kept for the next checkout of this browser.
        error = None if isinstance(error, CartLapsed) else error
        if request.method == "POST":
            draft = checkouts.draft_of(request.form, current_app.config["MAX_TICKETS_PER_CART"])
            if draft:
                session[DRAFT_KEY] = draft
    return htmx.render(
        "shop/checkout.html",
        "_partials/checkout_form.html",
        status=status,
        cart=cart_view,
        now=now,
        form=form,
        error=error.message() if error else None,
        invalid=_invalid_fields(error, form),
        back_to_event=_cart_event_slug(cart_view),
        # The header's count, out of band, when an htmx answer released the tickets.
        count_changed=count_changed and htmx.wants_fragment(),
    )


def _invalid_fields(error: StorefrontError | None, form) -> set[str]:
    """The checkout fields the error is about: marked aria-invalid, and described by it."""
    if isinstance(error, InvalidEmail):
        return {"email"}
    if isinstance(error, AttendeeNameMissing | AttendeeNameUnprintable):
        both = {f"first-{error.position}", f"last-{error.position}"}
        if isinstance(error, AttendeeNameMissing):
            # The empty (or too long) one of the two, when only one is.
            bad = {name for name in both if not 0 < len((form.get(name) or "").strip()) <= checkouts.NAME_MAX}
            return bad or both
        return both
    return set()


@bp.post("/checkout/lapse")
def checkout_lapse():
    """The checkout page's countdown reached zero: release the hold if it really lapsed,
    keep what was typed, and answer the page saying so (the form as it was if not)."""
    carts.release_if_lapsed(_cart_token())
    now = utcnow()
    return _checkout_page(carts.view_cart(_cart_token(), now), now, count_changed=True)


@bp.post("/checkout")
def start_checkout():
    names = []
    for n in range(1, current_app.config["MAX_TICKETS_PER_CART"] + 1):
        names.append((request.form.get(f"first-{n}", ""), request.form.get(f"last-{n}", "")))
    try:
        limits.check_checkout()
        started = checkouts.start_checkout(
            _cart_token(),
            request.form.get("email"),
            names,
            success_url=public_url("shop.checkout_success") + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=public_url("shop.cart"),
            shown_total=request.form.get("shown_total"),
        )
    except StorefrontError as error:
        now = utcnow()
        return _checkout_page(carts.view_cart(_cart_token(), now), now, error)
    # The cart's token was replaced: only this browser holds the new one (and nobody, once
    # the cart became a free order).
    session.pop(DRAFT_KEY, None)  # the attempt keeps what was typed from now on
    if started.cart_token:
        session[CART_KEY] = started.cart_token
    else:
        session.pop(CART_KEY, None)
    if started.order_token:
        return htmx.redirect(url_for("shop.order", token=started.order_token))
    session[CHECKOUT_KEY] = started.session_id
    return htmx.redirect(started.url)


def _waited() -> tuple[int, float]:
    """When the buyer landed on the success page (carried in the poll's URL), and how long ago."""
    now = int(time.time())
    given = parsing.ascii_int(request.args.get("started"), max_digits=12)
    started = given if given is not None and now - 3600 < given <= now else now
    return started, now - started


def _session_id() -> str | None:
    """The Checkout Session the success page is about (Stripe put it in the URL)."""
    return parsing.stripe_id(request.args.get("session_id"), "cs_")


@bp.get("/checkout/success")
def checkout_success():
    return _payment_status()


@bp.get("/checkout/status")
def checkout_status():
    return _payment_status()


def _payment_status():
    """The success page or its poll: where the payment of this browser's checkout stands."""
    started, waited = _waited()
    error = None
    try:
        state = checkouts.payment_state(_session_id(), session.get(CHECKOUT_KEY), waited, allowance=limits.for_client())
    except TooManyRequests as limited:
        # Asking Stripe again must wait; the page keeps polling and says why it is slow.
        state, error = checkouts.PaymentState("waiting"), limited
    status = 404 if state.kind == "not_found" else error.status if error else 200
    if status == 200 and state.final and htmx.wants_fragment():
        status = htmx.STOP_POLLING
    return htmx.render(
        "shop/success.html",
        "_partials/payment_status.html",
        status=status,
        state=state,
        session_id=_session_id() or "",
        started=started,
        error=error.message() if error else None,
    )


@bp.get("/media/covers/<token:name>.jpg")
def cover_image(name: str):
    from .. import cover_images

    return cover_images.serve(name)


@bp.get("/orders/<token:token>")
def order(token: str):
    return render_template("shop/order.html", order=_order_or_404(token))


def _download_allowed() -> None:
    """Each PDF costs a render: a client downloading too often gets the 429 page."""
    try:
        limits.check_ticket_download()
    except TooManyRequests:
        abort(429)


def _order_or_404(token: str):
    found = checkouts.order_by_token(token)
    if found is None:
        abort(404)
    return found


def _download(body: bytes, mimetype: str, filename: str):
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/orders/<token:token>/tickets.pdf")
def order_pdf(token: str):
    """The order's tickets as a PDF: whoever has the order's link, as for its page."""
    _download_allowed()
    order = _order_or_404(token)
    return _download(ticket_pdf.order_pdf(order), "application/pdf", ticket_pdf.filename(order))


@bp.get("/orders/<token:token>/event.ics")
def order_calendar(token: str):
    _download_allowed()
    order = _order_or_404(token)
    return _download(ticket_calendar.event_ics(order), "text/calendar", ticket_calendar.FILENAME)


@bp.route("/lost-tickets", methods=["GET", "POST"])
def lost_tickets():
    """ "Lost your tickets?": links to every order of an address, by mail. The answer is the
    same whether or not the address has orders; the mail goes out after it."""
    form = LostTicketsForm()
    if request.method == "GET":
        return render_template("shop/lost_tickets.html", form=form)
    if not form.validate_on_submit():
        return render_template("shop/lost_tickets.html", form=form), 400
    try:
        address = lost.address(form.email.data)
        limits.check_lost_tickets(address)
    except StorefrontError as error:
        return render_template("shop/lost_tickets.html", form=form, error=error.message()), error.status
    lost.send_links_after_answer(address)
    return render_template("shop/lost_tickets.html", form=LostTicketsForm(formdata=None), sent=True)
