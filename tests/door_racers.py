"""Doors for the check-in races, usable from threads and from spawned processes.

Each door scans a ticket once and says what it was answered: ``ADMITTED``,
``ALREADY_USED``, or ``"error: …"`` for anything else. The harness is the same for the
real scan (through the whole app: session, view, domain) and for ``naive_scan``, a
deliberately wrong read-then-write check-in that shows the harness can see a race.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import select, update

from storefront.admin.sessions import SEEN_KEY
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Ticket, TicketStatus, utcnow

ADMITTED = "admitted"
ALREADY_USED = "already_used"
# The naive scan's gap between reading and writing: real code has one too (the round
# trips in between), this makes it wide enough to be seen in a few attempts.
NAIVE_GAP_S = 0.005
_VERDICT = re.compile(r'data-verdict="([a-z_]+)"')


def door_client(app, user_id: int, session_version: str):
    """A test client signed in as the member (as the sign-in page leaves the session)."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = f"{user_id}:{session_version}"
        session["_fresh"] = True
        session[SEEN_KEY] = int(time.time())
    return client


def scan_over_http(client, scan_url: str, code: str, nonce: str) -> str:
    response = client.post(
        scan_url, data={"code": code, "nonce": nonce, "door": "Race door"}, headers={"HX-Request": "true"}
    )
    body = response.get_data(as_text=True)
    match = _VERDICT.search(body)
    if response.status_code == 200 and match and match.group(1) in (ADMITTED, ALREADY_USED):
        return match.group(1)
    return f"error: {response.status_code} {body[:300]!r}"


def naive_scan(code: str) -> str:
    """The check-in as it must not be written: read the status, then write "used"
    without the WHERE that re-checks it. Two doors that read "valid" both admit."""
    ticket_id, status = db.session.execute(select(Ticket.id, Ticket.status).where(Ticket.code == code)).one()
    db.session.rollback()
    if status != TicketStatus.VALID.value:
        return ALREADY_USED
    time.sleep(NAIVE_GAP_S)
    with write_transaction():
        db.session.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(status=TicketStatus.USED.value, checked_in_at=utcnow())
        )
    return ADMITTED


def process_door(db_url, mode, scan_url, codes, user_id, session_version, tag, barrier, results) -> None:
    """One OS process at the door: waits for the others, then scans every code once."""
    from .conftest import make_app

    app = make_app(db_url)
    outcomes: list[tuple[str, str]] = []
    try:
        with app.app_context():
            client = door_client(app, user_id, session_version)
            barrier.wait(60)
            for i, code in enumerate(codes):
                try:
                    if mode == "naive":
                        outcomes.append((code, naive_scan(code)))
                    else:
                        outcomes.append((code, scan_over_http(client, scan_url, code, f"{tag}-{i:04d}")))
                except Exception as error:
                    outcomes.append((code, f"error: {error!r}"))
                finally:
                    db.session.remove()
    finally:
        results.put(outcomes)
        with app.app_context():
            db.engine.dispose()
