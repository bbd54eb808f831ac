"""Leases: which worker runs a periodic job now (``storefront.jobs``), in the database
every worker shares, so it holds across processes and hosts.

A lease is a row per job name: ``holder`` and ``expires_at``. Taking it is one
conditional UPDATE (``… WHERE name = :name AND (expires_at IS NULL OR expires_at <=
now)``), or the INSERT of the row if it is the job's first run (a second INSERT at the
same moment does nothing): exactly one caller gets it, the database deciding, as for
stock. A worker that dies while holding a lease blocks nobody for longer than the
lease's time; so a lease is taken for well over the job's longest run.

Finishing may keep the lease until the end of the job's period (``until``): the
schedulers of several workers each enqueue the job at the same minute, and the first
run is then the period's only one.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite

from .database import write_transaction
from .extensions import db
from .models import JobLease, utcnow


def new_holder() -> str:
    """Who takes a lease: this host and process, and a random part for this one run."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def take(name: str, seconds: float, holder: str, now: datetime | None = None) -> bool:
    """Take the lease ``name`` for ``seconds`` if nobody holds it. True if taken."""
    now = now or utcnow()
    until = now + timedelta(seconds=seconds)
    with write_transaction():
        taken = db.session.execute(
            update(JobLease)
            .where(JobLease.name == name, or_(JobLease.expires_at.is_(None), JobLease.expires_at <= now))
            .values(holder=holder, expires_at=until)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken == 0:
            dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
            # RETURNING says whether it inserted: psycopg's row count of this INSERT is -1.
            inserted = db.session.execute(
                dialect.insert(JobLease)
                .values(name=name, holder=holder, expires_at=until)
                .on_conflict_do_nothing()
                .returning(JobLease.name)
            ).first()
            taken = 1 if inserted is not None else 0
    return taken == 1


def finish(name: str, holder: str, until: datetime | None = None) -> None:
    """End ``holder``'s lease: free now, or at ``until`` (the end of the job's period)."""
    now = utcnow()
    with write_transaction():
        db.session.execute(
            update(JobLease)
            .where(JobLease.name == name, JobLease.holder == holder)
            .values(expires_at=until if until is not None and until > now else now)
            .execution_options(synchronize_session=False)
        )


@contextmanager
def held(name: str, seconds: float, *, keep_for: float = 0) -> Iterator[bool]:
    """``with held("reconcile", 600, keep_for=290) as mine:`` runs the block's work only
    ``if mine``. The lease is given back when the block ends, or kept until ``keep_for``
    seconds after it was taken (so the period's other runs skip)."""
    holder = new_holder()
    started = utcnow()
    mine = take(name, seconds, holder, started)
    try:
        yield mine
    finally:
        if mine:
            finish(name, holder, started + timedelta(seconds=keep_for) if keep_for else None)
