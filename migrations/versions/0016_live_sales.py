"""live sales: a partial index of the payment attempts still in flight, per event

Revision ID: 0016_live_sales
Revises: 0015_report_indexes
Create Date: 2026-12-02 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_live_sales"
down_revision = "0015_report_indexes"
branch_labels = None
depends_on = None

# As models.IN_FLIGHT_CONDITION (a migration does not import the models).
IN_FLIGHT = "status IN ('creating', 'open', 'processing')"


def upgrade():
    op.create_index(
        "ix_payment_attempts_in_flight",
        "payment_attempts",
        ["event_id", "status"],
        postgresql_where=sa.text(IN_FLIGHT),
        sqlite_where=sa.text(IN_FLIGHT),
    )


def downgrade():
    op.drop_index("ix_payment_attempts_in_flight", table_name="payment_attempts")
