"""The back office adds nothing to the buyer's hot path: a staff member's session costs
the shop's event page and add-to-cart no query more, and the staff user is never loaded
on a shop request."""

from __future__ import annotations

import pytest

from storefront.extensions import login_manager
from storefront.staff_models import Role

from .admin_support import add_member, make_organiser, make_user, sign_in_as
from .factories import make_event
from .test_queries import counting_queries


@pytest.fixture
def loader_calls():
    calls = []
    original = login_manager._user_callback

    def counting(user_id):
        calls.append(user_id)
        return original(user_id)

    login_manager.user_loader(counting)
    yield calls
    login_manager.user_loader(original)


def _costs(client, event) -> tuple[int, int]:
    client.get(f"/events/{event.slug}")  # warm up
    with counting_queries() as page:
        assert client.get(f"/events/{event.slug}").status_code == 200
    tt = event.ticket_types[0]
    with counting_queries() as add:
        answer = client.post(f"/events/{event.slug}/cart", data={f"quantity-{tt.id}": "1"})
        assert answer.status_code == 303
    return len(page), len(add)


def test_a_staff_session_costs_the_shop_nothing_more(app, loader_calls):
    event = make_event()
    staff = make_user("staff@example.com")
    add_member(staff, make_organiser("staff-org"), Role.OWNER)
    buyer, staff_client = app.test_client(), app.test_client()
    sign_in_as(staff_client, staff)
    assert staff_client.get("/admin/o/staff-org/").status_code == 200
    assert len(loader_calls) == 1  # the admin page loads the staff user
    loader_calls.clear()
    assert _costs(staff_client, event) == _costs(buyer, event)
    assert loader_calls == []
    # The staff session is still there for the back office afterwards.
    assert staff_client.get("/admin/o/staff-org/").status_code == 200
