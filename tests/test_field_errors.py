"""Error messages tied to their fields (issue 12, WCAG 1.3.1 / 3.3.1): a field with an
error says so (``aria-invalid="true"``) and names the message (``aria-describedby``),
on the shop's checkout form and on the back office's forms (the shared ``field`` macro)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from .checkout_support import add
from .factories import make_event

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


VOID = {"input", "br", "img", "meta", "link", "hr"}


class _Page(HTMLParser):
    """The page's inputs (by name, their attributes) and the text of each element with an id."""

    def __init__(self):
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs
        if tag not in VOID:
            self._open.append((tag, attrs.get("id")))
            if attrs.get("id"):
                self.texts[attrs["id"]] = ""

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _tag, element_id in self._open:
            if element_id:
                self.texts[element_id] += data


def fields(html: str):
    page = _Page()
    page.feed(html)
    return page, page.inputs


def described_by(page, tag) -> str:
    ids = (tag.get("aria-describedby") or "").split()
    assert ids, f"{tag['name']} names no message"
    assert all(i in page.texts for i in ids), (ids, "no element with that id")
    return " ".join(" ".join(page.texts[i].split()) for i in ids)


def test_a_bad_email_at_checkout_is_tied_to_the_email_field(app, client):
    event = make_event(ticket_types=[{"name": "Floor", "price_minor": 2500, "capacity": 10}])
    add(client, event, {event.ticket_types[0].id: 1})
    response = client.post("/checkout", data={"email": "not an address", "first-1": "Ada", "last-1": "Lovelace"})
    assert response.status_code == 400
    soup, by_name = fields(response.get_data(as_text=True))
    assert by_name["email"].get("aria-invalid") == "true"
    assert "valid email address" in described_by(soup, by_name["email"])
    # The fields without a fault are not marked.
    assert by_name["first-1"].get("aria-invalid") is None
    assert by_name["last-1"].get("aria-describedby") is None


def test_a_missing_last_name_marks_that_field_only(app, client):
    event = make_event(ticket_types=[{"name": "Floor", "price_minor": 2500, "capacity": 10}])
    add(client, event, {event.ticket_types[0].id: 2})
    data = {"email": "ada@example.com", "first-1": "Ada", "last-1": "Lovelace", "first-2": "Charles", "last-2": " "}
    response = client.post("/checkout", data=data)
    assert response.status_code == 400
    soup, by_name = fields(response.get_data(as_text=True))
    assert by_name["last-2"].get("aria-invalid") == "true"
    assert "for ticket 2" in described_by(soup, by_name["last-2"])
    assert [name for name, tag in by_name.items() if tag.get("aria-invalid")] == ["last-2"]


def test_a_back_office_form_ties_each_error_to_its_field(app, client):
    response = client.post("/admin/sign-in", data={"email": "", "password": ""})
    soup, by_name = fields(response.get_data(as_text=True))
    for name in ("email", "password"):
        tag = by_name[name]
        assert tag.get("aria-invalid") == "true", tag
        assert re.search(r"\w", described_by(soup, tag)), tag
