"""The audit log: append-only in the database itself, written with each change, read by
owners per organiser and per event."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from storefront import audit, teams
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.staff_errors import LastOwner
from storefront.staff_models import Role

from .admin_support import SETUP, add_member, audit_entries, make_event_of, make_organiser, make_user, sign_in_as


def _one_entry(app) -> int:
    organiser = make_organiser("logged")
    with write_transaction():
        entry = audit.record(
            SETUP,
            "settings_changed",
            "organiser",
            organiser.id,
            organiser_id=organiser.id,
            before={"a": 1},
            after={"a": 2},
        )
    return entry.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET action = 'nothing happened' WHERE id = :id",
        "UPDATE audit_entries SET after = NULL",
        "DELETE FROM audit_entries WHERE id = :id",
        "DELETE FROM audit_entries",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_entry(app, statement):
    entry_id = _one_entry(app)
    with pytest.raises(DatabaseError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(text(statement), {"id": entry_id})
    [entry] = audit_entries()
    assert (entry.id, entry.action, entry.after) == (entry_id, "settings_changed", '{"a": 2}')


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_postgresql_refuses_truncate_too(app):
    _one_entry(app)
    with pytest.raises(DatabaseError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_entries CASCADE"))
    assert len(audit_entries()) == 1


def test_a_refused_change_writes_no_entry_and_a_made_one_writes_exactly_one(app):
    owner = make_user("owner@example.com")
    organiser = make_organiser("atomic")
    membership = add_member(owner, organiser, Role.OWNER)
    before = len(audit_entries())
    with pytest.raises(LastOwner):
        teams.change_role(organiser.id, membership.id, Role.VIEWER, SETUP)
    assert len(audit_entries()) == before
    other = add_member(make_user("other@example.com"), organiser, Role.VIEWER)
    count = len(audit_entries())
    teams.change_role(organiser.id, other.id, Role.MANAGER, SETUP)
    [entry] = audit_entries()[count:]
    assert (entry.action, entry.organiser_id, entry.object_type, entry.object_id) == (
        "role_changed",
        organiser.id,
        "membership",
        str(other.id),
    )


def test_an_admin_change_is_logged_with_who_and_where_from(app, client):
    owner = make_user("owner@example.com")
    organiser = make_organiser("where")
    add_member(owner, organiser, Role.OWNER)
    sign_in_as(client, owner)
    client.post(
        "/admin/o/where/settings",
        data={"contact_email": "hello@where.example"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    [entry] = audit_entries(action="settings_changed")
    assert (entry.user_id, entry.actor, entry.client_address) == (owner.id, "owner@example.com", "203.0.113.9")
    assert audit.changes(entry) == [("contact_email", None, "hello@where.example")]


def test_owners_read_the_log_per_organiser_and_per_event_paginated(app, client):
    owner = make_user("owner@example.com")
    organiser = make_organiser("readlog")
    jazz, folk = make_event_of(organiser, "Jazz"), make_event_of(organiser, "Folk")
    add_member(owner, organiser, Role.OWNER)
    with write_transaction():
        for i in range(audit.PAGE_SIZE + 5):
            audit.record(
                SETUP, "settings_changed", "event", jazz.id, organiser_id=organiser.id, event_id=jazz.id, after={"n": i}
            )
        audit.record(
            SETUP,
            "settings_changed",
            "event",
            folk.id,
            organiser_id=organiser.id,
            event_id=folk.id,
            after={"folk": True},
        )
    elsewhere = make_organiser("elsewhere")
    with write_transaction():
        audit.record(
            SETUP,
            "settings_changed",
            "organiser",
            elsewhere.id,
            organiser_id=elsewhere.id,
            after={"secret": "other organiser"},
        )
    sign_in_as(client, owner)
    first = client.get("/admin/o/readlog/audit").get_data(as_text=True)
    assert "Page 1 of 2" in first and "other organiser" not in first
    assert "folk" in first  # newest first
    second = client.get("/admin/o/readlog/audit?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second
    jazz_only = client.get(f"/admin/o/readlog/audit?event={jazz.slug}").get_data(as_text=True)
    assert "folk" not in jazz_only and "Page 1 of 2" in jazz_only
    assert f"event={jazz.slug}" in jazz_only  # the next page keeps the filter
    folk_only = client.get(f"/admin/o/readlog/events/{folk.slug}/audit").get_data(as_text=True)
    assert "folk" in folk_only and "Page 1 of" not in folk_only
    assert client.get("/admin/o/readlog/audit?page=x").status_code == 404
    assert client.get("/admin/o/readlog/audit?event=no-such-event").status_code == 404
    other_event = make_event_of(elsewhere)
    assert client.get(f"/admin/o/readlog/audit?event={other_event.slug}").status_code == 404


def test_the_account_page_lists_the_persons_own_sign_ins(app, client):
    from .admin_support import sign_in

    make_user("me@example.com")
    sign_in(app.test_client(), "me@example.com", "a wrong password here")
    sign_in(client, "me@example.com")
    page = client.get("/admin/account").get_data(as_text=True)
    assert "Failed sign-in" in page and "Signed in" in page
