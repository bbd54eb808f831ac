"""a short human-readable code on every ticket

Revision ID: 0006_ticket_codes
Revises: 0005_staff_accounts
Create Date: 2026-12-01 18:00:00

Tickets issued before this revision get a code now, drawn as new ones are
(``storefront.tickets``); the column is then required and unique.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006_ticket_codes"
down_revision = "0005_staff_accounts"
branch_labels = None
depends_on = None

# Frozen copies of storefront.tokens.HUMAN_ALPHABET and storefront.tickets.TICKET_CODE_LENGTH:
# a migration must not change when the application's code does.
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
LENGTH = 10


def upgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code", sa.String(length=16), nullable=True))

    conn = op.get_bind()
    tickets = sa.table("tickets", sa.column("id", sa.Integer), sa.column("code", sa.String))
    taken: set[str] = set()
    for (ticket_id,) in conn.execute(sa.select(tickets.c.id)).all():
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        while code in taken:
            code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        taken.add(code)
        conn.execute(tickets.update().where(tickets.c.id == ticket_id).values(code=code))

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column("code", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_tickets_code"), ["code"])


def downgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tickets_code"), type_="unique")
        batch_op.drop_column("code")
