"""event cancellations: the run that refunds a cancelled event's paid orders, and each order it did

Revision ID: 0013_event_cancellations
Revises: 0012_orders_view
Create Date: 2026-12-01 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_event_cancellations"
down_revision = "0012_orders_view"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "event_cancellations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=254), nullable=False),
        sa.Column("started_by_user_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("orders_count", sa.Integer(), nullable=False),
        sa.Column("refunded_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_event_cancellations_event_id_events")),
        sa.ForeignKeyConstraint(
            ["started_by_user_id"], ["users.id"], name=op.f("fk_event_cancellations_started_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_cancellations")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_cancellations_event_id")),
    )
    op.create_table(
        "cancellation_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cancellation_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["event_cancellations.id"],
            name=op.f("fk_cancellation_orders_cancellation_id_event_cancellations"),
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_cancellation_orders_order_id_orders")),
        sa.ForeignKeyConstraint(["refund_id"], ["refunds.id"], name=op.f("fk_cancellation_orders_refund_id_refunds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation_orders")),
        sa.UniqueConstraint("order_id", name=op.f("uq_cancellation_orders_order_id")),
    )
    with op.batch_alter_table("cancellation_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cancellation_orders_cancellation_id"), ["cancellation_id"], unique=False)


def downgrade():
    with op.batch_alter_table("cancellation_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cancellation_orders_cancellation_id"))
    op.drop_table("cancellation_orders")
    op.drop_table("event_cancellations")
