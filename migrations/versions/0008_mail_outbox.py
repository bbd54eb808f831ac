"""the mail outbox, and leases for the periodic jobs

Revision ID: 0008_mail_outbox
Revises: 0007_admin_events
Create Date: 2026-12-01 19:00:00

Mail a buyer is due becomes a row of ``mail_outbox`` (``storefront.outbox``), sent by a
job. The markers it replaces (``orders.confirmation_sent_at``,
``payment_attempts.refund_notice_sent_at``) become rows: a confirmation or notice
already sent is a ``sent`` row with its time, so it is never sent again; one not sent
yet (sending failed, or an order made before mail existed) is a ``pending`` row, which
the periodic mail job sends. The downgrade puts the sent times back on the markers.
"""

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008_mail_outbox"
down_revision = "0007_admin_events"
branch_labels = None
depends_on = None

# Frozen copies of the application's values at this revision.
CONFIRMED_STATUSES = ("paid", "partially_refunded")
NOTIFIED_REFUND_REASON = "stock_gone_after_hold_lapsed"


def _message_id() -> str:
    return f"<migrated.{secrets.token_hex(12)}@storefront.invalid>"


def upgrade():
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_mail_outbox_attempt_id_payment_attempts")
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_mail_outbox_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
        sa.UniqueConstraint("attempt_id", "kind", name="uq_mail_outbox_attempt_id_kind"),
        sa.UniqueConstraint("message_id", name=op.f("uq_mail_outbox_message_id")),
        sa.UniqueConstraint("order_id", "kind", name="uq_mail_outbox_order_id_kind"),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_mail_outbox_status_due_at", ["status", "due_at"], unique=False)
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )

    conn = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    outbox = sa.table(
        "mail_outbox",
        *(
            sa.column(name)
            for name in ("kind", "order_id", "attempt_id", "status", "attempts", "due_at", "sent_at")
            + ("message_id", "created_at")
        ),
    )
    orders = sa.table("orders", sa.column("id"), sa.column("status"), sa.column("confirmation_sent_at"))
    attempts = sa.table(
        "payment_attempts",
        sa.column("id"),
        sa.column("status"),
        sa.column("refund_reason"),
        sa.column("refund_notice_sent_at"),
    )
    rows = []
    for order_id, sent_at in conn.execute(
        sa.select(orders.c.id, orders.c.confirmation_sent_at).where(orders.c.status.in_(CONFIRMED_STATUSES))
    ):
        rows.append(_row("order_confirmation", sent_at, now, order_id=order_id))
    for attempt_id, sent_at in conn.execute(
        sa.select(attempts.c.id, attempts.c.refund_notice_sent_at).where(
            attempts.c.status == "refunded", attempts.c.refund_reason == NOTIFIED_REFUND_REASON
        )
    ):
        rows.append(_row("refund_notice", sent_at, now, attempt_id=attempt_id))
    if rows:
        conn.execute(outbox.insert(), rows)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("confirmation_sent_at")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("refund_notice_sent_at")


def _row(kind, sent_at, now, *, order_id=None, attempt_id=None) -> dict:
    # A marker set is a mail sent (or being sent when the old code stopped: its claim
    # was only given back on a failure it saw), never to be sent again.
    return {
        "kind": kind,
        "order_id": order_id,
        "attempt_id": attempt_id,
        "status": "sent" if sent_at is not None else "pending",
        "attempts": 1 if sent_at is not None else 0,
        "due_at": sent_at or now,
        "sent_at": sent_at,
        "message_id": _message_id(),
        "created_at": sent_at or now,
    }


def downgrade():
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_notice_sent_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmation_sent_at", sa.DateTime(), nullable=True))

    conn = op.get_bind()
    outbox = sa.table(
        "mail_outbox",
        sa.column("kind"),
        sa.column("order_id"),
        sa.column("attempt_id"),
        sa.column("status"),
        sa.column("sent_at"),
    )
    orders = sa.table("orders", sa.column("id"), sa.column("confirmation_sent_at"))
    attempts = sa.table("payment_attempts", sa.column("id"), sa.column("refund_notice_sent_at"))
    sent = conn.execute(
        sa.select(outbox.c.kind, outbox.c.order_id, outbox.c.attempt_id, outbox.c.sent_at).where(
            outbox.c.status == "sent"
        )
    ).all()
    for kind, order_id, attempt_id, sent_at in sent:
        if kind == "order_confirmation":
            conn.execute(orders.update().where(orders.c.id == order_id).values(confirmation_sent_at=sent_at))
        else:
            conn.execute(attempts.update().where(attempts.c.id == attempt_id).values(refund_notice_sent_at=sent_at))

    op.drop_table("job_leases")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_outbox_status_due_at")
    op.drop_table("mail_outbox")
