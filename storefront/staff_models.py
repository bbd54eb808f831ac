"""Typed models of the back office: staff accounts, memberships, one-time tokens, the audit log.

Secrets are never stored as given: passwords as Argon2id hashes (``storefront.passwords``),
invitation and reset tokens and recovery codes as SHA-256 digests of high-entropy values
(``storefront.tokens``). The TOTP secret is kept as is: checking a code needs it.

``audit_entries`` is append-only in the database itself: triggers on both backends refuse
UPDATE and DELETE (migration 0005), whatever the code above does.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Column as _Column
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .models import Event, Organiser, Ticket, UTCDateTime, utcnow


class Role(enum.StrEnum):
    """A member's role in an organiser; what each may do is ``storefront.admin.permissions``."""

    OWNER = "owner"
    MANAGER = "manager"
    BOX_OFFICE = "box_office"
    DOOR = "door"
    VIEWER = "viewer"


def _str_enum(enum_class: type[enum.StrEnum]) -> Enum:
    """A StrEnum column stored as its values in a VARCHAR (no native enum type to migrate)."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class User(db.Model):
    """A staff account. ``email`` is stored normalised (``accounts.normalise_email``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # Changes whenever the password does: a session signed in under the old value ends.
    session_version: Mapped[str] = mapped_column(String(32))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The secret above is only used for signing in once a first code confirmed it.
    two_factor_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last TOTP time step accepted: a code is good once, even within its 30 s.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", order_by="Membership.id")

    # What Flask-Login asks of a user object.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """The session's user id includes the session version, so a password change
        signs out every session that still carries the old one."""
        return f"{self.id}:{self.session_version}"


# Which events a member limited to some events may see (pretix's ``limit_events``).
membership_events = Table(
    "membership_events",
    db.metadata,
    _Column("membership_id", ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True),
    _Column("event_id", ForeignKey("events.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Membership(db.Model):
    """A user's place in an organiser: one role, all events or only some."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organiser_id", name="uq_memberships_user_organiser"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    organiser_id: Mapped[int] = mapped_column(ForeignKey("organisers.id"), index=True)
    role: Mapped[Role] = mapped_column(_str_enum(Role))
    # False: only the events in ``events``. An owner always has all events.
    all_events: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    organiser: Mapped[Organiser] = relationship()
    events: Mapped[list[Event]] = relationship(secondary=membership_events, order_by="Event.starts_at")


class Invitation(db.Model):
    """An invitation to join an organiser, by mail, good once until ``expires_at``."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    organiser_id: Mapped[int] = mapped_column(ForeignKey("organisers.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[Role] = mapped_column(_str_enum(Role))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set once, by whoever used (or revoked) it: a guarded UPDATE takes it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    organiser: Mapped[Organiser] = relationship()


class PasswordReset(db.Model):
    """A password-reset link sent by mail, good once until ``expires_at``."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecoveryCode(db.Model):
    """One of a user's single-use codes for signing in without the authenticator app."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(db.Model):
    """One thing that happened in the back office. Written by ``storefront.audit`` in the
    transaction of the change it records; never changed or deleted (database triggers)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_organiser_id_id", "organiser_id", "id"),
        Index("ix_audit_entries_event_id_id", "event_id", "id"),
        Index("ix_audit_entries_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Who: the account (NULL for a command line or an unknown email), and the email as it
    # was then, so the entry reads the same whatever happens to the account later.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(254))
    client_address: Mapped[str | None] = mapped_column(String(64))
    organiser_id: Mapped[int | None] = mapped_column(ForeignKey("organisers.id"))
    # No foreign key: the log outlives whatever it names.
    event_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(50))
    # JSON objects of the fields that changed, as they were and as they became.
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)


class CheckInResult(enum.StrEnum):
    """What the door answered a scan (``storefront.check_in``)."""

    ADMITTED = "admitted"
    ALREADY_USED = "already_used"
    VOID = "void"
    REFUNDED = "refunded"  # the ticket's order was refunded or cancelled
    WRONG_EVENT = "wrong_event"  # a ticket of another event of the same organiser
    UNKNOWN = "unknown"  # no such ticket, or another organiser's


class CheckInMethod(enum.StrEnum):
    QR = "qr"  # the QR code's secret, read by the camera
    CODE = "code"  # the ticket code, typed or picked from a search


class CheckIn(db.Model):
    """One scan at the door and what it was answered: the check-in log. Written by
    ``storefront.check_in`` only, one row per scan attempt (a retry with the same nonce
    is the same attempt), never changed."""

    __tablename__ = "check_ins"
    __table_args__ = (
        # The client's nonce makes a retried scan the same attempt, per member.
        UniqueConstraint("user_id", "nonce", name="uq_check_ins_user_id_nonce"),
        Index("ix_check_ins_ticket_id_id", "ticket_id", "id"),
        Index("ix_check_ins_event_id_id", "event_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The event whose door scanned.
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    # The ticket found; NULL when none was (or it is another organiser's).
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The member's email as it was then, so the log reads the same later.
    staff_email: Mapped[str] = mapped_column(String(254))
    door: Mapped[str] = mapped_column(String(60), default="")
    method: Mapped[CheckInMethod] = mapped_column(_str_enum(CheckInMethod))
    result: Mapped[CheckInResult] = mapped_column(_str_enum(CheckInResult))
    nonce: Mapped[str] = mapped_column(String(64))
    # SHA-256 of what was scanned: a nonce used again for something else is refused.
    presented_digest: Mapped[str] = mapped_column(String(64))
    # For already_used: the check-in that admitted the ticket, if there is one.
    admission_id: Mapped[int | None] = mapped_column(ForeignKey("check_ins.id"))

    user: Mapped[User] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    admission: Mapped[CheckIn | None] = relationship(remote_side=[id])
