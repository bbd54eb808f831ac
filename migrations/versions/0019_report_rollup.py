"""payments dashboard rollup: counts per event and UTC quarter hour of attempts (by
outcome), tickets (by ticket type), money (by currency) and carts, and the watermark up
to which they hold (storefront.report_rollup); attempts, money and carts per UTC day
too; empty until the first rebuild, so the dashboard reads the raw tables as before (run
``flask reports rebuild`` after upgrading)

Revision ID: 0019_report_rollup
Revises: 0018_order_locale
Create Date: 2026-12-02 01:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_report_rollup"
down_revision = "0018_order_locale"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("decline_code", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_attempts_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_attempts")),
    )
    op.create_index("ix_report_attempts_event_id_bucket", "report_attempts", ["event_id", "bucket"])
    op.create_table(
        "report_tickets",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("ticket_type_id", sa.Integer(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_tickets_event_id_events")),
        sa.ForeignKeyConstraint(
            ["ticket_type_id"], ["ticket_types.id"], name=op.f("fk_report_tickets_ticket_type_id_ticket_types")
        ),
        sa.PrimaryKeyConstraint("event_id", "bucket", "ticket_type_id", name=op.f("pk_report_tickets")),
    )
    op.create_table(
        "report_money",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("gross_minor", sa.Integer(), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("refunded_minor", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_money_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", "bucket", "currency", name=op.f("pk_report_money")),
    )
    op.create_table(
        "report_carts",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("carts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_carts_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", "bucket", name=op.f("pk_report_carts")),
    )
    op.create_table(
        "report_attempts_daily",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("decline_code", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_attempts_daily_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_attempts_daily")),
    )
    op.create_index("ix_report_attempts_daily_event_id_day", "report_attempts_daily", ["event_id", "day"])
    op.create_table(
        "report_money_daily",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("gross_minor", sa.Integer(), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("refunded_minor", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_money_daily_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", "day", "currency", name=op.f("pk_report_money_daily")),
    )
    op.create_table(
        "report_carts_daily",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("carts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_report_carts_daily_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", "day", name=op.f("pk_report_carts_daily")),
    )
    op.create_table(
        "report_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rolled_up_until", sa.DateTime(), nullable=True),
        sa.Column("rebuilt_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_rollup_state")),
    )


def downgrade():
    op.drop_table("report_rollup_state")
    op.drop_table("report_carts_daily")
    op.drop_table("report_money_daily")
    op.drop_index("ix_report_attempts_daily_event_id_day", table_name="report_attempts_daily")
    op.drop_table("report_attempts_daily")
    op.drop_table("report_carts")
    op.drop_table("report_money")
    op.drop_table("report_tickets")
    op.drop_index("ix_report_attempts_event_id_bucket", table_name="report_attempts")
    op.drop_table("report_attempts")
