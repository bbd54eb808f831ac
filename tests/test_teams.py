"""Organisers and members: invitations by mail, roles, event limits, the last owner (also
under two owners demoting each other at once), and the `flask organiser` commands."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from storefront import passwords, teams
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.staff_errors import AlreadyMember, LastOwner
from storefront.staff_models import Invitation, Membership, Role, User

from .admin_support import (
    PASSWORD,
    SETUP,
    add_member,
    audit_actions,
    audit_entries,
    link_in,
    mail_dir,  # noqa: F401 (a fixture)
    mails_to,
    make_event_of,
    make_organiser,
    make_user,
    sign_in,
    sign_in_as,
)


def membership_of(user, organiser) -> Membership | None:
    db.session.rollback()
    return db.session.execute(
        select(Membership).where(Membership.user_id == user.id, Membership.organiser_id == organiser.id)
    ).scalar_one_or_none()


def owners(organiser) -> int:
    db.session.rollback()
    return db.session.execute(
        select(func.count(Membership.id)).where(Membership.organiser_id == organiser.id, Membership.role == Role.OWNER)
    ).scalar_one()


# --- invitations ----------------------------------------------------------------------------


def test_an_invitee_without_an_account_sets_a_password_and_joins(app, client, mail_dir):
    owner = make_user("owner@example.com")
    organiser = make_organiser("jazz", "Jazz Club")
    add_member(owner, organiser, Role.OWNER)
    sign_in_as(client, owner)
    answer = client.post("/admin/o/jazz/members/invite", data={"email": "New.Person@Example.com", "role": "box_office"})
    assert answer.status_code == 303
    [mail] = mails_to(app, "new.person@example.com")
    assert "Jazz Club" in mail["Subject"]
    path = link_in(mail, "/admin/invitations/")
    assert db.session.execute(select(Invitation.token_hash)).scalar_one() != path.rsplit("/", 1)[1]

    invitee = app.test_client()
    page = invitee.get(path)
    assert page.status_code == 200 and "Box office" in page.get_data(as_text=True)
    weak = invitee.post(path, data={"password": "password123", "confirm": "password123"})
    assert weak.status_code == 400
    assert db.session.execute(select(func.count(User.id))).scalar_one() == 1  # nothing made
    joined = invitee.post(path, data={"password": "my own passphrase", "confirm": "my own passphrase"})
    assert joined.status_code == 303 and joined.headers["Location"] == "/admin/o/jazz/"
    new_user = db.session.execute(select(User).where(User.email == "new.person@example.com")).scalar_one()
    assert passwords.verify(new_user.password_hash, "my own passphrase")
    assert membership_of(new_user, organiser).role == Role.BOX_OFFICE
    assert invitee.get("/admin/o/jazz/").status_code == 200  # signed in
    # The link worked once.
    assert app.test_client().get(path).status_code == 404
    assert app.test_client().post(path, data={"password": "x" * 20, "confirm": "x" * 20}).status_code == 404
    assert audit_actions(organiser_id=organiser.id) == ["member_added", "member_invited", "invitation_accepted"]


def test_an_invitee_with_an_account_signs_in_and_accepts(app, client, mail_dir):
    owner = make_user("owner@example.com")
    existing = make_user("existing@example.com")
    organiser = make_organiser("second")
    add_member(owner, organiser, Role.OWNER)
    sent = teams.invite(organiser.id, "existing@example.com", Role.VIEWER, SETUP)
    assert sent.existing_account and sent.mailed
    path = link_in(mails_to(app, "existing@example.com")[0], "/admin/invitations/")
    page = client.get(path).get_data(as_text=True)
    assert "Sign in to accept" in page
    assert client.post(path).status_code == 403  # not signed in: nothing accepted
    assert membership_of(existing, organiser) is None
    stranger = make_user("stranger@example.com")
    sign_in_as(client, stranger)
    assert client.post(path).status_code == 403
    assert membership_of(stranger, organiser) is None
    sign_in(client, "existing@example.com")
    assert client.post(path).status_code == 303
    assert membership_of(existing, organiser).role == Role.VIEWER


def test_an_invitation_expires_after_seven_days(app, client, mail_dir):
    organiser = make_organiser("week")
    sent = teams.invite(organiser.id, "late@example.com", Role.VIEWER, SETUP)
    path = sent.link.removeprefix(app.config["PUBLIC_BASE_URL"])
    invitation = db.session.get(Invitation, sent.invitation_id)
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)
    with write_transaction():
        db.session.execute(
            update(Invitation).values(
                created_at=invitation.created_at - timedelta(days=7, seconds=1),
                expires_at=invitation.expires_at - timedelta(days=7, seconds=1),
            )
        )
    assert client.get(path).status_code == 404
    assert client.post(path, data={"password": "too late to join", "confirm": "too late to join"}).status_code == 404
    assert db.session.execute(select(func.count(User.id))).scalar_one() == 0


def test_inviting_again_replaces_the_earlier_link_and_members_are_not_invited(app, mail_dir):
    owner = make_user("owner@example.com")
    organiser = make_organiser("again")
    add_member(owner, organiser, Role.OWNER)
    first = teams.invite(organiser.id, "twice@example.com", Role.VIEWER, SETUP)
    second = teams.invite(organiser.id, "twice@example.com", Role.MANAGER, SETUP)
    assert teams.valid_invitation(first.link.rsplit("/", 1)[1]) is None
    assert teams.valid_invitation(second.link.rsplit("/", 1)[1]).role == Role.MANAGER
    with pytest.raises(AlreadyMember):
        teams.invite(organiser.id, "owner@example.com", Role.VIEWER, SETUP)


def test_a_revoked_invitation_no_longer_works(app, client, mail_dir):
    owner = make_user("owner@example.com")
    organiser = make_organiser("revoke")
    add_member(owner, organiser, Role.OWNER)
    sent = teams.invite(organiser.id, "maybe@example.com", Role.VIEWER, SETUP)
    sign_in_as(client, owner)
    assert client.post(f"/admin/o/revoke/invitations/{sent.invitation_id}/revoke").status_code == 303
    assert app.test_client().get(sent.link.removeprefix(app.config["PUBLIC_BASE_URL"])).status_code == 404
    assert "invitation_revoked" in audit_actions()


def test_a_failed_invitation_mail_is_said_and_the_invitation_kept(app, client):
    owner = make_user("owner@example.com")
    organiser = make_organiser("nomail")
    add_member(owner, organiser, Role.OWNER)
    app.config["MAIL_SERVER"] = "127.0.0.1"
    app.config["MAIL_PORT"] = 9  # discard: nothing listens, the connection is refused
    sign_in_as(client, owner)
    answer = client.post("/admin/o/nomail/members/invite", data={"email": "x@example.com", "role": "viewer"})
    assert answer.status_code == 303
    page = client.get("/admin/o/nomail/members").get_data(as_text=True)
    assert "could not be sent" in page and "x@example.com" in page


# --- roles and the last owner ------------------------------------------------------------------


def test_owners_change_roles_and_remove_members(app, client):
    owner = make_user("owner@example.com")
    other = make_user("other@example.com")
    organiser = make_organiser("roles")
    add_member(owner, organiser, Role.OWNER)
    membership = add_member(other, organiser, Role.VIEWER)
    sign_in_as(client, owner)
    assert client.post(f"/admin/o/roles/members/{membership.id}/role", data={"role": "manager"}).status_code == 303
    assert membership_of(other, organiser).role == Role.MANAGER
    bad = client.post(f"/admin/o/roles/members/{membership.id}/role", data={"role": "emperor"})
    assert bad.status_code == 400
    assert membership_of(other, organiser).role == Role.MANAGER
    assert client.post(f"/admin/o/roles/members/{membership.id}/remove").status_code == 303
    assert membership_of(other, organiser) is None
    [changed] = audit_entries(action="role_changed")
    assert '"role": "viewer"' in changed.before and '"role": "manager"' in changed.after
    assert "member_removed" in audit_actions(organiser_id=organiser.id)


def test_a_role_change_with_htmx_swaps_the_members_row(app, htmx_client):
    owner = make_user("owner@example.com")
    other = make_user("other@example.com")
    organiser = make_organiser("inline")
    add_member(owner, organiser, Role.OWNER)
    membership = add_member(other, organiser, Role.VIEWER)
    sign_in_as(htmx_client, owner)
    answer = htmx_client.post(f"/admin/o/inline/members/{membership.id}/role", data={"role": "door"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and page.lstrip().startswith(("{#", "<tr"))
    assert f'id="member-{membership.id}"' in page and "Saved" in page and "<html" not in page
    assert membership_of(other, organiser).role == Role.DOOR


def test_the_last_owner_cannot_be_demoted_or_removed(app, client, htmx_client):
    owner = make_user("only@example.com")
    organiser = make_organiser("lonely")
    membership = add_member(owner, organiser, Role.OWNER)
    sign_in_as(client, owner)
    demote = client.post(f"/admin/o/lonely/members/{membership.id}/role", data={"role": "viewer"})
    assert demote.status_code == 409 and "at least one owner" in demote.get_data(as_text=True)
    remove = client.post(f"/admin/o/lonely/members/{membership.id}/remove")
    assert remove.status_code == 409
    sign_in_as(htmx_client, owner)
    inline = htmx_client.post(f"/admin/o/lonely/members/{membership.id}/role", data={"role": "viewer"})
    assert inline.status_code == 409 and 'role="alert"' in inline.get_data(as_text=True)
    assert membership_of(owner, organiser).role == Role.OWNER
    assert audit_actions(action="role_changed") == []


def test_with_two_owners_one_may_step_down(app, client):
    first, second = make_user("first@example.com"), make_user("second@example.com")
    organiser = make_organiser("duo")
    m1 = add_member(first, organiser, Role.OWNER)
    add_member(second, organiser, Role.OWNER)
    sign_in_as(client, first)
    assert client.post(f"/admin/o/duo/members/{m1.id}/role", data={"role": "manager"}).status_code == 303
    assert owners(organiser) == 1
    assert client.get("/admin/o/duo/members").status_code == 404  # a manager now: not theirs to see


def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, database_urls):
    """Deterministic: the other owner's demotion is a transaction that holds the
    organiser's lock (as ``teams`` takes it) and is not committed yet while ours runs.
    Ours must wait for it, then see that it would leave no owner. Without the lock, ours
    counts the other owner (its demotion not yet visible), demotes, and none is left."""
    first, second = make_user("a@example.com"), make_user("b@example.com")
    organiser = make_organiser("race")
    m1 = add_member(first, organiser, Role.OWNER)
    m2 = add_member(second, organiser, Role.OWNER)
    other = db.engine.connect()
    if other.dialect.name == "postgresql":
        other = other.execution_options(isolation_level="READ COMMITTED")
    transaction = other.begin()
    # The organiser's lock: a row lock on PostgreSQL; SQLite has only the one write lock.
    lock = (
        "SELECT id FROM organisers WHERE id = :id FOR UPDATE"
        if other.dialect.name == "postgresql"
        else "UPDATE organisers SET name = name WHERE id = :id"
    )
    other.execute(text(lock), {"id": organiser.id})
    other.execute(text("UPDATE memberships SET role = 'manager' WHERE id = :id"), {"id": m2.id})

    outcome = {}

    def ours():
        with app.app_context():
            try:
                teams.change_role(organiser.id, m1.id, Role.MANAGER, SETUP)
                outcome["result"] = "demoted"
            except LastOwner:
                outcome["result"] = "refused"
            finally:
                db.session.remove()

    thread = threading.Thread(target=ours)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "our demotion did not wait for the other owner's transaction"
    transaction.commit()
    other.close()
    thread.join(timeout=30)
    assert outcome == {"result": "refused"}
    assert owners(organiser) == 1


# --- event limits ------------------------------------------------------------------------------


def test_a_member_limited_to_some_events_sees_only_those(app, client):
    owner = make_user("owner@example.com")
    door = make_user("door@example.com")
    organiser = make_organiser("limits")
    mine, theirs = make_event_of(organiser, "Mine"), make_event_of(organiser, "Not mine")
    foreign = make_event_of(make_organiser("elsewhere"), "Elsewhere")
    add_member(owner, organiser, Role.OWNER)
    membership = add_member(door, organiser, Role.DOOR)
    sign_in_as(client, owner)
    form = {"events": [str(mine.id)]}
    assert client.post(f"/admin/o/limits/members/{membership.id}/events", data=form).status_code == 303
    refused = client.post(f"/admin/o/limits/members/{membership.id}/events", data={"events": [str(foreign.id)]})
    assert refused.status_code == 400  # another organiser's event is not a choice
    huge = client.post(f"/admin/o/limits/members/{membership.id}/events", data={"events": [str(2**70)]})
    assert huge.status_code == 400
    db.session.rollback()
    limited = db.session.get(Membership, membership.id)
    assert not limited.all_events and [e.id for e in limited.events] == [mine.id]

    sign_in_as(client, door)
    assert client.get(f"/admin/o/limits/events/{mine.slug}/door").status_code == 200
    assert client.get(f"/admin/o/limits/events/{theirs.slug}/door").status_code == 404
    assert client.get(f"/admin/o/limits/events/{foreign.slug}/door").status_code == 404
    page = client.get("/admin/o/limits/door").get_data(as_text=True)
    assert "Mine" in page and "Not mine" not in page


def test_an_owner_always_sees_every_event(app):
    owner = make_user("owner@example.com")
    organiser = make_organiser("allofit")
    event = make_event_of(organiser)
    membership = add_member(owner, organiser, Role.OWNER)
    teams.limit_events(organiser.id, membership.id, False, [], SETUP)
    db.session.rollback()
    assert db.session.get(Membership, membership.id).all_events
    assert teams.visible_event(db.session.get(Membership, membership.id), event.slug) is not None


# --- commands ------------------------------------------------------------------------------


def test_organiser_create_invite_and_list_commands(app, mail_dir):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["organiser", "create", "Harbour Nights", "--owner", "Boss@Example.com"])
    assert created.exit_code == 0, created.output
    assert "slug: harbour-nights" in created.output
    link = [line.strip() for line in created.output.splitlines() if "/admin/invitations/" in line][0]
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/admin/invitations/")
    assert "sets their password" in created.output
    assert len(mails_to(app, "boss@example.com")) == 1

    client = app.test_client()
    path = link.removeprefix(app.config["PUBLIC_BASE_URL"])
    assert client.post(path, data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 303
    organiser = teams.organiser_by_slug("harbour-nights")
    boss = db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one()
    assert membership_of(boss, organiser).role == Role.OWNER

    invited = runner.invoke(args=["organiser", "invite", "harbour-nights", "door@example.com", "--role", "door"])
    assert invited.exit_code == 0, invited.output
    assert "/admin/invitations/" in invited.output
    wrong_role = runner.invoke(args=["organiser", "invite", "harbour-nights", "x@example.com", "--role", "king"])
    assert wrong_role.exit_code != 0
    unknown = runner.invoke(args=["organiser", "invite", "nope", "x@example.com", "--role", "viewer"])
    assert unknown.exit_code == 1 and "No organiser has the slug" in unknown.output
    bad_email = runner.invoke(args=["organiser", "invite", "harbour-nights", "a@b.c, d@e.f", "--role", "viewer"])
    assert bad_email.exit_code == 1 and "valid email" in bad_email.output
    taken = runner.invoke(args=["organiser", "create", "Harbour Nights", "--owner", "other@example.com"])
    assert taken.exit_code == 1 and "uses this short name" in taken.output

    listed = runner.invoke(args=["organiser", "list"])
    assert listed.exit_code == 0
    assert "harbour-nights\tHarbour Nights\t1 member(s), 1 owner(s)" in listed.output
    assert "organiser_created" in audit_actions(organiser_id=organiser.id)


def test_seed_demo_gives_the_demo_organiser_an_owner_who_can_sign_in(app, tmp_path):
    from storefront.demo import DEMO_OWNER, seed_demo, seed_demo_owner

    seed_demo()
    email, password = seed_demo_owner(str(tmp_path))
    assert (tmp_path / "demo_owner_password").read_text() == password
    assert seed_demo_owner(str(tmp_path)) == (email, password)  # once
    assert email == DEMO_OWNER
    client = app.test_client()
    answer = sign_in(client, email, password)
    assert answer.status_code == 303 and answer.headers["Location"] == "/admin/o/demo/"
    assert client.get("/admin/o/demo/members").status_code == 200
