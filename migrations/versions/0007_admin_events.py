"""events and ticket types edited in the back office: an event's end, its cover image, hidden ticket types

Revision ID: 0007_admin_events
Revises: 0006_ticket_codes
Create Date: 2026-12-01 18:10:00

Existing events get no end (``ends_at`` NULL: the event is past once it starts) and no
cover; existing ticket types stay on sale (``hidden`` false).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_admin_events"
down_revision = "0006_ticket_codes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ends_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("cover_image", sa.String(length=64), nullable=True))
    with op.batch_alter_table("ticket_types", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("ticket_types", schema=None) as batch_op:
        batch_op.drop_column("hidden")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("cover_image")
        batch_op.drop_column("ends_at")
