"""orders view: the attempt timeline (attempt_events, append-only) and the indexes of the
back office's order list, search and attempts

Revision ID: 0012_orders_view
Revises: 0011_refunds
Create Date: 2026-12-01 21:50:00

``attempt_events`` is one row per move of a payment attempt's status and per failed try
inside its session (``storefront.attempts``, ``storefront.stripe_events``). Like
``audit_entries`` it is append-only: triggers refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL). Attempts made before this revision have no rows; their timeline shows what
the attempt row itself says.

The order list (``storefront.order_search``) pages by (created_at, id), per event and
across events, and searches by e-mail prefix and by attendee-name prefix with case and
accents folded. The folding expression below must be the module's (``FOLD_FROM``,
``FOLD_TO``; a test compares them). The expression indexes are PostgreSQL's only: on
SQLite, ``translate`` is a function the app registers, unknown to other clients.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_orders_view"
down_revision = "0011_refunds"
branch_labels = None
depends_on = None

FOLD_FROM = (
    "ÀÁÂÃÄÅĀĂĄÇĆČĎÈÉÊËĒĖĘĚÌÍÎÏĪĮŁÑŃŇÒÓÔÕÖØŌŐŔŘŚŠŞŤÙÚÛÜŪŮŰŲÝŸŹŻŽ"
    "àáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőŕřśšşťùúûüūůűųýÿźżž"
)
FOLD_TO = (
    "AAAAAAAAACCCDEEEEEEEEIIIIIILNNNOOOOOOOORRSSSTUUUUUUUUYYZZZ"
    "aaaaaaaaacccdeeeeeeeeiiiiiilnnnoooooooorrssstuuuuuuuuyyzzz"
)

SQLITE_TRIGGERS = [
    "CREATE TRIGGER attempt_events_no_update BEFORE UPDATE ON attempt_events "
    "BEGIN SELECT RAISE(ABORT, 'attempt_events is append-only'); END",
    "CREATE TRIGGER attempt_events_no_delete BEFORE DELETE ON attempt_events "
    "BEGIN SELECT RAISE(ABORT, 'attempt_events is append-only'); END",
]
POSTGRESQL_TRIGGERS = [
    "CREATE FUNCTION attempt_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'attempt_events is append-only' USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER attempt_events_no_update_or_delete BEFORE UPDATE OR DELETE ON attempt_events "
    "FOR EACH ROW EXECUTE FUNCTION attempt_events_append_only()",
    "CREATE TRIGGER attempt_events_no_truncate BEFORE TRUNCATE ON attempt_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION attempt_events_append_only()",
]


def _fold(expression: str) -> str:
    return f"lower(translate({expression}, '{FOLD_FROM}', '{FOLD_TO}'))"


FIRST_LAST = "attendee_first_name || ' ' || attendee_last_name"
LAST_FIRST = "attendee_last_name || ' ' || attendee_first_name"
POSTGRESQL_INDEXES = [
    # Search by e-mail: lower(buyer_email) LIKE 'ada@%'.
    "CREATE INDEX ix_orders_buyer_email_lower ON orders (lower(buyer_email) text_pattern_ops)",
    # Search by attendee name: "first last" and "last first", folded, LIKE 'prefix%'.
    f"CREATE INDEX ix_tickets_attendee_first_last_folded ON tickets (({_fold(FIRST_LAST)}) text_pattern_ops)",
    f"CREATE INDEX ix_tickets_attendee_last_first_folded ON tickets (({_fold(LAST_FIRST)}) text_pattern_ops)",
]


def upgrade():
    op.create_table(
        "attempt_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("error_type", sa.String(length=100), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("decline_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["payment_attempts.id"], name=op.f("fk_attempt_events_attempt_id_payment_attempts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt_events")),
    )
    with op.batch_alter_table("attempt_events", schema=None) as batch_op:
        batch_op.create_index("ix_attempt_events_attempt_id_id", ["attempt_id", "id"], unique=False)
    # The order list, newest first: per event, and across an organiser's events.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_event_id_created_at_id", ["event_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_orders_created_at_id", ["created_at", "id"], unique=False)
    # Attempts without an order, per event, newest first: each attempt names its event
    # (checkout sets it); the older ones take it from their cart's items (a cart holds one
    # event's tickets); a cart emptied since leaves it NULL.
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_payment_attempts_event_id_events"), "events", ["event_id"], ["id"])
    op.execute(
        "UPDATE payment_attempts SET event_id = (SELECT ticket_types.event_id FROM cart_items "
        "JOIN ticket_types ON ticket_types.id = cart_items.ticket_type_id "
        "WHERE cart_items.cart_id = payment_attempts.cart_id ORDER BY cart_items.id LIMIT 1)"
    )
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_attempts_event_id_created_at_id", ["event_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_payment_attempts_created_at_id", ["created_at", "id"], unique=False)
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in (POSTGRESQL_TRIGGERS + POSTGRESQL_INDEXES) if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in (
            "ix_tickets_attendee_last_first_folded",
            "ix_tickets_attendee_first_last_folded",
            "ix_orders_buyer_email_lower",
        ):
            op.execute(f"DROP INDEX {name}")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_attempts_created_at_id")
        batch_op.drop_index("ix_payment_attempts_event_id_created_at_id")
        batch_op.drop_constraint(batch_op.f("fk_payment_attempts_event_id_events"), type_="foreignkey")
        batch_op.drop_column("event_id")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_created_at_id")
        batch_op.drop_index("ix_orders_event_id_created_at_id")
    op.drop_table("attempt_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION attempt_events_append_only()")
