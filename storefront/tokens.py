"""One-time secrets sent to a person (invitation and password-reset links, recovery codes),
and the short codes that name orders and tickets.

Each is random enough (at least 128 bits for links, 80 for recovery codes) that a plain
SHA-256 digest is a safe way to store it: only the digest is kept, so the database alone
never lets anyone use a link. A link's row (an invitation, a password reset) has
``token_hash``, ``used_at`` and ``expires_at``: ``usable`` finds it while it may be used,
``take`` locks it for the transaction that uses it (and sets ``used_at``), so that two
uses of the same link at once are serialised and the second finds it used.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select

from .extensions import db
from .models import utcnow

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: an order or ticket code read over the phone is not misheard.
HUMAN_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"

# No 0/O, 1/I/L: a recovery code is read off paper and typed.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4  # 16 characters of 31: 79 bits


def new_token() -> str:
    """A URL-safe token of 256 bits."""
    return secrets.token_urlsafe(32)


def human_code(length: int) -> str:
    """``length`` characters of ``HUMAN_ALPHABET``: order and ticket codes."""
    return "".join(secrets.choice(HUMAN_ALPHABET) for _ in range(length))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_recovery_code() -> str:
    """``abcd-efgh-jkmn-pqrs``: 16 characters in four groups."""
    groups = (
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH)) for _ in range(RECOVERY_GROUPS)
    )
    return "-".join(groups)


def normalise_recovery_code(raw: str) -> str:
    """What a person typed, as the code was made: lower case, grouped, spaces and dashes ignored."""
    compact = "".join(ch for ch in raw.strip().lower() if ch not in " -")
    size = RECOVERY_GROUP_LENGTH
    return "-".join(compact[i : i + size] for i in range(0, len(compact), size))


def usable(model, token: str, now: datetime | None = None):
    """The row of this link while it can still be used, or None."""
    now = now or utcnow()
    return db.session.execute(
        select(model).where(model.token_hash == digest(token), model.used_at.is_(None), model.expires_at > now)
    ).scalar_one_or_none()


def take(model, token: str):
    """Inside a write transaction: lock the link's row and mark it used; ``InvalidLink``
    when there is none, or it was used or expired."""
    from .staff_errors import InvalidLink

    now = utcnow()
    row = db.session.execute(
        select(model).where(model.token_hash == digest(token)).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidLink()
    row.used_at = now
    return row
