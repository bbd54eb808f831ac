"""money in the currency's minor unit as Stripe counts it: *_cents columns become *_minor

Revision ID: 0004_money_minor_units
Revises: 0003_mail_sent_markers
Create Date: 2026-12-14 09:00:00

Before this revision the shop took every amount as hundredths: it showed
``price_cents / 100`` and sent ``price_cents`` to Stripe unchanged. Stripe counts
zero-decimal currencies (JPY, KRW, …) in whole units and three-decimal ones (KWD, …)
in thousandths, so in those currencies the buyer was charged another amount than the
page showed: ¥12,000 shown (stored 1200000) was ¥1,200,000 charged; KWD 25.000 shown
(stored 2500) was KWD 2.500 charged.

What this revision does, and why each row is treated so:

* Columns renamed (CHECK constraints kept, their expressions naming the new columns):
  ``ticket_types.price_minor``, ``payment_attempts.amount_minor``,
  ``orders.total_minor`` and ``refunded_minor``, ``tickets.price_minor``; in the JSON
  ``payment_attempts.lines`` the key ``unit_price_cents`` becomes ``unit_price_minor``.
* **Ticket type prices are converted**: they are the organiser's price in the shop's
  old convention (hundredths), so a zero-decimal price is divided by 100 (rounded as
  the page showed it, half to even) and a three-decimal one multiplied by 10. The
  buyer now pays what the page said.
* **Orders, tickets, attempts and their lines are not rewritten**: they record what
  Stripe was asked for and charged (``amount_total``, ``unit_amount``,
  ``amount_refunded``), which already is Stripe's minor unit. Rewriting them would
  make an order say the buyer paid less than Stripe took. They now read truly:
  an order of ¥1,200,000 shows ¥1,200,000.
* **The wrongly charged payments are made findable**: each attempt in such a
  currency gets ``displayed_amount_minor``, the total the shop had shown; every one
  is logged at WARNING here, and ``flask payment-review`` lists those that took or may
  still take money (paid, open, creating, processing, refunding) for a person, who
  refunds the difference. Attempts still open keep their session's old amount.
* New columns for fulfilment's check of the paid amount:
  ``payment_attempts.paid_amount_minor`` and ``paid_currency`` (status
  ``amount_mismatch``).

Two-decimal currencies (EUR, USD, GBP, ISK, UGX, HUF, …) need no conversion: the old
convention was already Stripe's there. The currency lists are frozen here as Stripe
documents them at this revision (``storefront.money`` may change later; this may not).
"""

import json
import logging
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa
from alembic import op

revision = "0004_money_minor_units"
down_revision = "0003_mail_sent_markers"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

ZERO_DECIMAL = ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF")
THREE_DECIMAL = ("BHD", "JOD", "KWD", "OMR", "TND")
STILL_CHARGING = ("paid", "open", "creating", "processing", "refunding")

# table -> (its amount columns without the suffix, its CHECK constraint, the check over them)
AMOUNTS = {
    "ticket_types": (["price"], "price_not_negative", "price_{0} >= 0"),
    "payment_attempts": (["amount"], "amount_not_negative", "amount_{0} >= 0"),
    "orders": (["total", "refunded"], "amounts_not_negative", "total_{0} >= 0 AND refunded_{0} >= 0"),
    "tickets": (["price"], "price_not_negative", "price_{0} >= 0"),
}


def _rename(old_suffix: str, new_suffix: str) -> None:
    """Rename each amount column; its CHECK constraint is dropped and made again so that
    its expression names the new column on both backends (batch mode copies SQLite's
    table with the constraint text as it was)."""
    for table, (columns, check, expression) in AMOUNTS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_{check}"), type_="check")
            for column in columns:
                batch_op.alter_column(
                    f"{column}_{old_suffix}",
                    new_column_name=f"{column}_{new_suffix}",
                    existing_type=sa.Integer(),
                    existing_nullable=False,
                )
            batch_op.create_check_constraint(op.f(f"ck_{table}_{check}"), expression.format(new_suffix))


def _shown(amount: int, currency: str) -> int:
    """What the old shop showed for a stored amount, in Stripe's minor units."""
    if currency in ZERO_DECIMAL:
        return int((Decimal(amount) / 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return amount * 10  # THREE_DECIMAL


def _stored(amount: int, currency: str) -> int:
    """The inverse, for the downgrade."""
    if currency in ZERO_DECIMAL:
        return amount * 100
    return int((Decimal(amount) / 10).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _rename_line_keys(conn, old: str, new: str) -> None:
    for attempt_id, lines in conn.execute(sa.text("SELECT id, lines FROM payment_attempts")).all():
        parsed = json.loads(lines)
        for line in parsed:
            if old in line:
                line[new] = line.pop(old)
        conn.execute(
            sa.text("UPDATE payment_attempts SET lines = :lines WHERE id = :id"),
            {"lines": json.dumps(parsed), "id": attempt_id},
        )


def upgrade():
    _rename("cents", "minor")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paid_amount_minor", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paid_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("displayed_amount_minor", sa.Integer(), nullable=True))

    conn = op.get_bind()
    _rename_line_keys(conn, "unit_price_cents", "unit_price_minor")
    converted = (*ZERO_DECIMAL, *THREE_DECIMAL)
    ticket_types = conn.execute(
        sa.text(
            "SELECT t.id, t.name, t.price_minor, upper(e.currency), e.slug FROM ticket_types t "
            "JOIN events e ON e.id = t.event_id WHERE upper(e.currency) IN :codes"
        ).bindparams(sa.bindparam("codes", expanding=True)),
        {"codes": list(converted)},
    ).all()
    for tt_id, name, price, currency, slug in ticket_types:
        new_price = _shown(price, currency)
        conn.execute(
            sa.text("UPDATE ticket_types SET price_minor = :price WHERE id = :id"), {"price": new_price, "id": tt_id}
        )
        if currency in ZERO_DECIMAL and price % 100:
            log.warning(
                "ticket type %s (%s, %s): %s %s was shown rounded, now %s",
                tt_id,
                name,
                slug,
                price,
                currency,
                new_price,
            )
    attempts = conn.execute(
        sa.text(
            "SELECT a.id, a.amount_minor, upper(a.currency), a.status, a.buyer_email, a.stripe_checkout_session_id, "
            "o.code FROM payment_attempts a LEFT JOIN orders o ON o.stripe_checkout_session_id = "
            "a.stripe_checkout_session_id WHERE upper(a.currency) IN :codes ORDER BY a.id"
        ).bindparams(sa.bindparam("codes", expanding=True)),
        {"codes": list(converted)},
    ).all()
    for attempt_id, amount, currency, status, email, session_id, order_code in attempts:
        shown = _shown(amount, currency)
        conn.execute(
            sa.text("UPDATE payment_attempts SET displayed_amount_minor = :shown WHERE id = :id"),
            {"shown": shown, "id": attempt_id},
        )
        if status in STILL_CHARGING:
            log.warning(
                "attempt %s (%s, order %s, session %s, %s): Stripe was asked for %s %s (minor units), the shop "
                "showed %s; see flask payment-review",
                attempt_id,
                status,
                order_code or "none",
                session_id,
                email,
                amount,
                currency,
                shown,
            )
    log.info(
        "money in minor units: %d ticket type price(s) converted, %d attempt(s) marked with the amount shown",
        len(ticket_types),
        len(attempts),
    )


def downgrade():
    conn = op.get_bind()
    converted = (*ZERO_DECIMAL, *THREE_DECIMAL)
    for tt_id, price, currency in conn.execute(
        sa.text(
            "SELECT t.id, t.price_minor, upper(e.currency) FROM ticket_types t JOIN events e ON e.id = t.event_id "
            "WHERE upper(e.currency) IN :codes"
        ).bindparams(sa.bindparam("codes", expanding=True)),
        {"codes": list(converted)},
    ).all():
        conn.execute(
            sa.text("UPDATE ticket_types SET price_minor = :price WHERE id = :id"),
            {"price": _stored(price, currency), "id": tt_id},
        )
    _rename_line_keys(conn, "unit_price_minor", "unit_price_cents")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("displayed_amount_minor")
        batch_op.drop_column("paid_currency")
        batch_op.drop_column("paid_amount_minor")
    _rename("minor", "cents")
