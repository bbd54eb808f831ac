"""mail resends: a confirmation sent again is a row of its own, numbered

Revision ID: 0017_mail_resends
Revises: 0016_live_sales
Create Date: 2026-12-02 01:00:00

``mail_outbox.resend``: 0 for the mail itself (every row written so far), 1, 2, … for each
copy a member asked for again from the back office. The uniqueness of a kind per order
becomes per (order, kind, resend), so fulfilment still records one confirmation per order
and a double click on Resend still records one copy. The downgrade deletes the resends
(copies asked for again; the mails themselves stay) and restores the old constraint.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_mail_resends"
down_revision = "0016_live_sales"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resend", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_mail_outbox_order_id_kind", type_="unique")
        batch_op.create_unique_constraint("uq_mail_outbox_order_id_kind_resend", ["order_id", "kind", "resend"])


def downgrade():
    op.execute("DELETE FROM mail_outbox WHERE resend > 0")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_constraint("uq_mail_outbox_order_id_kind_resend", type_="unique")
        batch_op.create_unique_constraint("uq_mail_outbox_order_id_kind", ["order_id", "kind"])
        batch_op.drop_column("resend")
