"""The back office's events: the list and its states, creating and editing (times in the
event's timezone, a DST change), publishing, previewing, cancelling, duplicating, and
ticket types (create, edit, reorder with and without htmx, hide, delete), each change
audited and each refusal a 4xx that changed nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront import audit
from storefront.catalog import EventState, event_state
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import (
    AttemptStatus,
    Event,
    EventStatus,
    Order,
    OrderStatus,
    PaymentAttempt,
    TicketType,
    utcnow,
)
from storefront.staff_models import Role

from .admin_support import add_member, audit_entries, make_event_of, make_organiser, make_user, sign_in_as, snapshot
from .factories import cart_by_token

ORG = "/admin/o/club"


@pytest.fixture
def club(app):
    organiser = make_organiser("club", "The Club")
    owner = make_user("owner@club.example")
    add_member(owner, organiser, Role.OWNER)
    return organiser, owner


@pytest.fixture
def owner_client(app, club):
    client = app.test_client()
    sign_in_as(client, club[1])
    return client


def event_form(**overrides) -> dict:
    form = {
        "title": "Winter Gala",
        "slug": "winter-gala",
        "description": "An evening of **music**.",
        "venue": "Town Hall",
        "timezone": "Europe/Paris",
        "starts_at": "2027-01-15T20:00",
        "ends_at": "2027-01-15T23:30",
        "currency": "EUR",
        "sales_start": "",
        "sales_end": "",
        "capacity": "",
    }
    form.update(overrides)
    return form


def tt_form(**overrides) -> dict:
    form = {"name": "Stalls", "description": "", "price": "25", "capacity": "100", "max_per_order": "10"}
    form.update(overrides)
    return form


def the_event(slug: str = "winter-gala") -> Event | None:
    db.session.rollback()
    return db.session.execute(select(Event).where(Event.slug == slug)).scalar_one_or_none()


def field_error(page: str, field_id: str) -> str:
    match = re.search(rf'id="{field_id}-error" class="field-error">([^<]*)<', page)
    assert match, f"no error at {field_id}"
    return match.group(1)


def create(owner_client, **overrides) -> Event:
    answer = owner_client.post(f"{ORG}/events/new", data=event_form(**overrides))
    assert answer.status_code == 303, answer.get_data(as_text=True)[:2000]
    return the_event(overrides.get("slug", "winter-gala"))


# --- creating and editing ----------------------------------------------------------------------


def test_an_event_is_created_as_a_draft_with_its_times_in_utc(owner_client, club):
    event = create(owner_client)
    assert event.status == EventStatus.DRAFT.value and event.organiser_id == club[0].id
    # 20:00 in Paris in January is 19:00 UTC.
    assert event.starts_at == datetime(2027, 1, 15, 19, 0, tzinfo=UTC)
    assert event.ends_at == datetime(2027, 1, 15, 22, 30, tzinfo=UTC)
    (entry,) = audit_entries(action="event_created")
    assert entry.event_id == event.id and entry.organiser_id == club[0].id
    assert dict((k, a) for k, _b, a in audit.changes(entry))["title"] == "Winter Gala"
    # Shown back on the venue's clock.
    page = owner_client.get(f"{ORG}/events/winter-gala/edit").get_data(as_text=True)
    assert 'value="2027-01-15T20:00"' in page


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"slug": "Not a slug!"}, "slug", "lower-case letters"),
        ({"slug": ""}, "slug", "required"),
        ({"title": ""}, "title", "required"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Not a valid choice"),
        ({"currency": "XXX"}, "currency", "Not a valid choice"),
        ({"starts_at": "tomorrow"}, "starts_at", "Not a valid datetime"),
        ({"ends_at": "2027-01-15T19:00"}, "ends_at", "after the start"),
        ({"sales_start": "2027-01-10T10:00", "sales_end": "2027-01-09T10:00"}, "sales_end", "end after they start"),
        ({"sales_start": "2027-01-16T10:00"}, "sales_start", "before the event starts"),
        ({"capacity": "-3"}, "capacity", "Not a valid integer"),
        ({"capacity": "2000000"}, "capacity", "between 0 and 1000000"),
        ({"capacity": "١٢"}, "capacity", "Not a valid integer"),
        ({"title": "Gala\x00"}, "title", "control characters"),
    ],
)
def test_bad_input_is_refused_at_its_field_and_nothing_is_saved(owner_client, overrides, field, words):
    before = snapshot()
    answer = owner_client.post(f"{ORG}/events/new", data=event_form(**overrides))
    assert answer.status_code == 400
    assert words in field_error(answer.get_data(as_text=True), field)
    assert snapshot() == before


def test_a_slug_in_use_by_any_organiser_is_refused(owner_client):
    make_event_of(make_organiser("elsewhere"), slug="winter-gala")
    before = snapshot()
    answer = owner_client.post(f"{ORG}/events/new", data=event_form())
    assert answer.status_code == 409
    assert "Another event uses this web address" in field_error(answer.get_data(as_text=True), "slug")
    assert snapshot() == before


def test_daylight_saving_a_skipped_time_is_refused_and_a_repeated_one_is_the_first(owner_client):
    before = snapshot()
    # Europe/Paris skips 02:00-03:00 on 28 March 2027.
    skipped = owner_client.post(f"{ORG}/events/new", data=event_form(starts_at="2027-03-28T02:30", ends_at=""))
    assert skipped.status_code == 400
    assert "does not exist in Europe/Paris" in field_error(skipped.get_data(as_text=True), "starts_at")
    assert snapshot() == before
    # ... and passes 02:00-03:00 twice on 31 October 2027: the first time (summer, UTC+2) is taken.
    event = create(owner_client, starts_at="2027-10-31T02:30", ends_at="2027-10-31T03:30")
    assert event.starts_at == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert event.ends_at == datetime(2027, 10, 31, 2, 30, tzinfo=UTC)  # winter time, UTC+1
    # Either side of the change, each shown in its own offset.
    page = owner_client.get(f"{ORG}/events/winter-gala/edit").get_data(as_text=True)
    assert 'value="2027-10-31T02:30"' in page and 'value="2027-10-31T03:30"' in page


def test_editing_saves_the_changes_and_audits_before_and_after(owner_client, club):
    event = create(owner_client)
    answer = owner_client.post(
        f"{ORG}/events/winter-gala/edit",
        data=event_form(title="Winter Gala 2027", timezone="America/New_York", starts_at="2027-01-15T20:00"),
    )
    assert answer.status_code == 303
    changed = the_event()
    assert changed.title == "Winter Gala 2027" and changed.timezone == "America/New_York"
    assert changed.starts_at == datetime(2027, 1, 16, 1, 0, tzinfo=UTC)  # 20:00 in New York, UTC-5
    (entry,) = audit_entries(action="event_changed")
    changes = {name: (b, a) for name, b, a in audit.changes(entry)}
    assert changes["title"] == ("Winter Gala", "Winter Gala 2027")
    assert changes["timezone"] == ("Europe/Paris", "America/New_York")
    assert set(changes) == {"title", "timezone", "starts_at", "ends_at"}
    assert entry.event_id == event.id


def test_the_currency_changes_with_the_prices_until_something_is_held(owner_client, client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(price="25"))
    assert owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form(currency="GBP")).status_code == 303
    event = the_event()
    assert event.currency == "GBP" and event.ticket_types[0].price_minor == 2500  # £25.00
    # JPY has no decimals: 25.50 cannot be charged in it.
    tt = event.ticket_types[0]
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{tt.id}", data=tt_form(price="25.50"))
    before = snapshot()
    refused = owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form(currency="JPY"))
    assert refused.status_code == 400
    assert "cannot be charged in JPY" in field_error(refused.get_data(as_text=True), "currency")
    assert snapshot() == before
    # Once a buyer holds a ticket, the currency is fixed.
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    assert client.post("/events/winter-gala/cart", data={f"quantity-{tt.id}": "1"}).status_code == 303
    before = snapshot()
    locked = owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form(currency="EUR"))
    assert locked.status_code == 409
    assert "cannot change any more" in field_error(locked.get_data(as_text=True), "currency")
    assert snapshot() == before


def test_capacity_never_goes_below_what_is_sold_and_held(owner_client, client):
    create(owner_client, capacity="50")
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(capacity="20"))
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    tt = the_event().ticket_types[0]
    assert client.post("/events/winter-gala/cart", data={f"quantity-{tt.id}": "6"}).status_code == 303
    before = snapshot()
    refused = owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{tt.id}", data=tt_form(capacity="5"))
    assert refused.status_code == 409
    assert "6 tickets are sold or held" in field_error(refused.get_data(as_text=True), "capacity")
    refused_event = owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form(capacity="4"))
    assert refused_event.status_code == 409
    assert snapshot() == before
    assert (
        owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{tt.id}", data=tt_form(capacity="6")).status_code
        == 303
    )
    assert owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form(capacity="6")).status_code == 303
    event = the_event()
    assert (event.capacity, event.ticket_types[0].capacity) == (6, 6)
    # Sold out now: the shop says so.
    assert "Sold out" in client.get("/events/winter-gala").get_data(as_text=True)


# --- publishing, previewing, cancelling, duplicating ---------------------------------------------


def test_publishing_needs_a_ticket_type_and_a_valid_sales_window(owner_client, client):
    create(owner_client)
    refused = owner_client.post(f"{ORG}/events/winter-gala/publish")
    assert refused.status_code == 409 and "Add a ticket type" in refused.get_data(as_text=True)
    assert client.get("/events/winter-gala").status_code == 404  # a draft is not in the shop
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form())
    # A window that closes before it opens, from a type's own dates.
    tt = the_event().ticket_types[0]
    with write_transaction():
        db.session.get(TicketType, tt.id).sales_end = datetime(2027, 1, 1, tzinfo=UTC)
        db.session.get(TicketType, tt.id).sales_start = datetime(2027, 1, 2, tzinfo=UTC)
    refused = owner_client.post(f"{ORG}/events/winter-gala/publish")
    assert refused.status_code == 409 and "sales window is not valid" in refused.get_data(as_text=True)
    assert the_event().status == EventStatus.DRAFT.value
    with write_transaction():
        db.session.get(TicketType, tt.id).sales_start = None
    assert owner_client.post(f"{ORG}/events/winter-gala/publish").status_code == 303
    assert the_event().status == EventStatus.PUBLISHED.value
    page = client.get("/events/winter-gala").get_data(as_text=True)
    assert "Winter Gala" in page and "<strong>music</strong>" in page
    assert audit_entries(action="event_published")[0].after == '{"status": "published"}'
    assert owner_client.post(f"{ORG}/events/winter-gala/unpublish").status_code == 303
    assert client.get("/events/winter-gala").status_code == 404


def test_a_draft_is_previewed_by_members_only(owner_client, client, club):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form())
    preview = owner_client.get(f"{ORG}/events/winter-gala/preview")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Winter Gala" in page and "Stalls" in page
    assert "Nothing can be bought here" in page and 'action="/events/winter-gala/cart"' not in page
    anonymous = client.get(f"{ORG}/events/winter-gala/preview")
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith("/admin/sign-in")
    assert client.get("/events/winter-gala").status_code == 404
    stranger = make_user("stranger@example.com")
    add_member(stranger, make_organiser("other"), Role.OWNER)
    sign_in_as(client, stranger)
    assert client.get(f"{ORG}/events/winter-gala/preview").status_code == 404


def _order_for(event: Event, status: str = OrderStatus.PAID.value) -> None:
    from storefront.models import Cart, CartStatus

    with write_transaction():
        cart = Cart(token=f"t-{event.id}-{status}", status=CartStatus.CONVERTED.value, expires_at=utcnow())
        db.session.add(cart)
        db.session.flush()
        db.session.add(
            Order(
                code=f"C{event.id}{status[:2]}".upper(),
                access_token=f"a-{event.id}-{status}",
                cart_id=cart.id,
                event_id=event.id,
                buyer_email="buyer@example.com",
                status=status,
                total_minor=2500,
                currency="EUR",
            )
        )


def test_cancelling_is_confirmed_with_what_it_refunds_and_stops_sales(owner_client, client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form())
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    event = the_event()
    tt_id = event.ticket_types[0].id
    _order_for(event)
    before = snapshot()
    confirm = owner_client.get(f"{ORG}/events/winter-gala/cancel")
    assert confirm.status_code == 200 and "This refunds 1 order, total €25.00" in confirm.get_data(as_text=True)
    assert snapshot() == before
    # A buyer holding tickets of it cannot pay once it is cancelled.
    buyer = client
    assert buyer.post("/events/winter-gala/cart", data={f"quantity-{tt_id}": "1"}).status_code == 303
    assert owner_client.post(f"{ORG}/events/winter-gala/cancel").status_code == 303
    assert the_event().status == EventStatus.CANCELLED.value
    assert buyer.get("/events/winter-gala").status_code == 404
    assert buyer.post("/events/winter-gala/cart", data={f"quantity-{tt_id}": "1"}).status_code == 404
    paying = buyer.post("/checkout", data={"email": "ada@example.com", "first-1": "Ada", "last-1": "Lovelace"})
    assert paying.status_code == 409 and "have ended" in paying.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(select(PaymentAttempt)).first() is None
    # Cancelled is for good: no publishing, no editing.
    assert owner_client.post(f"{ORG}/events/winter-gala/publish").status_code == 409
    assert owner_client.post(f"{ORG}/events/winter-gala/edit", data=event_form()).status_code == 409
    assert event_state(the_event()) == EventState.CANCELLED


def test_cancelling_waits_for_payments_in_progress(owner_client, client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form())
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    tt_id = the_event().ticket_types[0].id
    client.post("/events/winter-gala/cart", data={f"quantity-{tt_id}": "1"})
    with client.session_transaction() as session:
        cart = cart_by_token(session["cart"])
    with write_transaction():
        db.session.add(
            PaymentAttempt(
                cart_id=cart.id,
                idempotency_key="k-1",
                lines="[]",
                buyer_email="ada@example.com",
                amount_minor=2500,
                currency="EUR",
                status=AttemptStatus.OPEN.value,
                session_expires_at=utcnow() + timedelta(minutes=30),
            )
        )
    refused = owner_client.post(f"{ORG}/events/winter-gala/cancel")
    assert refused.status_code == 409 and "1 payment for this event is in progress" in refused.get_data(as_text=True)
    assert the_event().status == EventStatus.PUBLISHED.value


def test_duplicating_makes_a_draft_copy_with_nothing_sold(owner_client, client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="Stalls"))
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="Balcony", price="15"))
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    tt_id = the_event().ticket_types[0].id
    client.post("/events/winter-gala/cart", data={f"quantity-{tt_id}": "2"})
    answer = owner_client.post(f"{ORG}/events/winter-gala/duplicate")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/events/winter-gala-copy")
    copy = the_event("winter-gala-copy")
    assert copy.status == EventStatus.DRAFT.value and copy.title == "Winter Gala (copy)"
    assert [(t.name, t.price_minor, t.sold, t.held) for t in copy.ticket_types] == [
        ("Stalls", 2500, 0, 0),
        ("Balcony", 1500, 0, 0),
    ]
    assert owner_client.post(f"{ORG}/events/winter-gala/duplicate").headers["Location"].endswith("-copy-2")


# --- ticket types ----------------------------------------------------------------------------------


def test_ticket_types_are_added_edited_and_priced_in_the_events_currency(owner_client):
    create(owner_client, currency="JPY")
    assert owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(price="12000")).status_code == 303
    before = snapshot()
    refused = owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(price="12.5"))
    assert refused.status_code == 400
    assert "can be charged in JPY" in field_error(refused.get_data(as_text=True), "price")
    for bad in ("-5", "abc", "1e3", "NaN", "١٢", "12 000", "1.2.3"):
        assert owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(price=bad)).status_code == 400
    assert (
        owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(max_per_order="0")).status_code == 400
    )
    assert snapshot() == before
    (tt,) = the_event().ticket_types
    assert tt.price_minor == 12000
    edited = owner_client.post(
        f"{ORG}/events/winter-gala/ticket-types/{tt.id}",
        data=tt_form(name="Arena", price="9000", sales_start="2027-01-01T10:00"),
    )
    assert edited.status_code == 303
    tt = the_event().ticket_types[0]
    assert (tt.name, tt.price_minor, tt.sales_start) == ("Arena", 9000, datetime(2027, 1, 1, 9, 0, tzinfo=UTC))
    (entry,) = audit_entries(action="ticket_type_changed")
    assert {n for n, _b, _a in audit.changes(entry)} == {"name", "price_minor", "sales_start"}


def _names(event_slug: str = "winter-gala") -> list[str]:
    event = the_event(event_slug)
    return [tt.name for tt in sorted(event.ticket_types, key=lambda t: (t.position, t.id))]


def test_ticket_types_are_reordered_with_htmx_and_without(owner_client, app):
    create(owner_client)
    for name in ("A", "B", "C"):
        owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name=name))
    c_id = next(tt.id for tt in the_event().ticket_types if tt.name == "C")
    plain = owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{c_id}/move", data={"direction": "up"})
    assert plain.status_code == 303 and plain.headers["Location"].endswith("#ticket-types")
    assert _names() == ["A", "C", "B"]
    fragment = owner_client.post(
        f"{ORG}/events/winter-gala/ticket-types/{c_id}/move", data={"direction": "up"}, headers={"HX-Request": "true"}
    )
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and body.lstrip().startswith('<div id="ticket-types"')
    assert body.index(">C<") < body.index(">A<") < body.index(">B<")
    assert _names() == ["C", "A", "B"]
    # At the top it stays; a bad direction is refused.
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{c_id}/move", data={"direction": "up"})
    assert _names() == ["C", "A", "B"]
    before = snapshot()
    bad = owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{c_id}/move", data={"direction": "sideways"})
    assert bad.status_code == 400
    assert snapshot() == before
    assert len(audit_entries(action="ticket_types_reordered")) == 2


def test_a_type_with_sales_is_hidden_not_deleted(owner_client, client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="Stalls"))
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="Balcony"))
    owner_client.post(f"{ORG}/events/winter-gala/publish")
    stalls, balcony = the_event().ticket_types
    client.post("/events/winter-gala/cart", data={f"quantity-{stalls.id}": "1"})
    before = snapshot()
    refused = owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{stalls.id}/delete")
    assert refused.status_code == 409 and "hide it instead" in refused.get_data(as_text=True)
    assert snapshot() == before
    hidden = owner_client.post(
        f"{ORG}/events/winter-gala/ticket-types/{stalls.id}/hide", headers={"HX-Request": "true"}
    )
    assert hidden.status_code == 200 and "Hidden" in hidden.get_data(as_text=True)
    page = client.get("/events/winter-gala").get_data(as_text=True)
    assert "Balcony" in page and "Stalls" not in page.split("<h2>Tickets</h2>")[1].split('id="cart"')[0]
    refused_add = client.post("/events/winter-gala/cart", data={f"quantity-{stalls.id}": "1"})
    assert refused_add.status_code == 404
    # The type nobody bought is deleted.
    assert owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{balcony.id}/delete").status_code == 303
    assert [tt.name for tt in the_event().ticket_types] == ["Stalls"]
    assert owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{stalls.id}/show").status_code == 303
    assert not the_event().ticket_types[0].hidden
    assert [e.action for e in audit_entries()][-3:] == [
        "ticket_type_hidden",
        "ticket_type_deleted",
        "ticket_type_shown",
    ]


def test_another_events_ticket_type_is_not_found_in_this_events_urls(owner_client, club):
    create(owner_client)
    other = make_event_of(club[0], "Other", slug="other-night")
    tt_id = other.ticket_types[0].id
    before = snapshot()
    for path in ("", "/move", "/hide", "/delete"):
        answer = owner_client.post(f"{ORG}/events/winter-gala/ticket-types/{tt_id}{path}", data=tt_form())
        assert answer.status_code == 404, path
    assert owner_client.get(f"{ORG}/events/winter-gala/ticket-types/{tt_id}").status_code == 404
    assert snapshot() == before


# --- the list -------------------------------------------------------------------------------------


def _with(event: Event, **values) -> None:
    with write_transaction():
        for name, value in values.items():
            setattr(db.session.get(Event, event.id), name, value)


def test_the_events_list_shows_each_state_its_figures_and_revenue(owner_client, club, client):
    organiser = club[0]
    now = utcnow()
    on_sale = make_event_of(organiser, "On sale")
    _with(make_event_of(organiser, "Draft"), status=EventStatus.DRAFT.value)
    make_event_of(organiser, "Later", sales_start=now + timedelta(days=3))
    _with(make_event_of(organiser, "Over"), starts_at=now - timedelta(days=1))
    _with(make_event_of(organiser, "Called off"), status=EventStatus.CANCELLED.value)
    full = make_event_of(organiser, "Full", capacity=0)
    _order_for(on_sale)
    client.post(f"/events/{on_sale.slug}/cart", data={f"quantity-{on_sale.ticket_types[0].id}": "3"})
    page = owner_client.get(f"{ORG}/events").get_data(as_text=True)
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r'<li class="admin-event[^"]*">.*?>([^<]+)</a>.*?</li>', page, re.S)
    }
    assert "On sale" in rows["On sale"] and "Held</dt><dd>3" in rows["On sale"] and "€25.00" in rows["On sale"]
    assert "0 / 100" in rows["On sale"]
    assert "Draft</span>" in rows["Draft"]
    assert "Not yet on sale" in rows["Later"]
    assert "Past" in rows["Over"]
    assert "Cancelled" in rows["Called off"]
    assert "Sold out" in rows[full.title] and "0 / 0" in rows[full.title]
    assert owner_client.get(f"{ORG}/").get_data(as_text=True).count('class="admin-event ') == 6


def test_a_member_limited_to_some_events_lists_only_those(app, club):
    organiser = club[0]
    mine, theirs = make_event_of(organiser, "Mine"), make_event_of(organiser, "Not mine")
    manager = make_user("manager@club.example")
    add_member(manager, organiser, Role.MANAGER, events=[mine])
    client = app.test_client()
    sign_in_as(client, manager)
    page = client.get(f"{ORG}/events").get_data(as_text=True)
    assert "Mine" in page and "Not mine" not in page
    assert client.get(f"{ORG}/events/{theirs.slug}").status_code == 404
    assert client.post(f"{ORG}/events/{theirs.slug}/publish").status_code == 404


def test_a_viewer_reads_but_cannot_change(app, club):
    organiser = club[0]
    event = make_event_of(organiser, "Readable")
    viewer = make_user("viewer@club.example")
    add_member(viewer, organiser, Role.VIEWER)
    client = app.test_client()
    sign_in_as(client, viewer)
    page = client.get(f"{ORG}/events/{event.slug}").get_data(as_text=True)
    assert "Readable" in page and "<form" not in page.split("<main")[1] and "New event" not in page
    before = snapshot()
    for path in ("/edit", "/publish", "/unpublish", "/cancel", "/duplicate", "/ticket-types"):
        assert client.post(f"{ORG}/events/{event.slug}{path}", data=event_form()).status_code == 404, path
    assert client.get(f"{ORG}/events/new").status_code == 404
    assert snapshot() == before


def test_forty_fast_changes_each_answer_and_each_is_audited(owner_client):
    create(owner_client)
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="A"))
    owner_client.post(f"{ORG}/events/winter-gala/ticket-types", data=tt_form(name="B"))
    a_id = the_event().ticket_types[0].id
    answers = [
        owner_client.post(
            f"{ORG}/events/winter-gala/ticket-types/{a_id}/move", data={"direction": "down" if i % 2 == 0 else "up"}
        ).status_code
        for i in range(40)
    ]
    assert answers == [303] * 40
    assert _names() == ["A", "B"]
    assert len(audit_entries(action="ticket_types_reordered")) == 40
