"""when the order confirmation and the late-payment refund notice were sent (claimed)

Revision ID: 0003_mail_sent_markers
Revises: 0002_checkout_orders
Create Date: 2026-11-23 04:15:00

Orders made before this revision have no confirmation recorded (none was ever sent):
``flask send-confirmations`` mails them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_mail_sent_markers"
down_revision = "0002_checkout_orders"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmation_sent_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_notice_sent_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("refund_notice_sent_at")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("confirmation_sent_at")
