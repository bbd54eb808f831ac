"""The door over HTTP (SQLite and PostgreSQL): the page and its camera permission, scans
with and without htmx, CSRF, scoping to the organiser and to a member's events, the
limits, undo, search, counters and the door list (CSV and printable, audited)."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from storefront.admin.sessions import SEEN_KEY
from storefront.extensions import db
from storefront.models import Ticket, TicketStatus
from storefront.staff_models import CheckIn, CheckInResult, Role
from storefront.tickets import format_ticket_code

from .admin_support import (
    add_member,
    audit_entries,
    csrf_token_of,
    make_event_of,
    make_organiser,
    quick_users,
    sign_in_as,
    snapshot,
)
from .factories import make_order

HX = {"HX-Request": "true"}
_n = iter(range(10**6))


def nonce() -> str:
    return f"http-nonce-{next(_n):06d}"


@pytest.fixture
def hall(app):
    organiser = make_organiser("hall", "Concert Hall")
    tonight = make_event_of(organiser, "Tonight", slug="tonight", starts_at=datetime.now(UTC))
    later = make_event_of(organiser, "Later", slug="later")
    away = make_organiser("away", "Away Org")
    away_event = make_event_of(away, "Away Gig", slug="away-gig")
    names = ("owner", "manager", "box_office", "door", "limited", "away_owner")
    users = dict(zip(names, quick_users(*(f"{name}@hall.example" for name in names)), strict=True))
    for name in ("owner", "manager", "box_office", "door"):
        add_member(users[name], organiser, Role(name))
    add_member(users["limited"], organiser, Role.DOOR, events=[later])
    add_member(users["away_owner"], away, Role.OWNER)

    class Hall:
        pass

    h = Hall()
    h.organiser, h.tonight, h.later, h.away, h.away_event, h.users = organiser, tonight, later, away, away_event, users
    h.base = "/admin/o/hall/events/tonight/door"
    return h


def client_as(app, user):
    client = app.test_client()
    sign_in_as(client, user)
    return client


def scan(client, base, *, code=None, secret=None, nonce_=None, htmx=True, **extra):
    data = {"nonce": nonce_ or nonce(), "door": "North gate", **extra}
    if code is not None:
        data["code"] = code
    if secret is not None:
        data["secret"] = secret
    return client.post(f"{base}/scan", data=data, headers=HX if htmx else {})


def verdict(answer) -> str | None:
    match = re.search(r'data-verdict="([a-z_]+)"', answer.get_data(as_text=True))
    return match.group(1) if match else None


def check_ins() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count(CheckIn.id))).scalar_one()


def ticket(ticket_id: int) -> Ticket:
    db.session.rollback()
    return db.session.get(Ticket, ticket_id)


# --- the page ---------------------------------------------------------------------------------


def test_the_door_page_may_use_the_camera_and_no_other_page_may(app, hall):
    client = client_as(app, hall.users["door"])
    page = client.get(hall.base)
    assert page.status_code == 200
    assert "camera=(self)" in page.headers["Permissions-Policy"]
    assert "microphone=()" in page.headers["Permissions-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    body = page.get_data(as_text=True)
    assert 'name="nonce"' in body and 'id="door-code"' in body
    assert "/static/js/door.js" in body and "jsQR-1.4.0.js" in body
    assert "<script>" not in body and "hx-on" not in body
    assert "Not today." not in body
    other = client.get("/admin/o/hall/door")
    assert "camera=()" in other.headers["Permissions-Policy"]


def test_the_door_page_warns_when_the_event_is_not_today(app, hall):
    client = client_as(app, hall.users["owner"])
    body = client.get("/admin/o/hall/events/later/door").get_data(as_text=True)
    assert "Not today." in body


def test_each_page_gives_a_new_nonce(app, hall):
    client = client_as(app, hall.users["door"])

    def page_nonce():
        return re.search(
            r'<span id="door-nonce-slot"><input name="nonce" type="hidden" value="([^"]+)"',
            client.get(hall.base).get_data(as_text=True),
        ).group(1)

    assert page_nonce() != page_nonce()


# --- scanning ---------------------------------------------------------------------------------


def test_a_scan_with_htmx_answers_the_verdict_and_the_next_nonce(app, hall):
    order = make_order(hall.tonight, [("Zoë", "Ødegård")])
    client = client_as(app, hall.users["door"])
    answer = scan(client, hall.base, code=format_ticket_code(order.tickets[0].code), nonce_="first-scan-nonce")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert verdict(answer) == "admitted"
    assert "Zoë Ødegård" in body and "Admitted" in body and 'role="alert"' in body
    assert "<html" not in body  # a fragment
    assert 'id="door-nonce-slot" hx-swap-oob="innerHTML"' in body and "first-scan-nonce" not in body
    assert "door-scanned" in answer.headers["HX-Trigger"]
    assert ticket(order.tickets[0].id).status == TicketStatus.USED.value
    again = scan(client, hall.base, secret=order.tickets[0].secret)
    assert verdict(again) == "already_used"
    assert "North gate" in again.get_data(as_text=True) and "door@hall.example" in again.get_data(as_text=True)


def test_a_scan_without_javascript_answers_the_whole_page(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    answer = scan(client, hall.base, code=order.tickets[0].code, htmx=False)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" in body
    assert verdict(answer) == "admitted"
    assert f'href="{hall.base}"' in body  # "Scan next" is a link back to the page
    assert "camera=(self)" in answer.headers["Permissions-Policy"]


def test_a_resubmitted_scan_is_the_same_scan(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    first = scan(client, hall.base, code=order.tickets[0].code, nonce_="resubmitted-1", htmx=False)
    again = scan(client, hall.base, code=order.tickets[0].code, nonce_="resubmitted-1", htmx=False)
    assert verdict(first) == verdict(again) == "admitted"
    assert check_ins() == 1


@pytest.mark.parametrize(
    "data, words",
    [
        ({"code": "ACDEF"}, "That is not a ticket code"),
        ({"code": "x" * 41}, "That is not a ticket code"),
        ({"code": "", "secret": ""}, "Scan a ticket"),
        ({"code": "ACDEF-GHJKM", "nonce": ""}, "Reload the page"),
        ({"code": "ACDEF-GHJKM", "nonce": "bad nonce!"}, "Reload the page"),
        ({"code": "ACDEF-GHJKM", "door": "x" * 61}, "Name the door"),
        ({"code": "ACDEF-GHJKM", "door": "bad\x00door"}, "Name the door"),
        ({"secret": "y" * 201}, "That is not a ticket code"),
    ],
)
def test_what_is_not_a_scan_is_a_400_with_words_and_no_change(app, hall, data, words):
    make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    before = snapshot()
    answer = client.post(f"{hall.base}/scan", data={"nonce": nonce(), **data}, headers=HX)
    assert answer.status_code == 400
    assert words in answer.get_data(as_text=True)
    assert verdict(answer) == "error"
    assert snapshot() == before


def test_another_organisers_ticket_is_unknown_at_our_door(app, hall):
    theirs = make_order(hall.away_event, [("Their", "Guest")])
    client = client_as(app, hall.users["owner"])
    for answer in (
        scan(client, hall.base, code=theirs.tickets[0].code),
        scan(client, hall.base, secret=theirs.tickets[0].secret),
    ):
        assert verdict(answer) == "unknown"
        body = answer.get_data(as_text=True)
        assert "Their Guest" not in body and "Away" not in body
    assert ticket(theirs.tickets[0].id).status == TicketStatus.VALID.value


def test_another_organisers_member_finds_no_door_of_ours(app, hall):
    make_order(hall.tonight)
    client = client_as(app, hall.users["away_owner"])
    before = snapshot()
    for path in ("", "/search?q=ada", "/counters", "/list", "/list.csv"):
        assert client.get(f"{hall.base}{path}").status_code == 404
    assert scan(client, hall.base, code="ACDEF-GHJKM").status_code == 404
    assert client.post(f"{hall.base}/undo", data={"check_in": "1"}).status_code == 404
    assert snapshot() == before
    # and their own event inside our organiser's URLs is not found either
    assert client_as(app, hall.users["owner"]).get("/admin/o/hall/events/away-gig/door").status_code == 404


def test_a_member_limited_to_other_events_has_no_door_here_and_names_no_event_outside(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["limited"])
    before = snapshot()
    assert client.get(hall.base).status_code == 404
    assert scan(client, hall.base, code=order.tickets[0].code).status_code == 404
    assert client.get(f"{hall.base}/list.csv").status_code == 404
    assert snapshot() == before
    # At the door of their own event, tonight's ticket is for another event, unnamed.
    answer = scan(client, "/admin/o/hall/events/later/door", code=order.tickets[0].code)
    assert verdict(answer) == "wrong_event"
    assert "Tonight" not in answer.get_data(as_text=True)
    assert ticket(order.tickets[0].id).status == TicketStatus.VALID.value


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_a_cross_site_scan_is_refused_and_the_pages_token_works(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    before = snapshot()
    forged = client.post(
        f"{hall.base}/scan",
        data={"code": order.tickets[0].code, "nonce": nonce()},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 400
    assert snapshot() == before
    token = csrf_token_of(client.get(hall.base).get_data(as_text=True))
    answer = client.post(
        f"{hall.base}/scan", data={"code": order.tickets[0].code, "nonce": nonce(), "csrf_token": token}
    )
    assert verdict(answer) == "admitted"


# --- limits -------------------------------------------------------------------------------------


def test_forty_fast_scans_all_go_through_by_default(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    answers = [scan(client, hall.base, code=order.tickets[0].code) for _ in range(40)]
    assert [a.status_code for a in answers] == [200] * 40
    assert check_ins() == 40


@pytest.mark.app_config(LIMIT_DOOR_SCANS="30 per minute")
def test_scans_past_the_limit_are_429_per_member_and_write_nothing(app, hall):
    order = make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    answers = [scan(client, hall.base, code=order.tickets[0].code) for _ in range(40)]
    assert [a.status_code for a in answers] == [200] * 30 + [429] * 10
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many requests came from your account at the door" in refused.get_data(as_text=True)
    assert check_ins() == 30
    # Another member at the same address is counted on their own.
    other = client_as(app, hall.users["box_office"])
    assert verdict(scan(other, hall.base, code=order.tickets[0].code)) == "already_used"


@pytest.mark.app_config(LIMIT_DOOR_LOOKUPS="20 per minute")
def test_searches_past_their_limit_are_429(app, hall):
    client = client_as(app, hall.users["door"])
    codes = [client.get(f"{hall.base}/search?q=ada", headers=HX).status_code for _ in range(25)]
    assert codes == [200] * 20 + [429] * 5


def test_exports_past_their_limit_are_429_and_not_audited(app, hall):
    client = client_as(app, hall.users["door"])
    codes = [client.get(f"{hall.base}/list.csv").status_code for _ in range(12)]
    assert codes == [200] * 10 + [429] * 2
    assert len(audit_entries(action="door_list_exported")) == 10


# --- undo -----------------------------------------------------------------------------------------


def _admitted(app, hall, order):
    client = client_as(app, hall.users["door"])
    scan(client, hall.base, code=order.tickets[0].code)
    db.session.rollback()
    return db.session.execute(select(CheckIn.id).where(CheckIn.result == CheckInResult.ADMITTED)).scalar_one()


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_a_manager_undoes_a_check_in_and_it_is_audited(app, hall, role):
    order = make_order(hall.tonight)
    check_in_id = _admitted(app, hall, order)
    answer = client_as(app, hall.users[role]).post(f"{hall.base}/undo", data={"check_in": str(check_in_id)}, headers=HX)
    assert answer.status_code == 200 and verdict(answer) == "undone"
    assert ticket(order.tickets[0].id).status == TicketStatus.VALID.value
    (entry,) = audit_entries(action="check_in_undone")
    assert entry.actor == f"{role}@hall.example"


def test_undo_without_javascript_goes_back_to_the_door(app, hall):
    order = make_order(hall.tonight)
    check_in_id = _admitted(app, hall, order)
    answer = client_as(app, hall.users["manager"]).post(f"{hall.base}/undo", data={"check_in": str(check_in_id)})
    assert answer.status_code == 303 and answer.headers["Location"] == hall.base


@pytest.mark.parametrize("role", ["box_office", "door"])
def test_door_staff_cannot_undo(app, hall, role):
    order = make_order(hall.tonight)
    check_in_id = _admitted(app, hall, order)
    before = snapshot()
    answer = client_as(app, hall.users[role]).post(f"{hall.base}/undo", data={"check_in": str(check_in_id)})
    assert answer.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("raw, status", [("", 400), ("abc", 400), ("²", 400), (str(2**70), 400), ("999999", 404)])
def test_undo_of_what_is_no_check_in_changes_nothing(app, hall, raw, status):
    order = make_order(hall.tonight)
    _admitted(app, hall, order)
    before = snapshot()
    answer = client_as(app, hall.users["manager"]).post(f"{hall.base}/undo", data={"check_in": raw}, headers=HX)
    assert answer.status_code == status
    assert snapshot() == before


def test_undo_of_another_events_check_in_is_not_found(app, hall):
    order = make_order(hall.tonight)
    check_in_id = _admitted(app, hall, order)
    before = snapshot()
    answer = client_as(app, hall.users["manager"]).post(
        "/admin/o/hall/events/later/door/undo", data={"check_in": str(check_in_id)}
    )
    assert answer.status_code == 404
    assert snapshot() == before


def test_the_admitted_answer_offers_undo_only_to_those_who_may(app, hall):
    one, two = make_order(hall.tonight), make_order(hall.tonight)
    door = scan(client_as(app, hall.users["door"]), hall.base, code=one.tickets[0].code)
    manager = scan(client_as(app, hall.users["manager"]), hall.base, code=two.tickets[0].code)
    assert "Undo this check-in" not in door.get_data(as_text=True)
    assert "Undo this check-in" in manager.get_data(as_text=True)


# --- search, counters, the door list --------------------------------------------------------------


def test_search_finds_this_events_tickets_live_and_without_javascript(app, hall):
    make_order(hall.tonight, [("Ada", "Lovelace"), ("Alan", "Turing")])
    make_order(hall.later, [("Ada", "Later")])
    make_order(hall.away_event, [("Ada", "Away")])
    client = client_as(app, hall.users["door"])
    live = client.get(f"{hall.base}/search?q=ada", headers=HX)
    body = live.get_data(as_text=True)
    assert live.status_code == 200 and "<html" not in body
    assert "Ada Lovelace" in body and "Later" not in body and "Away" not in body and "Alan Turing" not in body
    assert "Check in" in body
    page = client.get(f"{hall.base}/search?q=ada").get_data(as_text=True)
    assert "<html" in page and "Ada Lovelace" in page and 'value="ada"' in page
    empty = client.get(f"{hall.base}/search?q=" + "z" * 500, headers=HX)
    assert empty.status_code == 200


def test_a_search_result_is_checked_in_with_its_button(app, hall):
    order = make_order(hall.tonight, [("Grace", "Hopper")])
    client = client_as(app, hall.users["door"])
    results = client.get(f"{hall.base}/search?q=hopper", headers=HX).get_data(as_text=True)
    form = re.search(r'name="code" value="([^"]+)">\s*<input type="hidden" name="nonce" value="([^"]+)"', results)
    answer = client.post(f"{hall.base}/scan", data={"code": form.group(1), "nonce": form.group(2)}, headers=HX)
    assert verdict(answer) == "admitted"
    db.session.rollback()
    assert db.session.execute(select(CheckIn.door)).scalar_one() == ""  # no door named yet in this session
    after = client.get(f"{hall.base}/search?q=hopper", headers=HX).get_data(as_text=True)
    assert "Checked in" in after and 'name="code"' not in after
    assert ticket(order.tickets[0].id).status == TicketStatus.USED.value


def test_the_door_name_is_remembered_for_the_session(app, hall):
    one, two = make_order(hall.tonight), make_order(hall.tonight)
    client = client_as(app, hall.users["door"])
    scan(client, hall.base, code=one.tickets[0].code, door="Side door")
    assert 'value="Side door"' in client.get(hall.base).get_data(as_text=True)
    client.post(f"{hall.base}/scan", data={"code": two.tickets[0].code, "nonce": nonce()}, headers=HX)
    db.session.rollback()
    assert db.session.execute(select(CheckIn.door).order_by(CheckIn.id)).scalars().all() == ["Side door", "Side door"]


def test_counters_show_checked_in_of_sold(app, hall):
    order = make_order(hall.tonight, [("A", "One"), ("B", "Two")])
    client = client_as(app, hall.users["door"])
    scan(client, hall.base, code=order.tickets[0].code)
    body = client.get(f"{hall.base}/counters", headers=HX).get_data(as_text=True)
    assert 'id="door-counters"' in body and "1 of 2" in body and "<html" not in body


def test_the_door_list_as_csv_is_audited_and_safe_in_a_spreadsheet(app, hall):
    make_order(hall.tonight, [('=HYPERLINK("http://evil.example")', "Mallory"), ("李", "小龍")])
    client = client_as(app, hall.users["door"])
    answer = client.get(f"{hall.base}/list.csv")
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert 'filename="door-list-tonight.csv"' in answer.headers["Content-Disposition"]
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert table[0][:3] == ["Last name", "First name", "Ticket type"]
    assert ["Mallory", '\'=HYPERLINK("http://evil.example")'] == table[1][:2]
    assert table[2][:2] == ["小龍", "李"]
    (entry,) = audit_entries(action="door_list_exported")
    assert (entry.actor, entry.event_id) == ("door@hall.example", hall.tonight.id)
    assert '"format": "csv"' in entry.after and '"tickets": 2' in entry.after


def test_the_printable_door_list_is_audited(app, hall):
    make_order(hall.tonight, [("Ada", "Lovelace")])
    make_order(hall.tonight, [("Vic", "Void")], ticket_status=TicketStatus.VOID.value)
    body = client_as(app, hall.users["door"]).get(f"{hall.base}/list").get_data(as_text=True)
    assert "Lovelace, Ada" in body and "Void, Vic" in body and "void" in body
    (entry,) = audit_entries(action="door_list_exported")
    assert '"format": "print"' in entry.after


def test_a_viewer_has_no_door(app, hall):
    (viewer,) = quick_users("viewer@hall.example")
    add_member(viewer, hall.organiser, Role.VIEWER)
    client = client_as(app, viewer)
    assert client.get(hall.base).status_code == 404
    assert scan(client, hall.base, code="ACDEF-GHJKM").status_code == 404


def test_the_counters_refreshing_themselves_keep_no_idle_session_alive(app, hall):
    client = client_as(app, hall.users["door"])
    with client.session_transaction() as session:
        session[SEEN_KEY] = int(time.time()) - 600
    assert client.get(f"{hall.base}/counters", headers=HX).status_code == 200
    with client.session_transaction() as session:
        assert session[SEEN_KEY] <= time.time() - 600
    client.get(f"{hall.base}/search?q=ab", headers=HX)
    with client.session_transaction() as session:
        assert session[SEEN_KEY] >= time.time() - 5
