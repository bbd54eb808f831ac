"""Request sizes are limited: a 413 with a message, nothing read beyond the limit, nothing changed."""

from __future__ import annotations

import re

import pytest

from .factories import make_event, ticket_type
from .test_routes import cart_count

FORM = "application/x-www-form-urlencoded"


class EndlessBody:
    """A request body of ``size`` bytes that counts how much of it the app read."""

    def __init__(self, size: int, chunk: bytes = b"quantity-1=1&") -> None:
        self.size = size
        self.chunk = chunk
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        data = (self.chunk * (n // len(self.chunk) + 1))[:n]
        self.read_bytes += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        return self.read(limit if limit and limit > 0 else 65536)

    # Werkzeug's test client measures a given stream by seeking to its end: a virtual end.
    def tell(self) -> int:
        return self._position if hasattr(self, "_position") else self.read_bytes

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = self.size if whence == 2 else offset
        if whence == 0:
            del self._position
        return self.tell()


def _body(body: EndlessBody, *, chunked: bool = False) -> dict:
    """How a server hands this body over: with its Content-Length, or chunked, with
    ``wsgi.input_terminated`` (the server ends the stream, as gunicorn does)."""
    if chunked:
        return {
            "input_stream": body,
            "headers": {"Transfer-Encoding": "chunked"},
            "environ_overrides": {"wsgi.input_terminated": True},
        }
    return {"input_stream": body}


def test_the_limits_have_defaults_that_fit_the_shops_forms(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 64 * 1024
    assert app.config["MAX_FORM_MEMORY_SIZE"] == 16 * 1024
    assert app.config["MAX_FORM_PARTS"] == 200
    assert app.config["WEBHOOK_MAX_CONTENT_LENGTH"] == 512 * 1024


@pytest.mark.parametrize("with_htmx", [False, True])
def test_a_two_megabyte_form_is_refused_unparsed(client, with_htmx):
    event = make_event()
    tt = event.ticket_types[0]
    headers = {"HX-Request": "true"} if with_htmx else {}
    response = client.post(
        f"/events/{event.slug}/cart", data={f"quantity-{tt.id}": "1", "note": "x" * 2_000_000}, headers=headers
    )
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "larger than this shop takes" in html
    if with_htmx:
        assert "<html" not in html and response.headers["HX-Retarget"] == "#messages"
    assert ticket_type(tt.id).held == 0 and cart_count() == 0


def test_too_many_parts_or_too_much_form_is_refused(client):
    """The shop's forms are urlencoded and bounded by MAX_CONTENT_LENGTH as a whole;
    multipart bodies (which no page of ours sends) also by part count and field memory."""
    event = make_event()
    tt = event.ticket_types[0]
    url = f"/events/{event.slug}/cart"
    many = {f"f{i}": "1" for i in range(300)} | {f"quantity-{tt.id}": "1"}
    assert client.post(url, data=many, content_type="multipart/form-data").status_code == 413
    one_huge = {f"quantity-{tt.id}": "1", "note": "x" * 20_000}  # under the body limit, over the field memory
    assert client.post(url, data=one_huge, content_type="multipart/form-data").status_code == 413
    assert client.post(url, data={f"quantity-{tt.id}": "1", "x": "y" * 70_000}).status_code == 413
    assert ticket_type(tt.id).held == 0 and cart_count() == 0
    small = {f"f{i}": "1" for i in range(20)} | {f"quantity-{tt.id}": "1"}
    assert client.post(url, data=small, content_type="multipart/form-data").status_code == 303
    assert ticket_type(tt.id).held == 1


def test_the_largest_checkout_form_fits(client, app):
    """Ten tickets' names of 100 characters each, in a script that takes 3 bytes a character."""
    form = {"email": "ada@example.com", "csrf_token": "x" * 100}
    for n in range(1, app.config["MAX_TICKETS_PER_CART"] + 1):
        form[f"first-{n}"] = form[f"last-{n}"] = "東" * 100
    response = client.post("/checkout", data=form)
    assert response.status_code != 413
    assert response.status_code == 409  # no cart: nothing to pay, but read and answered


def test_a_fifty_megabyte_body_is_not_read(client):
    event = make_event()
    body = EndlessBody(50_000_000)
    response = client.post(f"/events/{event.slug}/cart", input_stream=body, content_length=body.size, content_type=FORM)
    assert response.status_code == 413
    assert body.read_bytes == 0  # the Content-Length said enough
    assert cart_count() == 0


def test_a_chunked_body_is_read_no_further_than_the_limit(client, app):
    event = make_event()
    body = EndlessBody(50_000_000)
    response = client.post(f"/events/{event.slug}/cart", content_type=FORM, **_body(body, chunked=True))
    assert response.status_code == 413
    assert body.read_bytes <= app.config["MAX_CONTENT_LENGTH"] + 65536
    assert cart_count() == 0


def test_the_webhook_has_a_limit_of_its_own(client, app):
    body = EndlessBody(50_000_000, chunk=b'{"a": 1}')
    response = client.post(
        "/webhooks/stripe", input_stream=body, content_length=body.size, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json() == {"error": "too_large"}
    assert body.read_bytes == 0
    chunked = EndlessBody(50_000_000, chunk=b'{"a": 1}')
    response = client.post("/webhooks/stripe", content_type="application/json", **_body(chunked, chunked=True))
    assert response.status_code == 413
    assert chunked.read_bytes <= app.config["WEBHOOK_MAX_CONTENT_LENGTH"] + 65536


def test_an_event_larger_than_a_form_still_reaches_the_webhook(client, app):
    """Over the shop's 64 KiB but under the webhook's limit: read, and refused only for its signature."""
    payload = b'{"padding": "' + b"x" * 100_000 + b'"}'
    response = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid signature"}


def test_the_error_page_says_what_happened(client):
    response = client.post("/cart/empty", data={"x": "y" * 100_000})
    assert response.status_code == 413
    assert re.search(r"<h1>\s*That was more than we accept\s*</h1>", response.get_data(as_text=True))
