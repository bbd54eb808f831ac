"""Every shop route through the Flask test client, on SQLite and PostgreSQL.

Each test asserts the database after the request, not only the answer.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.models import Cart, CartStatus, EventStatus, utcnow

from .factories import cart_by_token, lapse, make_event, ticket_type


def session_cart_token(client) -> str | None:
    with client.session_transaction() as sess:
        return sess.get("cart")


def cart_count() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(Cart.id))).scalar_one()


def add(client, event, quantities: dict, **headers):
    data = {f"quantity-{tt_id}": str(n) for tt_id, n in quantities.items()}
    return client.post(f"/events/{event.slug}/cart", data=data, headers=headers)


# --- browsing -----------------------------------------------------------------------


def test_event_list_shows_upcoming_published_events_only(client):
    make_event(title="Jazz Night")
    make_event(title="Secret Draft", status=EventStatus.DRAFT.value)
    make_event(title="Last Year", starts_in=timedelta(days=-1))
    page = client.get("/").get_data(as_text=True)
    assert "Jazz Night" in page
    assert "Secret Draft" not in page
    assert "Last Year" not in page


def test_event_page_shows_details_in_the_events_timezone_and_currency(client):
    event = make_event(
        title="Harbour Lights",
        timezone="America/New_York",
        currency="USD",
        ticket_types=[{"name": "General", "price_minor": 4550}],
    )
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Harbour Lights" in page and "Test Hall" in page
    assert "$45.50" in page
    local = event.starts_at.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert local.strftime("%-I:%M") in page
    assert "Eastern" in page  # the zone is named


def test_event_page_in_french(client):
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500}])
    page = client.get(f"/events/{event.slug}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "25,00\xa0€" in page
    assert 'lang="fr"' in page


def test_each_sale_state_is_shown(client):
    now = utcnow()
    event = make_event(
        ticket_types=[
            {"name": "Plenty", "capacity": 100},
            {"name": "Scarce", "capacity": 100, "sold": 97},
            {"name": "Gone", "capacity": 50, "sold": 50},
            {"name": "Later", "sales_start": now + timedelta(days=2)},
            {"name": "Over", "sales_end": now - timedelta(hours=1)},
        ]
    )
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)

    def row(tt):
        match = re.search(rf'id="ticket-type-{tt.id}".*?</div>\s*</div>', page, re.S)
        assert match, f"no row for {tt.name}"
        return match.group(0)

    plenty, scarce, gone, later, over = event.ticket_types
    assert "On sale" in row(plenty) and f'name="quantity-{plenty.id}"' in row(plenty)
    assert "Only 3 left" in row(scarce)
    assert "Sold out" in row(gone) and "quantity-" not in row(gone)
    assert "On sale " in row(later) and "quantity-" not in row(later)
    assert "Sales ended" in row(over) and "quantity-" not in row(over)


@pytest.mark.parametrize("status", [EventStatus.DRAFT.value, EventStatus.CANCELLED.value])
def test_unpublished_event_page_is_not_found(client, status):
    event = make_event(status=status)
    assert client.get(f"/events/{event.slug}").status_code == 404
    assert client.get("/events/no-such-event").status_code == 404


# --- adding -------------------------------------------------------------------------


def test_add_with_htmx_answers_the_cart_and_out_of_band_updates(client):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 12}, {"name": "VIP", "capacity": 5}])
    standard, vip = event.ticket_types
    response = add(client, event, {standard.id: 3, vip.id: 0}, **{"HX-Request": "true"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html  # a fragment, not a page
    assert 'id="cart"' in html and "Standard" in html
    assert re.search(r'id="cart-count"[^>]*hx-swap-oob="true"', html)
    assert re.search(rf'id="ticket-type-{standard.id}"[^>]*hx-swap-oob="true"', html)
    assert "Only 9 left" in html
    assert "HX-Request" in response.headers.get("Vary", "")
    assert ticket_type(standard.id).held == 3 and ticket_type(vip.id).held == 0
    token = session_cart_token(client)
    assert [(i.ticket_type_id, i.quantity) for i in cart_by_token(token).items] == [(standard.id, 3)]


def test_add_without_javascript_redirects_to_the_event_page(client):
    event = make_event()
    tt = event.ticket_types[0]
    response = add(client, event, {tt.id: 2})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/events/{event.slug}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Added to your cart." in page
    assert 'class="cart-line"' in page and "Tickets held for" in page
    assert ticket_type(tt.id).held == 2


BAD_QUANTITIES = [
    ("abc", 400, "Please enter a whole number"),
    ("-1", 400, "Please enter a whole number"),
    ("1.5", 400, "Please enter a whole number"),
    ("99999999999", 400, "Please enter a whole number"),
    ("0", 400, "Choose how many tickets"),
    ("11", 400, "at most 10 tickets of Standard per order"),
]


@pytest.mark.parametrize("raw,status,words", BAD_QUANTITIES)
@pytest.mark.parametrize("with_htmx", [True, False])
def test_bad_quantities_get_a_message_and_change_nothing(client, raw, status, words, with_htmx):
    event = make_event()
    tt = event.ticket_types[0]
    headers = {"HX-Request": "true"} if with_htmx else {}
    response = client.post(f"/events/{event.slug}/cart", data={f"quantity-{tt.id}": raw}, headers=headers)
    assert response.status_code == status
    assert words in response.get_data(as_text=True)
    assert ticket_type(tt.id).held == 0
    assert cart_count() == 0


def test_unknown_or_foreign_ticket_type(client):
    event, other = make_event(), make_event()
    foreign = other.ticket_types[0]
    response = client.post(f"/events/{event.slug}/cart", data={"quantity-424242": "1"}, headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "That ticket type does not exist." in response.get_data(as_text=True)
    response = client.post(f"/events/{event.slug}/cart", data={f"quantity-{foreign.id}": "1"})
    assert response.status_code == 400
    assert "belongs to another event" in response.get_data(as_text=True)
    response = client.post(f"/events/{event.slug}/cart", data={"quantity-x1": "1"})
    assert response.status_code == 400
    assert ticket_type(foreign.id).held == 0 and cart_count() == 0


def test_unpublished_event_cannot_be_added(client):
    event = make_event(status=EventStatus.DRAFT.value)
    response = add(client, event, {event.ticket_types[0].id: 1}, **{"HX-Request": "true"})
    assert response.status_code == 404
    assert "not on sale" in response.get_data(as_text=True)
    assert ticket_type(event.ticket_types[0].id).held == 0


def test_sales_window_closed(client):
    later = make_event(sales_start=utcnow() + timedelta(days=1))
    over = make_event(ticket_types=[{"name": "Early", "sales_end": utcnow() - timedelta(seconds=1)}])
    response = add(client, later, {later.ticket_types[0].id: 1}, **{"HX-Request": "true"})
    assert response.status_code == 409 and "have not opened yet" in response.get_data(as_text=True)
    response = add(client, over, {over.ticket_types[0].id: 1})
    assert response.status_code == 409 and "Sales for Early have ended." in response.get_data(as_text=True)
    assert cart_count() == 0


def test_sold_out_and_only_n_left(client, app):
    event = make_event(ticket_types=[{"name": "Standard", "capacity": 3}])
    tt = event.ticket_types[0]
    other_buyer = app.test_client()
    assert add(other_buyer, event, {tt.id: 2}).status_code == 303
    response = add(client, event, {tt.id: 2}, **{"HX-Request": "true"})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Only 1 ticket left for Standard." in html
    assert "Only 1 left" in html  # the row is refreshed out of band
    assert add(client, event, {tt.id: 1}, **{"HX-Request": "true"}).status_code == 200
    response = add(client, event, {tt.id: 1})
    assert response.status_code == 409 and "Standard is sold out." in response.get_data(as_text=True)
    assert ticket_type(tt.id).held == 3


def test_cart_holds_one_event(client):
    first, second = make_event(title="First"), make_event(title="Second")
    add(client, first, {first.ticket_types[0].id: 1})
    response = add(client, second, {second.ticket_types[0].id: 1}, **{"HX-Request": "true"})
    assert response.status_code == 409
    assert "Your cart holds tickets for First" in response.get_data(as_text=True)
    assert ticket_type(second.ticket_types[0].id).held == 0


# --- the cart -----------------------------------------------------------------------


def _filled(client, quantities=(2,), **event_kwargs):
    event = make_event(ticket_types=[{"name": f"T{i}"} for i in range(len(quantities))], **event_kwargs)
    add(client, event, {tt.id: n for tt, n in zip(event.ticket_types, quantities, strict=True)})
    cart = cart_by_token(session_cart_token(client))
    return event, cart


def test_cart_page_and_fragment(client):
    event, cart = _filled(client, (2,))
    page = client.get("/cart")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert "€50.00" in page.get_data(as_text=True)
    fragment = client.get("/cart", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert "<html" not in html and 'id="cart"' in html
    assert "HX-Request" in fragment.headers["Vary"]
    restore = client.get("/cart", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_cart_shows_countdown_seconds(client):
    event, cart = _filled(client, (1,))
    html = client.get("/cart").get_data(as_text=True)
    seconds = int(re.search(r'data-countdown="(\d+)"', html).group(1))
    assert 14 * 60 < seconds <= 15 * 60


def test_header_count(client):
    _filled(client, (2, 3))
    assert re.search(
        r'id="cart-count".*?<span class="badge"[^>]*>5</span>', client.get("/").get_data(as_text=True), re.S
    )


@pytest.mark.parametrize("with_htmx", [True, False])
def test_change_quantity(client, with_htmx):
    event, cart = _filled(client, (2,))
    line = cart.items[0]
    headers = {"HX-Request": "true"} if with_htmx else {}
    response = client.post(f"/cart/lines/{line.id}", data={"quantity": "4", "next": "/cart"}, headers=headers)
    if with_htmx:
        assert response.status_code == 200 and "€100.00" in response.get_data(as_text=True)
    else:
        assert response.status_code == 303 and response.headers["Location"].endswith("/cart")
    assert ticket_type(line.ticket_type_id).held == 4


# Digits other than ASCII too: Python's isdigit() and int() take "²" (a 500 once) and "١", "１" (3 tickets held once).
@pytest.mark.parametrize("raw", ["0", "-2", "x", "", "100000000", "²", "١", "٣", "１", "𝟑", "3²"])
def test_change_quantity_refuses_bad_input(client, raw):
    event, cart = _filled(client, (2,))
    line = cart.items[0]
    response = client.post(f"/cart/lines/{line.id}", data={"quantity": raw}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "whole number" in response.get_data(as_text=True)
    assert ticket_type(line.ticket_type_id).held == 2


@pytest.mark.parametrize("with_htmx", [True, False])
def test_remove_line_and_empty(client, with_htmx):
    event, cart = _filled(client, (2, 1))
    first, second = cart.items
    headers = {"HX-Request": "true"} if with_htmx else {}
    response = client.post(f"/cart/lines/{first.id}/remove", headers=headers)
    assert response.status_code == (200 if with_htmx else 303)
    assert ticket_type(first.ticket_type_id).held == 0
    assert ticket_type(second.ticket_type_id).held == 1
    response = client.post("/cart/empty", headers=headers)
    assert response.status_code == (200 if with_htmx else 303)
    if with_htmx:
        assert "Your cart is empty." in response.get_data(as_text=True)
    assert ticket_type(second.ticket_type_id).held == 0


def test_another_browsers_cart_cannot_be_touched(client, app):
    event, theirs = _filled(client, (3,))
    line = theirs.items[0]
    stranger = app.test_client()
    for url, data in [(f"/cart/lines/{line.id}", {"quantity": "1"}), (f"/cart/lines/{line.id}/remove", {})]:
        response = stranger.post(url, data=data, headers={"HX-Request": "true"})
        assert response.status_code == 404
        assert "That line is not in your cart." in response.get_data(as_text=True)
    # Even a stranger with a cart of their own.
    add(stranger, event, {line.ticket_type_id: 1})
    assert stranger.post(f"/cart/lines/{line.id}/remove").status_code == 404
    assert cart_by_token(theirs.token).items[0].quantity == 3
    assert ticket_type(line.ticket_type_id).held == 4


def test_lapsed_cart_says_so_and_gives_the_tickets_back(client):
    event, cart = _filled(client, (2,))
    tt_id = cart.items[0].ticket_type_id
    lapse(cart.token)
    page = client.get("/cart").get_data(as_text=True)
    assert "Your reservation lapsed" in page
    response = client.post("/cart/lapse", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Your reservation lapsed" in response.get_data(as_text=True)
    assert cart_by_token(cart.token).status == CartStatus.EXPIRED.value
    assert ticket_type(tt_id).held == 0
    # Adding again starts a fresh hold in a new cart.
    assert add(client, event, {tt_id: 1}).status_code == 303
    assert session_cart_token(client) != cart.token
    assert ticket_type(tt_id).held == 1


def test_lapse_of_a_live_cart_changes_nothing(client):
    event, cart = _filled(client, (2,))
    response = client.post("/cart/lapse", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Tickets held for" in response.get_data(as_text=True)
    assert cart_by_token(cart.token).status == CartStatus.ACTIVE.value
    assert ticket_type(cart.items[0].ticket_type_id).held == 2


def test_changing_a_lapsed_cart_is_refused_with_a_message(client):
    event, cart = _filled(client, (2,))
    lapse(cart.token)
    response = client.post(f"/cart/lines/{cart.items[0].id}", data={"quantity": "3"}, headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert "Your reservation lapsed" in response.get_data(as_text=True)
    assert ticket_type(cart.items[0].ticket_type_id).held == 0


def test_checkout_page_asks_for_an_email_and_a_name_per_ticket(client):
    _filled(client, (2,))
    page = client.get("/checkout").get_data(as_text=True)
    assert 'name="email"' in page and "€50.00" in page
    assert 'name="first-1"' in page and 'name="last-2"' in page and 'name="first-3"' not in page


def test_security_headers(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_posts_need_the_csrf_token(client):
    event = make_event()
    tt = event.ticket_types[0]
    refused = add(client, event, {tt.id: 1}, **{"HX-Request": "true"})
    assert refused.status_code == 400
    assert ticket_type(tt.id).held == 0
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    accepted = add(client, event, {tt.id: 1}, **{"HX-Request": "true", "X-CSRFToken": token})
    assert accepted.status_code == 200
    assert ticket_type(tt.id).held == 1


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_checkout_pages_lapse_releases_nothing_that_still_holds(client):
    # POST /checkout/lapse (the checkout's countdown at 0:00): a cross-site post is refused,
    # and however often it comes while the hold still runs, the tickets stay held.
    event = make_event()
    tt = event.ticket_types[0]
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert add(client, event, {tt.id: 2}, **{"HX-Request": "true", "X-CSRFToken": token}).status_code == 200
    assert client.post("/checkout/lapse", headers={"HX-Request": "true"}).status_code == 400
    answers = {
        client.post("/checkout/lapse", headers={"HX-Request": "true", "X-CSRFToken": token}).status_code
        for _ in range(40)
    }
    assert answers == {200}
    assert ticket_type(tt.id).held == 2
    assert "Your reservation lapsed" not in client.get("/checkout").get_data(as_text=True)


def test_get_on_a_post_route_is_refused_politely(client):
    response = client.get("/cart/empty")
    assert response.status_code == 405
    assert "not possible" in response.get_data(as_text=True)
