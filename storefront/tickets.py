"""A ticket's identity: the secret its QR code carries, and the short code a person reads.

The secret (192 bits, URL-safe) is what the door checks; whoever has it holds the ticket,
so it is never shown as text and is replaced when an organiser reissues the ticket. The
code (10 characters of an alphabet without look-alikes, about 46 bits) names the ticket on
paper, on the phone and in the door's typed search; it is shown grouped as ``ACDE-FGHJK``
and accepted with or without the dash, in either case.
"""

from __future__ import annotations

import secrets

from .tokens import HUMAN_ALPHABET, human_code

TICKET_CODE_LENGTH = 10
TICKET_CODE_GROUP = 5


def new_ticket_secret() -> str:
    return secrets.token_urlsafe(24)


def new_ticket_code() -> str:
    return human_code(TICKET_CODE_LENGTH)


def format_ticket_code(code: str) -> str:
    return f"{code[:TICKET_CODE_GROUP]}-{code[TICKET_CODE_GROUP:]}"


def normalise_ticket_code(raw: str) -> str | None:
    """What a person typed as a ticket code, as it is stored; None if it cannot be one."""
    compact = "".join(ch for ch in raw.strip().upper() if ch not in " -")
    if len(compact) != TICKET_CODE_LENGTH or any(ch not in HUMAN_ALPHABET for ch in compact):
        return None
    return compact
