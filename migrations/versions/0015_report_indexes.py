"""payments dashboard: a covering index of payment attempts by event and time, with
their outcome, so the dashboard counts them from the index alone

Revision ID: 0015_report_indexes
Revises: 0014_reconciliation
Create Date: 2026-12-02 01:30:00
"""

from alembic import op

revision = "0015_report_indexes"
down_revision = "0014_reconciliation"
branch_labels = None
depends_on = None


def upgrade():
    # storefront.reports.attempts: GROUP BY (status, error_code, decline_code) of an
    # event's attempts in a period. Without it PostgreSQL reads every row of the table
    # (a third of a million for the big event of bench/admin_scale.py); with it, an
    # index-only scan of the period's range.
    op.create_index(
        "ix_payment_attempts_event_id_created_at_outcome",
        "payment_attempts",
        ["event_id", "created_at", "status", "error_code", "decline_code"],
    )


def downgrade():
    op.drop_index("ix_payment_attempts_event_id_created_at_outcome", table_name="payment_attempts")
