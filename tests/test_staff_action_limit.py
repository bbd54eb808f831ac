"""What 40 fast changes by one signed-in member do: the first ``LIMIT_STAFF_ACTIONS`` are
made, the rest are answered 429 with ``Retry-After`` before the view runs (nothing written,
no audit entry), for that member only; reading pages goes on, and the door's scans count
against the door's own limit instead."""

from __future__ import annotations

import pytest

from storefront.extensions import db
from storefront.models import Ticket
from storefront.staff_models import Role

from .admin_support import add_member, audit_actions, make_event_of, make_organiser, quick_users, sign_in_as
from .factories import make_order
from .test_door_http import nonce

HX = {"HX-Request": "true"}


@pytest.fixture
def shop_floor(app):
    app.config["LIMIT_STAFF_ACTIONS"] = "5 per minute"
    organiser = make_organiser("floor", "Floor Org")
    event = make_event_of(organiser, "Floor Night", slug="floor-night")
    manager, box_office, door = quick_users("m@floor.example", "b@floor.example", "d@floor.example")
    add_member(manager, organiser, Role.MANAGER)
    add_member(box_office, organiser, Role.BOX_OFFICE)
    add_member(door, organiser, Role.DOOR)
    order = make_order(event, [("Ada", "Lovelace")])
    base = f"/admin/o/floor/events/floor-night/orders/{order.code}"
    return {"manager": manager, "box_office": box_office, "door": door, "order": order, "base": base}


def _client(app, user):
    client = app.test_client()
    sign_in_as(client, user)
    return client


def _rename(client, floor, first: str, **headers):
    ticket = floor["order"].tickets[0]
    return client.post(
        f"{floor['base']}/tickets/{ticket.code}/name", data={"first_name": first, "last_name": "King"}, headers=headers
    )


def _name(floor) -> str:
    db.session.rollback()
    return db.session.get(Ticket, floor["order"].tickets[0].id).attendee_first_name


def test_forty_fast_changes_by_one_member(app, shop_floor):
    manager = _client(app, shop_floor["manager"])
    answers = [_rename(manager, shop_floor, f"Name{i}").status_code for i in range(40)]
    assert answers[:5] == [303] * 5
    assert answers[5:] == [429] * 35
    refused = _rename(manager, shop_floor, "Late")
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many attempts" in refused.get_data(as_text=True)
    # The refused changes did nothing: the fifth name stands, five audit entries.
    assert _name(shop_floor) == "Name4"
    assert audit_actions(action="ticket.renamed") == ["ticket.renamed"] * 5
    # Reading goes on for this member; another member's changes are not held back.
    assert manager.get(shop_floor["base"]).status_code == 200
    assert _rename(_client(app, shop_floor["box_office"]), shop_floor, "Other").status_code == 303
    assert _name(shop_floor) == "Other"


def test_an_htmx_change_past_the_limit_gets_a_message_in_the_page(app, shop_floor):
    manager = _client(app, shop_floor["manager"])
    for i in range(5):
        assert _rename(manager, shop_floor, f"Name{i}", **HX).status_code == 200
    refused = _rename(manager, shop_floor, "Late", **HX)
    assert refused.status_code == 429
    assert refused.headers["HX-Retarget"] == "#messages" and int(refused.headers["Retry-After"]) > 0
    assert "Too many changes" in refused.get_data(as_text=True)
    assert _name(shop_floor) == "Name4"


def test_door_scans_count_against_the_doors_limit_not_this_one(app, shop_floor):
    door = _client(app, shop_floor["door"])
    code = shop_floor["order"].tickets[0].code
    answers = [
        door.post("/admin/o/floor/events/floor-night/door/scan", data={"code": code, "nonce": nonce()}, headers=HX)
        for _ in range(8)
    ]
    # Past this limit's 5 and within the door's own (120 a minute).
    assert [a.status_code for a in answers] == [200] * 8
