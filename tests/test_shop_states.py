"""States shown up front (issue 12): what a buyer can do is on the page before they try.

The not-yet-on-sale event has no active Add button and says when sales open; the
per-order limit is next to the quantity (and is the input's max); the events list says
where each event's sale stands, at one cost whatever the number of events; the header's
cart count is right after every change of the cart and on every page; the event page
names its organiser and how to reach them.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Organiser, utcnow

from .checkout_support import sandbox, shop  # noqa: F401 (fixtures)
from .factories import lapse, make_event
from .test_queries import counting_queries
from .test_routes import add, session_cart_token

HX = {"HX-Request": "true"}


def header_count(html: str) -> int | None:
    """The number in the header's cart link (None: the link shows none)."""
    link = re.search(r'<a [^>]*id="cart-count".*?</a>', html, re.S)
    assert link, "no cart link"
    badge = re.search(r'<span class="badge"[^>]*>(\d+)</span>', link.group(0))
    return int(badge.group(1)) if badge else None


def add_button(html: str) -> str:
    match = re.search(r'<div class="add-to-cart-area".*?</div>', html, re.S)
    assert match, "no Add button"
    return match.group(0)


# --- not on sale yet ------------------------------------------------------------------


def test_event_not_yet_on_sale_has_no_active_add_button_and_says_when(client):
    opens = utcnow() + timedelta(days=3)
    event = make_event(sales_start=opens, timezone="America/New_York")
    tt = event.ticket_types[0]
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    button = add_button(page)
    disabled = r'<button type="submit" class="add-to-cart" id="add-to-cart" disabled aria-describedby="add-to-cart-why"'
    assert re.search(disabled, button)
    assert "On sale from " in button and "Eastern" in button  # in the event's timezone
    local = opens.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert local.strftime("%B %-d") in button
    row = re.search(rf'id="ticket-type-{tt.id}".*?</div>\s*</div>', page, re.S).group(0)
    assert "On sale from " in row and "quantity-" not in row
    # The server refuses anyway, and says when.
    response = add(client, event, {tt.id: 1}, **HX)
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "Sales for Standard have not opened yet: they open on" in text and local.strftime("%B %-d") in text


def test_not_yet_on_sale_in_french(client):
    event = make_event(sales_start=utcnow() + timedelta(days=3))
    page = client.get(f"/events/{event.slug}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "En vente dès le " in add_button(page) and " disabled" in add_button(page)
    response = add(client, event, {event.ticket_types[0].id: 1}, **HX, **{"Accept-Language": "fr"})
    assert "elle ouvre le" in response.get_data(as_text=True)


def test_one_type_on_sale_keeps_the_add_button_active(client):
    event = make_event(ticket_types=[{"name": "Now"}, {"name": "Later", "sales_start": utcnow() + timedelta(days=1)}])
    button = add_button(client.get(f"/events/{event.slug}").get_data(as_text=True))
    assert " disabled" not in button and "On sale from" not in button


def test_sold_out_and_ended_events_have_a_disabled_add_button(client):
    gone = make_event(ticket_types=[{"name": "Gone", "capacity": 5, "sold": 5}])
    over = make_event(sales_end=utcnow() - timedelta(hours=1))
    gone_button = add_button(client.get(f"/events/{gone.slug}").get_data(as_text=True))
    over_button = add_button(client.get(f"/events/{over.slug}").get_data(as_text=True))
    assert " disabled" in gone_button and "Sold out" in gone_button
    assert " disabled" in over_button and "Sales ended" in over_button


def test_the_add_button_comes_back_out_of_band_when_the_last_tickets_are_released(client):
    event = make_event(ticket_types=[{"name": "Last", "capacity": 2}])
    tt = event.ticket_types[0]
    answer = add(client, event, {tt.id: 2}, **HX).get_data(as_text=True)
    assert re.search(r'id="add-to-cart-area" hx-swap-oob="true"', answer) and " disabled" in add_button(answer)
    line = re.search(r'id="line-(\d+)"', answer).group(1)
    answer = client.post(f"/cart/lines/{line}/remove", headers=HX).get_data(as_text=True)
    assert " disabled" not in add_button(answer)


# --- limits ---------------------------------------------------------------------------


def test_per_order_limit_is_shown_and_is_the_inputs_max(client):
    event = make_event(ticket_types=[{"name": "Four", "max_per_order": 4}, {"name": "Scarce", "capacity": 2}])
    four, scarce = event.ticket_types
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert re.search(rf'name="quantity-{four.id}"[^>]*max="4"[^>]*aria-describedby="limit-{four.id}"', page)
    assert f'<small class="tt-limit" id="limit-{four.id}">Up to 4 per order</small>' in page
    # Fewer left than the limit: the most one can take is what is left.
    assert re.search(rf'name="quantity-{scarce.id}"[^>]*max="2"', page)
    assert f'id="limit-{scarce.id}">Up to 2 per order</small>' in page
    french = client.get(f"/events/{event.slug}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Jusqu'à 4 par commande" in french or "Jusqu&#39;à 4 par commande" in french


def test_the_carts_limit_caps_the_shown_limit(app, client):
    app.config["MAX_TICKETS_PER_CART"] = 6
    event = make_event(ticket_types=[{"name": "Many", "max_per_order": 20}])
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Up to 6 per order" in page and 'max="6"' in page


# --- the events list ------------------------------------------------------------------


def _card(page: str, title: str) -> str:
    match = re.search(rf'<article class="event-card">(?:(?!</article>).)*?>{title}</a>.*?</article>', page, re.S)
    assert match, f"no card for {title}"
    return match.group(0)


def test_events_list_shows_each_events_availability(client):
    now = utcnow()
    make_event(title="Plenty", ticket_types=[{"name": "A", "capacity": 100}, {"name": "B", "capacity": 100}])
    make_event(title="Scarce", ticket_types=[{"name": "A", "capacity": 100, "sold": 95}, {"name": "B", "capacity": 0}])
    make_event(title="Tenth", ticket_types=[{"name": "A", "capacity": 1000, "sold": 910}])
    make_event(title="Gone", ticket_types=[{"name": "A", "capacity": 5, "sold": 5}])
    make_event(title="Later", sales_start=now + timedelta(days=2))
    make_event(title="Over", sales_end=now - timedelta(hours=1))
    make_event(
        title="Mixed",
        ticket_types=[{"name": "A", "capacity": 3, "sold": 3}, {"name": "B", "sales_start": now + timedelta(days=1)}],
    )
    page = client.get("/").get_data(as_text=True)
    assert 'class="pill pill-ok">On sale<' in _card(page, "Plenty")
    assert "Only 5 left" in _card(page, "Scarce")
    assert "Only 90 left" in _card(page, "Tenth")  # a tenth of the capacity
    assert "Sold out" in _card(page, "Gone")
    assert "On sale from " in _card(page, "Later")
    assert "Sales ended" in _card(page, "Over")
    assert "On sale from " in _card(page, "Mixed")  # sold out now, more types later


def test_events_list_availability_follows_the_events_capacity(client):
    make_event(
        title="Capped", capacity=8, ticket_types=[{"name": "A", "capacity": 100}, {"name": "B", "capacity": 100}]
    )
    assert "Only 8 left" in _card(client.get("/").get_data(as_text=True), "Capped")


def _list_queries(client) -> list[str]:
    client.get("/")  # warm up
    with counting_queries() as statements:
        assert client.get("/").status_code == 200
    return statements


def test_events_list_costs_the_same_with_1_or_8_events(app):
    make_event(title="First", ticket_types=[{"name": "A"}, {"name": "B"}])
    one = _list_queries(app.test_client())
    for n in range(7):
        make_event(title=f"More {n}", ticket_types=[{"name": f"T{i}"} for i in range(n + 1)], capacity=500)
    eight = _list_queries(app.test_client())
    assert "More 6" in app.test_client().get("/").get_data(as_text=True)
    assert len(one) == len(eight), (one, eight)
    assert len(eight) <= 2


# --- the header's cart count ----------------------------------------------------------


def test_header_count_after_add_change_remove_and_lapse(client):
    event = make_event(ticket_types=[{"name": "A"}, {"name": "B"}])
    a, b = event.ticket_types
    assert header_count(client.get("/").get_data(as_text=True)) == 0
    answer = add(client, event, {a.id: 3}, **HX).get_data(as_text=True)
    assert re.search(r'id="cart-count"[^>]*hx-swap-oob="true"', answer) and header_count(answer) == 3
    answer = add(client, event, {b.id: 2}, **HX).get_data(as_text=True)
    assert header_count(answer) == 5
    line_a, line_b = re.findall(r'id="line-(\d+)"', answer)
    answer = client.post(f"/cart/lines/{line_a}", data={"quantity": "1"}, headers=HX).get_data(as_text=True)
    assert header_count(answer) == 3
    # A refused change still answers the count as it stands.
    refused = client.post(f"/cart/lines/{line_a}", data={"quantity": "99"}, headers=HX)
    assert refused.status_code == 400 and header_count(refused.get_data(as_text=True)) == 3
    answer = client.post(f"/cart/lines/{line_b}/remove", headers=HX).get_data(as_text=True)
    assert header_count(answer) == 1
    for path in ("/", f"/events/{event.slug}", "/cart", "/checkout"):
        assert header_count(client.get(path).get_data(as_text=True)) == 1, path
    lapse(session_cart_token(client))
    assert header_count(client.get(f"/events/{event.slug}").get_data(as_text=True)) == 0
    answer = client.post("/cart/lapse", headers=HX).get_data(as_text=True)
    assert header_count(answer) == 0


def test_header_count_on_pages_that_do_not_show_the_cart(client):
    event = make_event()
    add(client, event, {event.ticket_types[0].id: 2})
    for path in ("/lost-tickets", "/no-such-page", "/orders/not-a-token"):
        response = client.get(path)
        assert header_count(response.get_data(as_text=True)) == 2, (path, response.status_code)


def test_a_server_error_page_reads_no_cart(app, client):
    @app.get("/_boom")
    def boom():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/_boom")
    assert response.status_code == 500 and header_count(response.get_data(as_text=True)) is None


# --- the organiser ---------------------------------------------------------------------


def _set_contact(address):
    with write_transaction():
        db.session.execute(update(Organiser).where(Organiser.slug == "test-org").values(contact_email=address))


def test_event_page_names_the_organiser_and_their_contact(client):
    event = make_event()
    _set_contact("hello@harbour.example")
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Organised by Test Organiser" in page
    assert '<a href="mailto:hello@harbour.example">hello@harbour.example</a>' in page
    french = client.get(f"/events/{event.slug}", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Organisé par Test Organiser" in french
    _set_contact(None)
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Organised by Test Organiser" in page and "mailto:" not in page


# --- checkout and payment ---------------------------------------------------------------


def test_payment_page_lines_name_the_event_and_the_header_count_follows_the_payment(shop, sandbox):
    import urllib.request

    from .checkout_support import CARD_OK, buy_until_stripe, wait_for_order

    event = make_event(title="Harbour Jazz", ticket_types=[{"name": "Balcony", "price_minor": 2500}])
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 2})
    # Being paid for, the tickets are still the buyer's: the header says so.
    assert header_count(client.get("/cart").get_data(as_text=True)) == 2
    (line,) = sandbox.client().v1.checkout.sessions.line_items.list(session_id).data
    assert line.description == "Harbour Jazz — Balcony"
    with urllib.request.urlopen(f"{sandbox.base}/pay/{session_id}", timeout=10) as hosted:
        assert "Harbour Jazz — Balcony" in hosted.read().decode()
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    for path in (f"/checkout/success?session_id={session_id}", f"/orders/{order.access_token}", "/"):
        assert header_count(client.get(path).get_data(as_text=True)) == 0, path
