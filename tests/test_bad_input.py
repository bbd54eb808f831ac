"""Bad input is a clear 4xx and changes nothing; never a 500, never after a half-done change.

Fixed cases, each found by an outside review, on SQLite and PostgreSQL (the ``app``
fixture runs both). The property test over every route is ``test_input_property.py``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from storefront import parsing
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import CartStatus, Order, PaymentAttempt

from .factories import cart_by_token, make_event, ticket_type
from .test_routes import _filled as filled
from .test_routes import add, cart_count


def _filled(client, quantity: int = 2):
    """An event, and this browser's cart holding ``quantity`` of its ticket type, and that line."""
    event, cart = filled(client, (quantity,))
    return event, cart, cart.items[0]


def _in_digits(number: int, zero: int) -> str:
    """``number`` written in the decimal digits that start at code point ``zero``."""
    return "".join(chr(zero + int(d)) for d in str(number))


ARABIC_INDIC_ZERO, FULLWIDTH_ZERO, MATH_BOLD_ZERO = 0x660, 0xFF10, 0x1D7CE
NOT_ASCII_NUMBERS = ["²", "١", "٣", "１", "３", "𝟑", "3²", "⑶", "Ⅲ", "3\u200b"]


# --- numbers are ASCII digits ------------------------------------------------------------------


@pytest.mark.parametrize("raw", NOT_ASCII_NUMBERS)
@pytest.mark.parametrize("with_htmx", [True, False])
def test_a_quantity_in_other_digits_is_refused(client, raw, with_htmx):
    event = make_event()
    tt = event.ticket_types[0]
    headers = {"HX-Request": "true"} if with_htmx else {}
    response = client.post(f"/events/{event.slug}/cart", data={f"quantity-{tt.id}": raw}, headers=headers)
    assert response.status_code == 400
    assert "Please enter a whole number of tickets." in response.get_data(as_text=True)
    assert ticket_type(tt.id).held == 0 and cart_count() == 0


@pytest.mark.parametrize("zero", [ARABIC_INDIC_ZERO, FULLWIDTH_ZERO, MATH_BOLD_ZERO])
def test_a_ticket_type_id_in_other_digits_is_refused(client, zero):
    event = make_event()
    tt = event.ticket_types[0]
    response = client.post(f"/events/{event.slug}/cart", data={f"quantity-{_in_digits(tt.id, zero)}": "1"})
    assert response.status_code == 400
    assert ticket_type(tt.id).held == 0 and cart_count() == 0
    superscript = client.post(f"/events/{event.slug}/cart", data={"quantity-²": "1"})
    assert superscript.status_code == 400 and cart_count() == 0


@pytest.mark.parametrize("zero", [ARABIC_INDIC_ZERO, FULLWIDTH_ZERO])
def test_a_line_id_in_other_digits_names_no_line(client, zero):
    event, cart, line = _filled(client)
    path = f"/cart/lines/{_in_digits(line.id, zero)}"
    assert client.post(path, data={"quantity": "1"}).status_code == 404
    assert client.post(path + "/remove").status_code == 404
    assert cart_by_token(cart.token).items[0].quantity == 2
    assert ticket_type(line.ticket_type_id).held == 2


@pytest.mark.parametrize("started", ["²", "١٢٣", "１７００００００００", "99999999999999999999", "-5", "1e9", "\x00"])
def test_a_strange_started_is_ignored(client, started):
    for path in ("/checkout/success", "/checkout/status"):
        response = client.get(path, query_string={"session_id": "cs_test_nothing", "started": started})
        assert response.status_code == 404
        assert "We could not find this payment" in response.get_data(as_text=True)


def test_ascii_int_takes_ascii_digits_only():
    assert parsing.ascii_int("42", max_digits=3) == 42
    assert parsing.ascii_int("0042", max_digits=4) == 42
    for raw in [None, "", " 4", "4 ", "+4", "-4", "4.0", "1234", "4\n", *NOT_ASCII_NUMBERS]:
        assert parsing.ascii_int(raw, max_digits=3) is None, raw


# --- ids beyond what the database holds are not found ------------------------------------------


@pytest.mark.parametrize("line_id", [2**31, 2**63 - 1, 2**63 + 5, 10**40, 0])
def test_a_huge_line_id_is_not_found(client, line_id):
    event, cart, line = _filled(client)
    for headers in ({}, {"HX-Request": "true"}):
        assert client.post(f"/cart/lines/{line_id}", data={"quantity": "1"}, headers=headers).status_code == 404
        assert client.post(f"/cart/lines/{line_id}/remove", headers=headers).status_code == 404
    assert cart_by_token(cart.token).items[0].quantity == 2
    assert ticket_type(line.ticket_type_id).held == 2


@pytest.mark.parametrize("tt_id", [2**31, 2**63 + 5, 10**40])
def test_a_huge_ticket_type_id_is_not_found(client, tt_id):
    event = make_event()
    response = client.post(
        f"/events/{event.slug}/cart", data={f"quantity-{tt_id}": "1"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 404
    assert "That ticket type does not exist." in response.get_data(as_text=True)
    assert cart_count() == 0


def test_ids_in_urls_fit_the_database():
    assert parsing.db_id(str(parsing.MAX_DB_ID)) == parsing.MAX_DB_ID
    assert parsing.db_id(str(parsing.MAX_DB_ID + 1)) is None
    assert parsing.db_id("0") is None and parsing.db_id("1") == 1


@pytest.mark.parametrize(
    "path",
    [
        "/events/a%00b",
        "/events/" + "x" * 500,
        "/events/caf%C3%A9",
        "/events/a%0D%0Ab/cart",
        "/orders/%00",
        "/orders/" + "t" * 65,
        "/orders/a%20b",
    ],
)
def test_strange_slugs_and_tokens_are_not_found(client, path):
    response = client.post(path) if path.endswith("/cart") else client.get(path)
    assert response.status_code == 404
    assert cart_count() == 0


@pytest.mark.parametrize("session_id", ["cs_\x00", "cs_" + "a" * 300, "x" * 5000, "cs_a b", "１"])
def test_a_strange_session_id_is_not_found(client, session_id):
    _filled(client)
    for path in ("/checkout/success", "/checkout/status"):
        assert client.get(path, query_string={"session_id": session_id}).status_code == 404


# --- next: one strict function, decided before anything changes --------------------------------

UNSAFE_TARGETS = [
    "/cart\r\nSet-Cookie: x=1",
    "/cart\n",
    "/\t/evil.example",
    "/\n/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/caf\u00e9",
    "/" + "a" * 3000,
    "/ok\x00",
]


@pytest.mark.parametrize("target", UNSAFE_TARGETS)
def test_an_unsafe_next_falls_back_to_the_cart(client, target):
    event, cart, line = _filled(client)
    response = client.post(f"/cart/lines/{line.id}", data={"quantity": "3", "next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == "/cart"
    assert ticket_type(line.ticket_type_id).held == 3  # the change the 303 reports is made
    response = client.post("/cart/empty", data={"next": target})
    assert response.status_code == 303 and response.headers["Location"] == "/cart"
    assert ticket_type(line.ticket_type_id).held == 0


def test_a_safe_next_is_followed(client):
    event, cart, line = _filled(client)
    target = f"/events/{event.slug}?from=cart"
    response = client.post(f"/cart/lines/{line.id}", data={"quantity": "1", "next": target})
    assert response.status_code == 303 and response.headers["Location"] == target


def test_the_tab_trick_is_no_redirect_off_site():
    # Werkzeug's form parser turns %09 into a tab; a browser drops it and reads //evil.example.
    assert parsing.local_redirect_target("/\t/evil.example") is None
    for target in UNSAFE_TARGETS:
        assert parsing.local_redirect_target(target) is None, target
    for target in ["/", "/cart", "/events/jazz-night", "/events/x?a=1&b=%2F", "/checkout"]:
        assert parsing.local_redirect_target(target) == target


# --- emails: one plain address --------------------------------------------------------------------

BAD_EMAILS = [
    "a@example.com,root",
    "a@example.com, b@example.com",
    "a@example.com;b@example.com",
    "x <evil@attacker.example>",
    '"x" <evil@attacker.example>',
    "evil@attacker.example\r\nBcc: root@example.com",
    "a@example.com\x00",
    '"a@b"@example.com',
    "root",
    "a@localhost",
    "a@[127.0.0.1]",
    "ü@example.com",
    "a" * 250 + "@example.com",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_checkout_refuses_anything_but_one_plain_address(client, email):
    event, cart, line = _filled(client, 1)
    response = client.post("/checkout", data={"email": email, "first-1": "Ada", "last-1": "Lovelace"})
    assert response.status_code == 400
    assert "Please enter a valid email address" in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one() == 0
    assert cart_by_token(cart.token).status == CartStatus.ACTIVE.value


def test_plain_email_keeps_ordinary_addresses():
    assert parsing.plain_email("ada@example.com") == "ada@example.com"
    assert parsing.plain_email("Ada.Lovelace+tickets@Example.COM") == "Ada.Lovelace+tickets@example.com"
    assert parsing.plain_email("ana@bücher.example") == "ana@xn--bcher-kva.example"
    for email in BAD_EMAILS:
        assert parsing.plain_email(email) is None, email


@pytest.mark.parametrize("first", ["Ada\x00", "Ada\r\nLovelace", "A\tda", "Ada\x7f", "Ad\x85a"])
def test_checkout_refuses_names_with_control_characters(client, first):
    event, cart, line = _filled(client, 1)
    response = client.post("/checkout", data={"email": "ada@example.com", "first-1": first, "last-1": "Lovelace"})
    assert response.status_code == 400
    assert "cannot be printed on a ticket" in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.execute(select(func.count(PaymentAttempt.id))).scalar_one() == 0


def test_the_mail_module_builds_no_message_for_more_than_one_plain_address(app, tmp_path):
    """The second line of defence: an order whose address is not one plain address (written
    before checkout checked, say) gets no mail, its outbox row says why and waits for a
    person, and the next `flask send-confirmations` tries again."""
    from storefront import mail, outbox
    from storefront.models import MailOutbox

    event = make_event(ticket_types=[{"name": "Free", "price_minor": 0}])
    client = app.test_client()
    add(client, event, {event.ticket_types[0].id: 1})
    response = client.post("/checkout", data={"email": "ada@example.com", "first-1": "Ada", "last-1": "L"})
    assert response.status_code == 303
    app.config["MAIL_OUTBOX"] = str(tmp_path)
    for bad in ["a@example.com,root", "x <evil@attacker.example>"]:
        with write_transaction():
            db.session.execute(update(Order).values(buyer_email=bad))
        assert outbox.send_due(also_waiting=True) == outbox.Sent(confirmations=0, notices=0, failures=1)
        assert list(tmp_path.iterdir()) == []
        db.session.rollback()
        row = db.session.execute(select(MailOutbox)).scalar_one()
        assert row.status == "failed" and row.sent_at is None and "not one plain address" in row.last_error
    with app.test_request_context():
        with pytest.raises(mail.InvalidRecipient):
            mail._message(to="a@example.com, root@example.com", subject="s", text="t", html="<p>h</p>")


def test_no_route_takes_an_id_that_is_not_plain_ascii_digits_or_does_not_fit(app):
    """Werkzeug's ``int`` converter takes any Unicode digit (``١٢٣`` is 123) and any length;
    every id in a URL goes through ``parsing``'s ``id`` converter instead."""
    from werkzeug.exceptions import NotFound
    from werkzeug.routing.converters import NumberConverter

    loose = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if any(isinstance(converter, NumberConverter) for converter in rule._converters.values())
    ]
    assert loose == []
    urls = app.url_map.bind("shop.test")
    for raw in ["١٢٣", "١", "9" * 30, "0", "-1"]:
        for path in (f"/admin/o/org/members/{raw}", f"/admin/o/org/events/e/ticket-types/{raw}"):
            with pytest.raises(NotFound):
                urls.match(path, method="GET")
    assert urls.match("/admin/o/org/members/123", method="GET") == (
        "admin.member",
        {"organiser": "org", "membership_id": 123},
    )
