"""payments dashboard: a covering index of payment attempts by event and time, with
their outcome, so the dashboard counts them from the index alone; the event of a cart
(the one whose page created it), so its funnel counts carts from an index

Revision ID: 0015_report_indexes
Revises: 0014_reconciliation
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
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

    # The funnel's carts: before, a join of every cart item with its cart and ticket type.
    with op.batch_alter_table("carts") as batch:
        batch.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_carts_event_id_events"), "events", ["event_id"], ["id"])
    # Existing carts: the event of a ticket they hold (one event at a time); empty ones stay None.
    op.execute(
        "UPDATE carts SET event_id = (SELECT min(ticket_types.event_id) FROM cart_items"
        " JOIN ticket_types ON ticket_types.id = cart_items.ticket_type_id WHERE cart_items.cart_id = carts.id)"
    )
    op.create_index("ix_carts_event_id_created_at", "carts", ["event_id", "created_at"])


def downgrade():
    op.drop_index("ix_carts_event_id_created_at", table_name="carts")
    with op.batch_alter_table("carts") as batch:
        batch.drop_constraint(op.f("fk_carts_event_id_events"), type_="foreignkey")
        batch.drop_column("event_id")
    op.drop_index("ix_payment_attempts_event_id_created_at_outcome", table_name="payment_attempts")
