"""One-time secrets sent to a person (invitation and password-reset links, recovery codes).

Each is random enough (at least 128 bits for links, 80 for recovery codes) that a plain
SHA-256 digest is a safe way to store it: only the digest is kept, so the database alone
never lets anyone use a link. A token is looked up by its digest; that it is used once
and not after it expired is kept by the tables that store them (a guarded UPDATE).
"""

from __future__ import annotations

import hashlib
import secrets

# No 0/O, 1/I/L: a recovery code is read off paper and typed.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4  # 16 characters of 31: 79 bits


def new_token() -> str:
    """A URL-safe token of 256 bits."""
    return secrets.token_urlsafe(32)


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
