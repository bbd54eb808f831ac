"""order locale: the language a checkout was made in, kept on its payment attempt and
its order, so the order's mails and PDF come in it (existing rows: English, the language
every mail was sent in before)

Revision ID: 0018_order_locale
Revises: 0017_mail_resends
Create Date: 2026-12-02 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_order_locale"
down_revision = "0017_mail_resends"
branch_labels = None
depends_on = None

TABLES = ("payment_attempts", "orders")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("locale", sa.String(length=8), nullable=False, server_default="en"))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("locale")
