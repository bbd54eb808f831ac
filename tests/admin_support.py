"""Shared by the back-office tests: accounts, organisers and members made through the
domain functions (committed like real data), a signed-in test client, the mail outbox,
and a snapshot of every table to prove a refusal changed nothing."""

from __future__ import annotations

import email
import functools
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select, text

from storefront import accounts, teams
from storefront.admin import sessions
from storefront.audit import Actor
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, Organiser, Refund, Ticket, utcnow
from storefront.staff_models import AuditEntry, Invitation, Membership, PasswordReset, Role, User

from .factories import make_order

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)
SETUP = Actor.command_line()


def make_user(email_address: str | None = None, password: str = PASSWORD, *, two_factor: bool = False) -> User:
    user = accounts.create_user(email_address or f"staff{next(_seq)}@example.com", password, SETUP)
    if two_factor:
        enable_two_factor(user.id)
    return reload_user(user.id)


def reload_user(user_id: int) -> User:
    db.session.rollback()
    return db.session.get(User, user_id)


def enable_two_factor(user_id: int) -> list[str]:
    from storefront import two_factor

    two_factor.start(user_id, SETUP)
    user = reload_user(user_id)
    return two_factor.confirm(user_id, totp_now(user), SETUP)


def totp_now(user: User, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(user.totp_secret)
    return totp.at(time.time() + offset_steps * totp.interval)


def make_organiser(slug: str | None = None, name: str | None = None) -> Organiser:
    slug = slug or f"org-{next(_seq)}"
    with write_transaction():
        organiser = Organiser(name=name or slug.replace("-", " ").title(), slug=slug)
        db.session.add(organiser)
    db.session.rollback()
    return db.session.execute(select(Organiser).where(Organiser.slug == slug)).scalar_one()


def make_event_of(organiser: Organiser, title: str | None = None, **fields) -> Event:
    from storefront.models import EventStatus, TicketType

    n = next(_seq)
    with write_transaction():
        event = Event(
            organiser_id=organiser.id,
            slug=fields.pop("slug", f"{organiser.slug}-event-{n}"),
            title=title or f"Event {n}",
            venue="Test Hall",
            starts_at=fields.pop("starts_at", utcnow() + timedelta(days=30)),
            timezone=fields.pop("timezone", "Europe/Paris"),
            currency=fields.pop("currency", "EUR"),
            status=EventStatus.PUBLISHED.value,
            **fields,
        )
        event.ticket_types.append(TicketType(name="Standard", price_minor=2500, capacity=100, max_per_order=10))
        db.session.add(event)
    db.session.rollback()
    return db.session.execute(select(Event).where(Event.slug == event.slug)).scalar_one()


def add_member(user: User, organiser: Organiser, role: Role, events: list[Event] | None = None) -> Membership:
    membership = teams.add_member(organiser.id, user.id, role, SETUP)
    if events is not None:
        teams.limit_events(organiser.id, membership.id, False, [e.id for e in events], SETUP)
    db.session.rollback()
    return db.session.get(Membership, membership.id)


def sign_in_as(client, user: User) -> None:
    """The client's session is signed in as ``user``, as the sign-in page leaves it (no audit entry)."""
    user = reload_user(user.id)
    with client.session_transaction() as session:
        session.clear()
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
        session[sessions.SEEN_KEY] = int(time.time())


def sign_in(client, email_address: str, password: str = PASSWORD, **extra):
    return client.post("/admin/sign-in", data={"email": email_address, "password": password, **extra})


def csrf_token_of(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def audit_actions(**where) -> list[str]:
    return [entry.action for entry in audit_entries(**where)]


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, to compare before and after a request."""
    db.session.rollback()
    rows = {}
    for table in db.metadata.sorted_tables:
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns) or "1"
        rows[table.name] = [
            tuple(row) for row in db.session.execute(text(f"SELECT {columns} FROM {table.name} ORDER BY {order}"))
        ]
    db.session.rollback()
    return rows


def outbox(app: Flask) -> list[EmailMessage]:
    """The mails in the app's outbox folder, oldest first."""
    folder = Path(app.config["MAIL_OUTBOX"])
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [email.message_from_bytes(f.read_bytes(), _class=EmailMessage, policy=email.policy.default) for f in files]


def mails_to(app: Flask, address: str) -> list[EmailMessage]:
    return [m for m in outbox(app) if m["To"] == address]


def link_in(message: EmailMessage, path_prefix: str) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://[^\s/]+(" + re.escape(path_prefix) + r"[^\s]+)", body)
    assert match, f"no {path_prefix} link in: {body}"
    return match.group(1)


@pytest.fixture
def mail_dir(app, tmp_path):
    """This test's own outbox folder (the session's is shared by every test)."""
    folder = tmp_path / "outbox"
    app.config["MAIL_OUTBOX"] = str(folder)
    return folder


def comparable(answer, *strings: str) -> str:
    """The page without its CSRF tokens (they carry a timestamp) and without ``strings``
    (what the person typed, echoed back), to compare two answers."""
    page = re.sub(
        r'(X-CSRFToken": "|name="csrf_token" type="hidden" value="|name="csrf_token" value=")[^"]+',
        r"\1",
        answer.get_data(as_text=True),
    )
    for s in strings:
        page = page.replace(s, "…")
    return page


def audit_entries(**where) -> list[AuditEntry]:
    db.session.rollback()
    query = select(AuditEntry).order_by(AuditEntry.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(db.session.execute(query).scalars())


# --- a small world for the access tests -------------------------------------------------------

PRINCIPALS = ("anonymous", "owner", "manager", "box_office", "door", "viewer", "other_organiser", "limited")


@dataclass
class World:
    """Organiser "home" (events ``event`` and ``other_event``; a member of each role; a
    manager limited to ``other_event``; a member and an invitation to act on) and
    organiser "away" (its owner, an event, a member and an invitation of its own)."""

    organiser: Organiser
    event: Event
    other_event: Event
    users: dict[str, User]
    target: Membership
    invitation: Invitation
    invitation_token: str
    reset_token: str
    away: Organiser
    away_event: Event
    away_member: Membership
    away_invitation: Invitation
    ticket: Ticket  # of ``event``
    away_ticket: Ticket  # of ``away_event``
    refund: Refund  # a failed refund of ``ticket``'s order
    away_refund: Refund  # of ``away_ticket``'s order


@functools.cache
def _shared_hash() -> str:
    from storefront import passwords

    return passwords.hash_password(PASSWORD)


def _quick_user(email_address: str) -> User:
    """A user without the cost of hashing a password for each (the access tests make many)."""
    now = utcnow()
    user = User(
        email=email_address,
        password_hash=_shared_hash(),
        session_version=accounts.new_session_version(),
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    db.session.add(user)
    return user


def quick_users(*emails: str) -> list[User]:
    """Accounts that share one password hash (``PASSWORD``), committed: for tests that need
    many members and sign them in with ``sign_in_as`` (or ``PASSWORD``)."""
    with write_transaction():
        users = [_quick_user(address) for address in emails]
        db.session.flush()
        ids = [user.id for user in users]
    db.session.rollback()
    return [db.session.get(User, user_id) for user_id in ids]


def build_world() -> World:
    from storefront import tokens

    home, away = make_organiser("home"), make_organiser("away")
    event, other_event = make_event_of(home, "Home event", slug="home-event"), make_event_of(home, "Other event")
    away_event = make_event_of(away, "Away event", slug="away-event")
    invitation_token, away_token, reset_token = tokens.new_token(), tokens.new_token(), tokens.new_token()
    with write_transaction():
        users = {name: _quick_user(f"{name}@example.com") for name in PRINCIPALS if name != "anonymous"}
        users["target"] = _quick_user("target@example.com")
        users["away_member"] = _quick_user("away-member@example.com")
        db.session.flush()
        roles = {
            "owner": Role.OWNER,
            "manager": Role.MANAGER,
            "box_office": Role.BOX_OFFICE,
            "door": Role.DOOR,
            "viewer": Role.VIEWER,
            "limited": Role.MANAGER,
            "target": Role.VIEWER,
        }
        memberships = {
            name: Membership(user_id=users[name].id, organiser_id=home.id, role=role, all_events=name != "limited")
            for name, role in roles.items()
        }
        memberships["limited"].events = [db.session.get(Event, other_event.id)]
        away_owner = Membership(user_id=users["other_organiser"].id, organiser_id=away.id, role=Role.OWNER)
        away_member = Membership(user_id=users["away_member"].id, organiser_id=away.id, role=Role.VIEWER)
        db.session.add_all([*memberships.values(), away_owner, away_member])
        now = utcnow()
        invitation = Invitation(
            organiser_id=home.id,
            email="newbie@example.com",
            role=Role.VIEWER,
            token_hash=tokens.digest(invitation_token),
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        away_invitation = Invitation(
            organiser_id=away.id,
            email="away-newbie@example.com",
            role=Role.VIEWER,
            token_hash=tokens.digest(away_token),
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        reset = PasswordReset(
            user_id=users["target"].id,
            token_hash=tokens.digest(reset_token),
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
        db.session.add_all([invitation, away_invitation, reset])
    db.session.rollback()
    ticket = make_order(db.session.get(Event, event.id), [("Home", "Buyer")]).tickets[0]
    away_ticket = make_order(db.session.get(Event, away_event.id), [("Away", "Buyer")]).tickets[0]
    refund_ids = []
    with write_transaction():
        for order_id, key in ((ticket.order_id, "home"), (away_ticket.order_id, "away")):
            refund = Refund(
                order_id=order_id,
                amount_minor=100,
                currency="EUR",
                reason="test",
                requested_by="test",
                status="failed",
                idempotency_key=f"world-{key}-{next(_seq)}",
                failure_reason="expired_or_canceled_card",
            )
            db.session.add(refund)
            db.session.flush()
            refund_ids.append(refund.id)
    reread = {name: db.session.get(User, user.id) for name, user in users.items()}
    return World(
        organiser=db.session.get(Organiser, home.id),
        event=db.session.get(Event, event.id),
        other_event=db.session.get(Event, other_event.id),
        users=reread,
        target=db.session.get(Membership, memberships["target"].id),
        invitation=db.session.get(Invitation, invitation.id),
        invitation_token=invitation_token,
        reset_token=reset_token,
        away=db.session.get(Organiser, away.id),
        away_event=db.session.get(Event, away_event.id),
        away_member=db.session.get(Membership, away_member.id),
        away_invitation=db.session.get(Invitation, away_invitation.id),
        ticket=db.session.get(Ticket, ticket.id),
        away_ticket=db.session.get(Ticket, away_ticket.id),
        refund=db.session.get(Refund, refund_ids[0]),
        away_refund=db.session.get(Refund, refund_ids[1]),
    )


def reconcile_item_of(event: Event) -> int:
    """An open reconciliation item of ``event`` (made on first use), for the item_id URLs."""
    from storefront.models import ReconcileItem, ReconcileRun

    found = db.session.execute(select(ReconcileItem.id).where(ReconcileItem.event_id == event.id)).scalar()
    if found is not None:
        return found
    run = ReconcileRun(started_by="test")
    db.session.add(run)
    db.session.flush()
    item = ReconcileItem(
        kind="open_at_stripe",
        stripe_id=f"cs_test_world_{event.id}",
        status="open",
        event_id=event.id,
        stripe_status="open/unpaid",
        ours="attempt is creating",
        first_run_id=run.id,
        last_run_id=run.id,
        note="",
    )
    db.session.add(item)
    db.session.commit()
    return item.id


# How the access tests fill each URL argument of an admin route: a new argument needs an
# entry here (the tests fail for one they cannot fill). ``URL_ARGUMENTS`` gives a value the
# home organiser's members act on; ``FOREIGN_ARGUMENTS`` the same kind of thing belonging
# to the other organiser, which must be "not found" inside the home organiser's URLs.
URL_ARGUMENTS: dict[str, Callable[[World, str], object]] = {
    "organiser": lambda w, endpoint: w.organiser.slug,
    "event": lambda w, endpoint: w.event.slug,
    # One export kind stands for all (each needs VIEW_ORDERS); every kind: tests/test_exports.py.
    "kind": lambda w, endpoint: "orders",
    "membership_id": lambda w, endpoint: w.target.id,
    "invitation_id": lambda w, endpoint: w.invitation.id,
    "token": lambda w, endpoint: w.reset_token if endpoint == "admin.reset_password" else w.invitation_token,
    "ticket_code": lambda w, endpoint: w.ticket.code,
    "ticket_type_id": lambda w, endpoint: w.event.ticket_types[0].id,
    "order_code": lambda w, endpoint: w.ticket.order.code,
    "refund_id": lambda w, endpoint: w.refund.id,
    # An item of the event the limited manager may see (items belong to their event).
    "item_id": lambda w, endpoint: reconcile_item_of(w.other_event),
}
FOREIGN_ARGUMENTS: dict[str, Callable[[World], object]] = {
    "event": lambda w: w.away_event.slug,
    "membership_id": lambda w: w.away_member.id,
    "invitation_id": lambda w: w.away_invitation.id,
    "ticket_code": lambda w: w.away_ticket.code,
    "order_code": lambda w: w.away_ticket.order.code,
    # Another organiser's ticket type inside our event's URL, and our other event's.
    "ticket_type_id": lambda w: w.away_event.ticket_types[0].id,
    "refund_id": lambda w: w.away_refund.id,
    "item_id": lambda w: reconcile_item_of(w.away_event),
}
