""" "Lost your tickets?": the links to every order of an address, by mail; the same answer on
screen (and no lookup before it) whether or not the address has orders; limits per client
and per address; CSRF. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from .admin_support import comparable, mail_dir, mails_to, outbox  # noqa: F401 (mail_dir: fixture)
from .factories import make_event, make_order

PATH = "/lost-tickets"


def _client(app, address: str = "198.51.100.20"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _ask(client, email: str):
    """Post the form; the answer is read, then closed (as a server does once it is sent)."""
    answer = client.post(PATH, data={"email": email})
    body = answer.get_data(as_text=True)
    answer.close()
    return answer, body


def test_the_page_offers_the_form(client):
    page = client.get(PATH)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Lost your tickets?" in html and 'name="email"' in html and 'type="email"' in html
    # Every shop page links to it.
    assert f'href="{PATH}"' in client.get("/").get_data(as_text=True)


def test_an_address_gets_a_link_to_each_of_its_orders_whatever_its_case(app, mail_dir):
    first, second = make_event(title="Spring Gala"), make_event(title="Autumn Fair")
    mine = [make_order(first, email="Ada@Example.com"), make_order(second, email="ada@example.com")]
    someone_elses = make_order(first, email="grace@example.com")
    answer, _ = _ask(_client(app), "ADA@example.COM")
    assert answer.status_code == 200
    [message] = outbox(app)
    assert message["To"].lower() == "ada@example.com"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for order in mine:
        link = f"http://127.0.0.1:5000/orders/{order.access_token}"
        assert link in text and f'href="{link}"' in html and order.code in text
    assert "Spring Gala" in text and "Autumn Fair" in text
    assert someone_elses.access_token not in text and someone_elses.code not in text


def test_the_answer_is_the_same_whether_or_not_the_address_has_orders(app, mail_dir):
    make_order(make_event(), email="known@example.com")
    known, known_page = _ask(_client(app, "198.51.100.21"), "known@example.com")
    unknown, unknown_page = _ask(_client(app, "198.51.100.22"), "unknown@example.com")
    assert known.status_code == unknown.status_code == 200
    assert comparable(known, "known@example.com") == comparable(unknown, "unknown@example.com")
    # The same headers too, but for what differs between any two clients (their session and request ids).
    differ = {"Set-Cookie", "X-Request-Id"}
    assert [(k, v) for k, v in known.headers if k not in differ] == [
        (k, v) for k, v in unknown.headers if k not in differ
    ]
    assert {k for k, _v in known.headers} == {k for k, _v in unknown.headers}
    assert len(mails_to(app, "known@example.com")) == 1 and mails_to(app, "unknown@example.com") == []


def test_the_answer_leaves_before_the_orders_are_looked_up_or_mailed(app, mail_dir):
    """The timing says nothing either: nothing about the address is read before the answer
    is sent; the lookup and the mail run once the server closes the answer."""
    make_order(make_event(), email="known@example.com")
    for n, email in enumerate(("known@example.com", "unknown@example.com") * 3):
        sent = len(outbox(app))
        answer = _client(app, f"198.51.100.{30 + n}").post(PATH, data={"email": email})
        assert answer.status_code == 200
        assert len(outbox(app)) == sent, "the mail went out before the answer was sent"
        answer.close()
    assert len(mails_to(app, "known@example.com")) == 3 and mails_to(app, "unknown@example.com") == []


@pytest.mark.parametrize(
    "typed", ["", "not an address", "a@b.example, c@d.example", "Eve <eve@evil.example>", "x" * 300]
)
def test_what_is_no_address_is_refused_with_a_message_and_no_mail(app, mail_dir, typed):
    make_order(make_event(), email="known@example.com")
    answer, page = _ask(_client(app), typed)
    assert answer.status_code == 400
    assert "email address" in page
    assert outbox(app) == []


@pytest.mark.app_config(LIMIT_LOST_TICKETS_CLIENT="5 per 15 minutes", LIMIT_LOST_TICKETS_ADDRESS="3 per hour")
def test_forty_fast_requests_from_one_client_get_five_answers_and_then_429(app, mail_dir):
    make_order(make_event(), email="known@example.com")
    client = _client(app)
    answers = [_ask(client, f"person{n}@example.com" if n % 2 else "known@example.com")[0] for n in range(40)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 35
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert len(mails_to(app, "known@example.com")) == 3  # requests 0, 2 and 4
    # Another client is not held up by this one (but for the address it asked about thrice).
    other = _client(app, "198.51.100.99")
    assert _ask(other, "someone@example.com")[0].status_code == 200
    assert _ask(other, "known@example.com")[0].status_code == 429


@pytest.mark.app_config(LIMIT_LOST_TICKETS_CLIENT="100 per 15 minutes", LIMIT_LOST_TICKETS_ADDRESS="3 per hour")
def test_one_address_asked_for_from_many_clients_gets_three_mails(app, mail_dir):
    make_order(make_event(), email="known@example.com")
    statuses = [_ask(_client(app, f"203.0.113.{n}"), "Known@example.com")[0].status_code for n in range(10)]
    assert statuses == [200] * 3 + [429] * 7
    assert len(mails_to(app, "known@example.com")) == 3


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_cross_site_post_sends_nothing_and_the_pages_token_works(app, mail_dir):
    make_order(make_event(), email="known@example.com")
    client = _client(app)
    forged, _ = _ask(client, "known@example.com")
    assert forged.status_code == 400 and outbox(app) == []
    from .admin_support import csrf_token_of

    token = csrf_token_of(client.get(PATH).get_data(as_text=True))
    answer = client.post(PATH, data={"email": "known@example.com", "csrf_token": token})
    answer.close()
    assert answer.status_code == 200 and len(outbox(app)) == 1


def test_a_failing_mail_server_changes_nothing_on_screen(app, mail_dir):
    make_order(make_event(), email="known@example.com")
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=9, MAIL_TIMEOUT=1)
    answer, page = _ask(_client(app), "known@example.com")
    assert answer.status_code == 200 and "on its way" in page
