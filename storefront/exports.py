"""Per-event CSV exports: each kind is a header and a generator of rows over a streamed query
(``yield_per``), so a large event never sits in memory. Times in the event's timezone (named in
the header), amounts in the currency's major unit with the currency in its own column."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, money
from .database import write_transaction
from .extensions import db
from .models import Event, Order

CHUNK = 500


def _when(value, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _streamed(query) -> Iterator:
    """The query's rows in chunks through a server-side cursor, in one read-only transaction of
    its own (reads elsewhere are autocommit, where PostgreSQL allows no cursor): a consistent
    snapshot of the event however long the download takes."""
    options = {"yield_per": CHUNK}
    if db.engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with db.engine.connect().execution_options(**options) as connection, connection.begin():
        with Session(bind=connection) as session:
            yield from session.scalars(query)


def orders(event: Event) -> tuple[list[str], Iterator[list[object]]]:
    zone = ZoneInfo(event.timezone)
    header = [
        _("Order"),
        _("Created (%(zone)s)", zone=event.timezone),
        _("Buyer email"),
        _("Status"),
        _("Total"),
        _("Refunded"),
        _("Currency"),
    ]

    def rows() -> Iterator[list[object]]:
        query = select(Order).where(Order.event_id == event.id).order_by(Order.id)
        for order in _streamed(query):
            yield [
                order.code,
                _when(order.created_at, zone),
                order.buyer_email,
                order.status,
                money.to_major(order.total_minor, order.currency),
                money.to_major(order.refunded_minor, order.currency),
                order.currency,
            ]

    return header, rows()


KINDS = {"orders": orders}


def record(event: Event, kind: str, actor) -> None:
    with write_transaction():
        audit.record(
            actor,
            "event_exported",
            "event",
            event.id,
            organiser_id=event.organiser_id,
            event_id=event.id,
            after={"kind": kind},
        )
