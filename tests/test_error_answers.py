"""Error answers: a page for a person, a small fragment retargeted to ``#messages`` for htmx
(never a whole page swapped into the cart box), JSON for the webhook; headers kept."""

from __future__ import annotations

import re

import pytest
from werkzeug.exceptions import TooManyRequests

from .factories import make_event, ticket_type
from .test_routes import add, session_cart_token

HX = {"HX-Request": "true"}


def assert_message_fragment(response, status: int, words: str) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert "<html" not in html and 'id="cart"' not in html, html[:300]
    assert words in html
    assert response.headers["HX-Retarget"] == "#messages"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_an_htmx_change_with_a_lost_csrf_token_gets_a_message_fragment(client):
    event = make_event()
    tt = event.ticket_types[0]
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert add(client, event, {tt.id: 2}, **HX, **{"X-CSRFToken": token}).status_code == 200
    line_id = re.search(r'id="line-(\d+)"', client.get("/cart").get_data(as_text=True)).group(1)
    refused = client.post(f"/cart/lines/{line_id}", data={"quantity": "3"}, headers={**HX, "X-CSRFToken": "stale"})
    assert_message_fragment(refused, 400, "Your session has expired")
    assert ticket_type(tt.id).held == 2
    # Without htmx, the whole page.
    page = client.post(f"/cart/lines/{line_id}", data={"quantity": "3"})
    assert page.status_code == 400 and "<html" in page.get_data(as_text=True)
    assert "HX-Retarget" not in page.headers


def test_an_htmx_request_for_nothing_gets_a_message_fragment(client):
    event = make_event()
    add(client, event, {event.ticket_types[0].id: 1})
    assert session_cart_token(client)
    assert_message_fragment(client.post("/cart/lines/99999999999/remove", headers=HX), 404, "This page does not exist")
    assert_message_fragment(client.get("/cart/empty", headers=HX), 405, "That action is not possible here")


def test_an_htmx_request_too_large_gets_a_message_fragment(client):
    assert_message_fragment(
        client.post("/cart/empty", data={"x": "y" * 100_000}, headers=HX), 413, "larger than this shop takes"
    )


def test_a_limited_request_keeps_its_retry_after(app):
    @app.post("/_test/limited")
    def limited():
        raise TooManyRequests(retry_after=30)

    client = app.test_client()
    response = client.post("/_test/limited", headers=HX)
    assert_message_fragment(response, 429, "Please wait a moment")
    assert response.headers["Retry-After"] == "30"
    page = client.post("/_test/limited")
    assert page.status_code == 429 and "<html" in page.get_data(as_text=True)
    assert page.headers["Retry-After"] == "30"


def test_a_failure_gets_an_honest_message(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as in production, not raise into the test

    @app.post("/_test/broken")
    def broken():
        raise RuntimeError("boom")

    client = app.test_client()
    response = client.post("/_test/broken", headers=HX)
    assert_message_fragment(response, 500, "Please reload the page to see where things stand")
    html = client.post("/_test/broken").get_data(as_text=True)
    assert "Something went wrong" in html
    assert "Nothing was changed" not in html  # a 500 may come after part of the work was saved


def test_the_webhook_gets_json_errors(client):
    assert client.get("/webhooks/stripe").get_json() == {"error": "not_allowed"}
    response = client.post("/webhooks/stripe", data=b"x" * 600_000, content_type="application/json")
    assert response.status_code == 413 and response.get_json() == {"error": "too_large"}


def test_a_page_has_the_message_area_htmx_errors_go_to(client):
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'<div id="messages"[^>]*aria-live="assertive"', page)
