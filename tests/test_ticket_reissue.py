"""Reissuing a ticket from the back office: a new secret and code, the old ones dead at
once, audited; only owners and managers, only within their organiser and events. (Every
role, another organiser and CSRF are also covered by tests/test_admin_access.py.)"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Ticket, TicketStatus
from storefront.tickets import format_ticket_code, normalise_ticket_code

from .admin_support import audit_entries, build_world, csrf_token_of, sign_in_as, snapshot
from .factories import reload_order
from .ticket_support import decode_qr_png


def _ticket(ticket_id: int) -> Ticket:
    db.session.rollback()
    return db.session.get(Ticket, ticket_id)


class _Was:
    """A ticket's identity as it was (the ORM object itself follows the database)."""

    def __init__(self, ticket: Ticket):
        self.id, self.secret, self.code = ticket.id, ticket.secret, ticket.code


def _urls(world, code: str) -> tuple[str, str]:
    base = f"/admin/o/{world.organiser.slug}/events/{world.event.slug}/tickets/{code}"
    return base, base + "/reissue"


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_a_manager_reissues_a_ticket_and_its_old_secret_and_code_stop_working(app, role):
    world = build_world()
    old = _Was(_ticket(world.ticket.id))
    client = app.test_client()
    sign_in_as(client, world.users[role])
    page_url, reissue_url = _urls(world, format_ticket_code(old.code))
    page = client.get(page_url)
    assert page.status_code == 200 and "Home Buyer" in page.get_data(as_text=True)

    answer = client.post(reissue_url)
    new = _ticket(old.id)
    assert answer.status_code == 303
    assert new.secret != old.secret and new.code != old.code
    assert len(new.secret) * 6 >= 128 and normalise_ticket_code(new.code) == new.code
    assert answer.headers["Location"].endswith(f"/tickets/{new.code}")
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert format_ticket_code(new.code) in shown and "Ticket reissued" in shown

    # The old code finds nothing, the old secret is nowhere any more.
    assert client.get(page_url).status_code == 404
    assert db.session.query(Ticket).filter(Ticket.secret == old.secret).count() == 0

    # The buyer's order page and PDF carry the new QR code only.
    order = reload_order(new.order_id)
    buyer = app.test_client()
    html = buyer.get(f"/orders/{order.access_token}").get_data(as_text=True)
    assert format_ticket_code(new.code) in html and format_ticket_code(old.code) not in html
    from .ticket_support import pdf_pages

    [(_text, codes)] = pdf_pages(buyer.get(f"/orders/{order.access_token}/tickets.pdf").data)
    assert codes == [new.secret]

    [entry] = audit_entries(action="ticket_reissued")
    assert entry.user_id == world.users[role].id and entry.event_id == world.event.id
    assert entry.organiser_id == world.organiser.id and entry.object_id == str(old.id)
    assert json.loads(entry.before) == {"code": format_ticket_code(old.code)}
    assert json.loads(entry.after) == {"code": format_ticket_code(new.code)}
    assert old.secret not in entry.before + entry.after and new.secret not in entry.before + entry.after


def test_the_new_qr_code_reads_back_as_the_new_secret(app):
    from storefront import ticket_qr

    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users["manager"])
    client.post(_urls(world, world.ticket.code)[1])
    new = _ticket(world.ticket.id)
    assert decode_qr_png(ticket_qr.qr_png(new.secret)) == [new.secret]


@pytest.mark.parametrize("status", [TicketStatus.VOID.value, TicketStatus.USED.value])
def test_a_void_or_used_ticket_is_not_reissued(app, status):
    world = build_world()
    with write_transaction():
        db.session.execute(update(Ticket).where(Ticket.id == world.ticket.id).values(status=status))
    client = app.test_client()
    sign_in_as(client, world.users["owner"])
    before = snapshot()
    answer = client.post(_urls(world, world.ticket.code)[1])
    assert answer.status_code == 409
    assert ("void" if status == "void" else "already used") in answer.get_data(as_text=True)
    assert snapshot() == before


@pytest.mark.parametrize("role", ["box_office", "viewer"])
def test_box_office_and_viewers_see_the_ticket_without_the_reissue_button(app, role):
    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users[role])
    page_url, reissue_url = _urls(world, world.ticket.code)
    page = client.get(page_url).get_data(as_text=True)
    assert "Home Buyer" in page and "Reissue this ticket" not in page
    before = snapshot()
    assert client.post(reissue_url).status_code == 404
    assert snapshot() == before


def test_a_ticket_is_found_by_its_code_typed_any_way_within_the_event_only(app):
    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users["owner"])
    find = f"/admin/o/{world.organiser.slug}/events/{world.event.slug}/tickets"
    assert client.get(find).status_code == 200
    typed = format_ticket_code(world.ticket.code).lower()
    found = client.get(find, query_string={"code": f"  {typed} "})
    assert found.status_code == 303 and found.headers["Location"].endswith(f"/tickets/{world.ticket.code}")
    # Another event's ticket (here: the other organiser's) is not found, nor is nonsense.
    for code in (world.away_ticket.code, "NOPE", "\x00" * 3, "A" * 300):
        missing = client.get(find, query_string={"code": code})
        assert missing.status_code in (400, 404), code
    other_event = f"/admin/o/{world.organiser.slug}/events/{world.other_event.slug}/tickets/{world.ticket.code}"
    assert client.get(other_event).status_code == 404


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_reissue_form_carries_a_token_that_works_and_a_cross_site_post_changes_nothing(app):
    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users["manager"])
    code = world.ticket.code
    page_url, reissue_url = _urls(world, code)
    before = snapshot()
    assert client.post(reissue_url, headers={"Origin": "https://evil.example"}).status_code == 400
    assert snapshot() == before
    token = csrf_token_of(client.get(page_url).get_data(as_text=True))
    assert client.post(reissue_url, data={"csrf_token": token}).status_code == 303
    assert _ticket(world.ticket.id).code != code
