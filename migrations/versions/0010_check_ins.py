"""the door's check-in log: one row per scan attempt, append-only

Revision ID: 0010_check_ins
Revises: 0008_mail_outbox
Create Date: 2026-12-01 18:30:00

``check_ins`` is the log of the door (``storefront.check_in``): what was scanned, by
whom, at which door, and what it was answered. Like ``audit_entries`` it is append-only
in the database: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
Tickets already marked used keep their ``checked_in_at``; they have no row here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_check_ins"
down_revision = "0008_mail_outbox"
branch_labels = None
depends_on = None

METHOD = sa.Enum("qr", "code", name="checkinmethod", native_enum=False, length=20)
RESULT = sa.Enum(
    "admitted",
    "already_used",
    "void",
    "refunded",
    "wrong_event",
    "unknown",
    name="checkinresult",
    native_enum=False,
    length=20,
)

SQLITE_TRIGGERS = [
    "CREATE TRIGGER check_ins_no_update BEFORE UPDATE ON check_ins "
    "BEGIN SELECT RAISE(ABORT, 'check_ins is append-only'); END",
    "CREATE TRIGGER check_ins_no_delete BEFORE DELETE ON check_ins "
    "BEGIN SELECT RAISE(ABORT, 'check_ins is append-only'); END",
]
POSTGRESQL_TRIGGERS = [
    "CREATE FUNCTION check_ins_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'check_ins is append-only' USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER check_ins_no_update_or_delete BEFORE UPDATE OR DELETE ON check_ins "
    "FOR EACH ROW EXECUTE FUNCTION check_ins_append_only()",
    "CREATE TRIGGER check_ins_no_truncate BEFORE TRUNCATE ON check_ins "
    "FOR EACH STATEMENT EXECUTE FUNCTION check_ins_append_only()",
]


def upgrade():
    op.create_table(
        "check_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("staff_email", sa.String(length=254), nullable=False),
        sa.Column("door", sa.String(length=60), nullable=False),
        sa.Column("method", METHOD, nullable=False),
        sa.Column("result", RESULT, nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("presented_digest", sa.String(length=64), nullable=False),
        sa.Column("admission_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["admission_id"], ["check_ins.id"], name=op.f("fk_check_ins_admission_id_check_ins")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_check_ins_event_id_events")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_check_ins_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_check_ins_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_ins")),
        sa.UniqueConstraint("user_id", "nonce", name="uq_check_ins_user_id_nonce"),
    )
    op.create_index("ix_check_ins_event_id_id", "check_ins", ["event_id", "id"], unique=False)
    op.create_index("ix_check_ins_ticket_id_id", "check_ins", ["ticket_id", "id"], unique=False)
    triggers = POSTGRESQL_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade():
    # Dropping the table drops its indexes and triggers on both backends.
    op.drop_table("check_ins")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION check_ins_append_only()")
