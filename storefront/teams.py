"""Organisers and their members: creating an organiser, inviting, roles, event limits, settings.

Invariants kept here:

* Every lookup starts from the organiser: a membership, an invitation or an event of
  another organiser is "not found", whatever its id.
* An organiser that has owners keeps at least one. Every change that could take the
  last one (a demotion, a removal) first locks the organiser's row, then counts the
  other owners: two owners demoting each other at once are serialised on that lock, and
  the second one sees that it would leave none (``LastOwner``).
* An owner always sees every event; only other roles can be limited to some events.
* An invitation is good once, for ``INVITATION_VALID_FOR``; inviting the same address
  again revokes the earlier link.

Each public function owns its transaction and writes its audit entry inside it; mail is
sent after the transaction committed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from flask import render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from . import accounts, audit, languages, tokens
from .audit import Actor
from .database import write_transaction
from .extensions import db
from .models import Event, Organiser, utcnow
from .staff_errors import (
    AlreadyMember,
    EventNotOfOrganiser,
    InvalidContactEmail,
    InvalidOrganiserName,
    InvalidSlug,
    InvalidStaffEmail,
    InvitationForSomeoneElse,
    LastOwner,
    MemberNotFound,
    OwnTwoFactorFirst,
    SlugTaken,
)
from .staff_models import Invitation, Membership, Role, User

log = logging.getLogger(__name__)

INVITATION_VALID_FOR = timedelta(days=7)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,59}$")


# --- reading, always from the organiser -----------------------------------------------------


def memberships_of(user_id: int) -> list[Membership]:
    return list(
        db.session.execute(
            select(Membership)
            .where(Membership.user_id == user_id)
            .options(selectinload(Membership.organiser))
            .order_by(Membership.id)
        ).scalars()
    )


def membership_in(user_id: int, organiser_slug: str) -> Membership | None:
    """The user's membership in the organiser with this slug, or None (not a member, or no such organiser)."""
    return db.session.execute(
        select(Membership)
        .join(Organiser, Organiser.id == Membership.organiser_id)
        .where(Membership.user_id == user_id, Organiser.slug == organiser_slug)
        .options(selectinload(Membership.organiser))
    ).scalar_one_or_none()


def visible_event(membership: Membership, event_slug: str) -> Event | None:
    """The organiser's event with this slug, if the member may see it."""
    query = select(Event).where(Event.organiser_id == membership.organiser_id, Event.slug == event_slug)
    if not sees_all_events(membership):
        query = query.where(Event.id.in_(_limited_event_ids(membership.id)))
    return db.session.execute(query).scalar_one_or_none()


def visible_events(membership: Membership) -> list[Event]:
    """The organiser's events the member may see, soonest first."""
    query = select(Event).where(Event.organiser_id == membership.organiser_id).order_by(Event.starts_at, Event.id)
    if not sees_all_events(membership):
        query = query.where(Event.id.in_(_limited_event_ids(membership.id)))
    return list(db.session.execute(query).scalars())


def sees_all_events(membership: Membership) -> bool:
    return membership.role == Role.OWNER or membership.all_events


def _limited_event_ids(membership_id: int):
    from .staff_models import membership_events

    return select(membership_events.c.event_id).where(membership_events.c.membership_id == membership_id)


def organiser_events(organiser_id: int) -> list[Event]:
    return list(
        db.session.execute(
            select(Event).where(Event.organiser_id == organiser_id).order_by(Event.starts_at, Event.id)
        ).scalars()
    )


def members(organiser_id: int) -> list[Membership]:
    return list(
        db.session.execute(
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organiser_id == organiser_id)
            .options(selectinload(Membership.user), selectinload(Membership.events))
            .order_by(User.email)
        ).scalars()
    )


def member(organiser_id: int, membership_id: int) -> Membership | None:
    return db.session.execute(
        select(Membership)
        .where(Membership.organiser_id == organiser_id, Membership.id == membership_id)
        .options(selectinload(Membership.user), selectinload(Membership.events))
    ).scalar_one_or_none()


def pending_invitations(organiser_id: int) -> list[Invitation]:
    return list(
        db.session.execute(
            select(Invitation)
            .where(
                Invitation.organiser_id == organiser_id,
                Invitation.used_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        ).scalars()
    )


def organiser_by_slug(slug: str) -> Organiser | None:
    return db.session.execute(select(Organiser).where(Organiser.slug == slug)).scalar_one_or_none()


def all_organisers() -> list[tuple[Organiser, int, int]]:
    """Every organiser with its number of members and of owners (``flask organiser list``)."""
    owners = func.count(Membership.id).filter(Membership.role == Role.OWNER)
    return list(
        db.session.execute(
            select(Organiser, func.count(Membership.id), owners)
            .outerjoin(Membership, Membership.organiser_id == Organiser.id)
            .group_by(Organiser.id)
            .order_by(Organiser.slug)
        ).all()
    )


# --- creating organisers and inviting ---------------------------------------------------


@dataclass(frozen=True)
class SentInvitation:
    invitation_id: int
    email: str
    link: str
    # The invitee has an account already (they sign in to accept) or sets a password.
    existing_account: bool
    mailed: bool


def create_organiser(name: str, slug: str, owner_email: str, actor: Actor) -> tuple[Organiser, SentInvitation]:
    """A new organiser and an invitation for its first owner."""
    name = " ".join((name or "").split())
    slug = (slug or "").strip().lower()
    if not name or len(name) > 200:
        raise InvalidOrganiserName()
    if not _SLUG.match(slug):
        raise InvalidSlug()
    email = accounts.normalise_email(owner_email)
    token = tokens.new_token()
    with write_transaction():
        if db.session.execute(select(Organiser.id).where(Organiser.slug == slug)).first():
            raise SlugTaken()
        organiser = Organiser(name=name, slug=slug)
        db.session.add(organiser)
        db.session.flush()
        audit.record(
            actor,
            "organiser_created",
            "organiser",
            organiser.id,
            organiser_id=organiser.id,
            after={"name": name, "slug": slug},
        )
        invitation = _new_invitation(organiser, email, Role.OWNER, token, actor)
    return organiser, _send_invitation(organiser, invitation, token)


def invite(organiser_id: int, raw_email: str, role: Role, actor: Actor) -> SentInvitation:
    """Invite someone to the organiser by mail; an earlier pending invitation of theirs is revoked."""
    email = accounts.normalise_email(raw_email)
    role = Role(role)
    token = tokens.new_token()
    with write_transaction():
        organiser = db.session.get(Organiser, organiser_id)
        already = db.session.execute(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organiser_id == organiser_id, User.email == email)
        ).first()
        if already:
            raise AlreadyMember()
        invitation = _new_invitation(organiser, email, role, token, actor)
    return _send_invitation(organiser, invitation, token)


def _new_invitation(organiser: Organiser, email: str, role: Role, token: str, actor: Actor) -> Invitation:
    now = utcnow()
    db.session.execute(
        update(Invitation)
        .where(Invitation.organiser_id == organiser.id, Invitation.email == email, Invitation.used_at.is_(None))
        .values(used_at=now, revoked=True)
        .execution_options(synchronize_session=False)
    )
    invitation = Invitation(
        organiser_id=organiser.id,
        email=email,
        role=role,
        token_hash=tokens.digest(token),
        invited_by_id=actor.user_id,
        created_at=now,
        expires_at=now + INVITATION_VALID_FOR,
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record(
        actor,
        "member_invited",
        "invitation",
        invitation.id,
        organiser_id=organiser.id,
        after={"email": email, "role": role.value},
    )
    return invitation


def _send_invitation(organiser: Organiser, invitation: Invitation, token: str) -> SentInvitation:
    from . import mail
    from .admin.labels import ROLE_LABELS

    link = mail.public_url("admin.accept_invitation", token=token)
    existing = accounts.find_by_email(invitation.email) is not None
    try:
        with force_locale(languages.of_page()):
            context = {
                "organiser": organiser,
                "role_label": ROLE_LABELS[invitation.role],
                "link": link,
                "existing_account": existing,
                "valid_days": INVITATION_VALID_FOR.days,
            }
            message = mail.staff_message(
                to=invitation.email,
                subject=_("You are invited to %(name)s on Storefront", name=organiser.name),
                text=render_template("mail/invitation.txt", **context),
                html=render_template("mail/invitation.html", **context),
            )
        mail.deliver(message, f"invitation-{invitation.id}")
        mailed = True
    except Exception:
        log.exception("invitation %s: the mail could not be sent", invitation.id)
        mailed = False
    return SentInvitation(invitation.id, invitation.email, link, existing, mailed)


def valid_invitation(token: str) -> Invitation | None:
    return tokens.usable(Invitation, token)


def accept_invitation(token: str, *, user_id: int | None, password: str | None, client_address: str | None) -> User:
    """Use an invitation: as the signed-in user it was sent to, or (no account yet) with a
    new password, which makes the account. Returns the member's account."""
    with write_transaction():
        invitation = tokens.take(Invitation, token)
        now = invitation.used_at
        if user_id is not None:
            user = db.session.get(User, user_id)
            if user.email != invitation.email:
                raise InvitationForSomeoneElse(invitation.email)
            actor = Actor(user.id, user.email, client_address)
        else:
            user = accounts.new_user(invitation.email, password or "")
            db.session.add(user)
            db.session.flush()
            actor = Actor(user.id, user.email, client_address)
            audit.record(actor, "account_created", "user", user.id, after={"email": user.email})
        if db.session.execute(
            select(Membership.id).where(
                Membership.user_id == user.id, Membership.organiser_id == invitation.organiser_id
            )
        ).first():
            raise AlreadyMember()
        membership = Membership(
            user_id=user.id, organiser_id=invitation.organiser_id, role=invitation.role, all_events=True, created_at=now
        )
        db.session.add(membership)
        db.session.flush()
        audit.record(
            actor,
            "invitation_accepted",
            "membership",
            membership.id,
            organiser_id=invitation.organiser_id,
            after={"email": user.email, "role": invitation.role.value},
        )
    return db.session.get(User, user.id)


def revoke_invitation(organiser_id: int, invitation_id: int, actor: Actor) -> None:
    with write_transaction():
        revoked = db.session.execute(
            update(Invitation)
            .where(
                Invitation.organiser_id == organiser_id, Invitation.id == invitation_id, Invitation.used_at.is_(None)
            )
            .values(used_at=utcnow(), revoked=True)
            .execution_options(synchronize_session=False)
        ).rowcount
        if revoked != 1:
            raise MemberNotFound()
        audit.record(actor, "invitation_revoked", "invitation", invitation_id, organiser_id=organiser_id)


# --- changing members ---------------------------------------------------------------------


def _lock_organiser(organiser_id: int) -> Organiser:
    """Take the organiser's row lock: every change to its owners is serialised on it."""
    return db.session.execute(select(Organiser).where(Organiser.id == organiser_id).with_for_update()).scalar_one()


def _other_owners(organiser_id: int, membership_id: int) -> int:
    return db.session.execute(
        select(func.count(Membership.id)).where(
            Membership.organiser_id == organiser_id, Membership.role == Role.OWNER, Membership.id != membership_id
        )
    ).scalar_one()


def _locked_member(organiser_id: int, membership_id: int) -> Membership:
    _lock_organiser(organiser_id)
    membership = db.session.execute(
        select(Membership)
        .where(Membership.organiser_id == organiser_id, Membership.id == membership_id)
        .options(selectinload(Membership.user))
        .with_for_update()
    ).scalar_one_or_none()
    if membership is None:
        raise MemberNotFound()
    return membership


def change_role(organiser_id: int, membership_id: int, role: Role, actor: Actor) -> Membership:
    """Give a member another role; refused when it would leave the organiser without an owner."""
    role = Role(role)
    with write_transaction():
        membership = _locked_member(organiser_id, membership_id)
        before = membership.role
        if before == role:
            return membership
        if before == Role.OWNER and _other_owners(organiser_id, membership.id) == 0:
            raise LastOwner()
        membership.role = role
        if role == Role.OWNER:
            membership.all_events = True
        audit.record(
            actor,
            "role_changed",
            "membership",
            membership.id,
            organiser_id=organiser_id,
            before={"email": membership.user.email, "role": before.value},
            after={"email": membership.user.email, "role": role.value},
        )
    return member(organiser_id, membership_id)


def remove_member(organiser_id: int, membership_id: int, actor: Actor) -> None:
    """Take a member out of the organiser; refused for its last owner."""
    with write_transaction():
        membership = _locked_member(organiser_id, membership_id)
        if membership.role == Role.OWNER and _other_owners(organiser_id, membership.id) == 0:
            raise LastOwner()
        audit.record(
            actor,
            "member_removed",
            "membership",
            membership.id,
            organiser_id=organiser_id,
            before={"email": membership.user.email, "role": membership.role.value},
        )
        membership.events = []
        db.session.delete(membership)


def limit_events(
    organiser_id: int, membership_id: int, all_events: bool, event_ids: list[int], actor: Actor
) -> Membership:
    """Let a member see every event, or only these (all of this organiser's)."""
    with write_transaction():
        membership = _locked_member(organiser_id, membership_id)
        wanted = set(event_ids)
        events = (
            list(
                db.session.execute(
                    select(Event).where(Event.organiser_id == organiser_id, Event.id.in_(wanted))
                ).scalars()
            )
            if wanted
            else []
        )
        if len(events) != len(wanted):
            raise EventNotOfOrganiser()
        if membership.role == Role.OWNER:
            all_events, events = True, []
        before = {"all_events": membership.all_events, "events": sorted(e.id for e in membership.events)}
        membership.all_events = all_events
        membership.events = [] if all_events else events
        after = {"all_events": membership.all_events, "events": sorted(e.id for e in membership.events)}
        if before != after:
            audit.record(
                actor,
                "event_access_changed",
                "membership",
                membership.id,
                organiser_id=organiser_id,
                before={"email": membership.user.email, **before},
                after={"email": membership.user.email, **after},
            )
    return member(organiser_id, membership_id)


def update_settings(
    organiser_id: int, *, require_two_factor: bool, contact_email: str | None, actor: Actor
) -> Organiser:
    """The organiser's settings. Requiring two-factor sign-in of everyone needs the owner
    asking to use it already, so nobody locks themselves into the enrolment page."""
    try:
        contact = accounts.normalise_email(contact_email) if (contact_email or "").strip() else None
    except InvalidStaffEmail:
        raise InvalidContactEmail() from None
    with write_transaction():
        organiser = _lock_organiser(organiser_id)
        if require_two_factor and not organiser.require_two_factor and actor.user_id is not None:
            user = db.session.get(User, actor.user_id)
            if not user.two_factor_enabled:
                raise OwnTwoFactorFirst()
        before = {"require_two_factor": organiser.require_two_factor, "contact_email": organiser.contact_email}
        organiser.require_two_factor = require_two_factor
        organiser.contact_email = contact
        after = {"require_two_factor": require_two_factor, "contact_email": contact}
        if before != after:
            changed = [key for key in after if before[key] != after[key]]
            audit.record(
                actor,
                "settings_changed",
                "organiser",
                organiser.id,
                organiser_id=organiser.id,
                before={k: before[k] for k in changed},
                after={k: after[k] for k in changed},
            )
    return db.session.get(Organiser, organiser_id)


def add_member(organiser_id: int, user_id: int, role: Role, actor: Actor) -> Membership:
    """Make an existing account a member at once (the demo's owner; scripts)."""
    with write_transaction():
        membership = Membership(user_id=user_id, organiser_id=organiser_id, role=Role(role), all_events=True)
        db.session.add(membership)
        db.session.flush()
        user = db.session.get(User, user_id)
        audit.record(
            actor,
            "member_added",
            "membership",
            membership.id,
            organiser_id=organiser_id,
            after={"email": user.email, "role": Role(role).value},
        )
    return membership
