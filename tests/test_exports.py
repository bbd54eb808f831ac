"""Per-event CSV exports over HTTP: streamed, audited, parsed back, safe in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pytest

from storefront.staff_models import Role

from .admin_support import add_member, audit_entries, make_event_of, make_organiser, quick_users, sign_in_as
from .factories import make_order


@pytest.fixture
def shop(app):
    organiser = make_organiser("hall", "Concert Hall")
    event = make_event_of(organiser, "Tonight", slug="tonight", timezone="Europe/Paris")
    owner, door = quick_users("owner@hall.example", "door@hall.example")
    add_member(owner, organiser, Role.OWNER)
    add_member(door, organiser, Role.DOOR)
    return event, owner, door


def client_as(app, user):
    client = app.test_client()
    sign_in_as(client, user)
    return client


BASE = "/admin/o/hall/events/tonight/exports"


def test_orders_export_streams_parses_back_and_is_audited(app, shop):
    event, owner, _door = shop
    order = make_order(event, email="=cmd@example.com")
    answer = client_as(app, owner).get(f"{BASE}/orders.csv")
    assert answer.status_code == 200
    assert answer.is_streamed
    assert answer.mimetype == "text/csv"
    text = answer.get_data(as_text=True)
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0][1] == "Created (Europe/Paris)"
    assert table[0][-1] == "Currency"
    assert table[1][0] == order.code
    assert table[1][2] == "'=cmd@example.com"
    assert table[1][-1] == order.currency
    (entry,) = audit_entries(action="event_exported")
    assert entry.event_id == event.id and '"kind": "orders"' in entry.after


def test_unknown_kind_is_404_and_door_role_cannot_export_emails(app, shop):
    _event, owner, door = shop
    assert client_as(app, owner).get(f"{BASE}/secrets.csv").status_code == 404
    assert client_as(app, door).get(f"{BASE}/orders.csv").status_code in (403, 404)
    assert audit_entries(action="event_exported") == []
