"""reconciliation: the runs of reconcile and the mismatches each found, for a person

Revision ID: 0014_reconciliation
Revises: 0013_event_cancellations
Create Date: 2026-12-01 23:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_reconciliation"
down_revision = "0013_event_cancellations"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=254), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("checked_count", sa.Integer(), nullable=False),
        sa.Column("fixed_count", sa.Integer(), nullable=False),
        sa.Column("found_count", sa.Integer(), nullable=False),
        sa.Column("closed_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_runs")),
    )
    op.create_table(
        "reconcile_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("stripe_status", sa.String(length=80), nullable=False),
        sa.Column("stripe_amount_minor", sa.Integer(), nullable=True),
        sa.Column("stripe_currency", sa.String(length=3), nullable=True),
        sa.Column("ours", sa.Text(), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_reconcile_items_event_id_events")),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_reconcile_items_attempt_id_payment_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["first_run_id"], ["reconcile_runs.id"], name=op.f("fk_reconcile_items_first_run_id_reconcile_runs")
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"], ["reconcile_runs.id"], name=op.f("fk_reconcile_items_last_run_id_reconcile_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_items")),
        sa.UniqueConstraint("kind", "stripe_id", name=op.f("uq_reconcile_items_kind")),
    )
    with op.batch_alter_table("reconcile_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconcile_items_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_reconcile_items_event_id"), ["event_id"], unique=False)


def downgrade():
    with op.batch_alter_table("reconcile_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconcile_items_event_id"))
        batch_op.drop_index(batch_op.f("ix_reconcile_items_status"))
    op.drop_table("reconcile_items")
    op.drop_table("reconcile_runs")
