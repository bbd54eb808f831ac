"""``storefront.attempts`` owns a payment attempt's status: every move the table lists
works, every other is refused and changes nothing, and no other module writes the column
(nor another module an order's, owned by ``orders``, or a refund's, owned by ``refunds``)."""

from __future__ import annotations

import ast
import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from storefront import attempts
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, Cart, CartStatus, PaymentAttempt, Ticket, TicketStatus, utcnow

PAIRS = list(itertools.product(AttemptStatus, AttemptStatus))


def _attempt(status: AttemptStatus) -> int:
    now = utcnow()
    with write_transaction():
        cart = Cart(token=f"t-{status}-{now.timestamp()}", status=CartStatus.CHECKING_OUT.value, expires_at=now)
        db.session.add(cart)
        db.session.flush()
        attempt = PaymentAttempt(
            cart_id=cart.id,
            idempotency_key=f"k-{cart.id}",
            lines="[]",
            buyer_email="ada@example.com",
            amount_minor=2500,
            currency="EUR",
            status=status.value,
            session_expires_at=now + timedelta(minutes=30),
        )
        db.session.add(attempt)
    return attempt.id


def _status(attempt_id: int) -> str:
    db.session.expire_all()
    return db.session.execute(select(PaymentAttempt.status).where(PaymentAttempt.id == attempt_id)).scalar_one()


def test_every_status_has_its_row_in_the_table():
    assert set(attempts.TRANSITIONS) == set(AttemptStatus)
    # Ends are ends: what is paid or refunded moves no further here.
    for end in (AttemptStatus.PAID, AttemptStatus.REFUNDED):
        assert attempts.TRANSITIONS[end] == frozenset()
    # Left for a person, who may only refund it (the reconciliation inbox): never an order.
    assert attempts.TRANSITIONS[AttemptStatus.AMOUNT_MISMATCH] == frozenset({AttemptStatus.REFUNDING})
    assert all(to != AttemptStatus.CREATING for targets in attempts.TRANSITIONS.values() for to in targets)


@pytest.mark.parametrize("current, to", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_move_does_what_the_table_says_and_nothing_else(app, current, to):
    attempt_id = _attempt(current)
    legal = to in attempts.TRANSITIONS[current]
    later = utcnow() + timedelta(seconds=5)
    if legal:
        with write_transaction():
            attempts.move(db.session.get(PaymentAttempt, attempt_id), to, later)
        assert _status(attempt_id) == to.value
        assert db.session.get(PaymentAttempt, attempt_id).updated_at == later
    else:
        with pytest.raises(attempts.IllegalAttemptTransition, match=f"from {current.value} to {to.value}"):
            with write_transaction():
                attempts.move(db.session.get(PaymentAttempt, attempt_id), to, later)
        assert _status(attempt_id) == current.value


def test_move_where_moves_only_the_rows_in_a_legal_source_status(app):
    open_one, open_two, paid = _attempt(AttemptStatus.OPEN), _attempt(AttemptStatus.OPEN), _attempt(AttemptStatus.PAID)
    with write_transaction():
        moved = attempts.move_where(
            PaymentAttempt.id.in_([open_one, paid]),
            from_=[AttemptStatus.OPEN],
            to=AttemptStatus.EXPIRED,
            now=utcnow(),
        )
    assert moved == 1
    assert [_status(a) for a in (open_one, open_two, paid)] == ["expired", "open", "paid"]


def test_move_where_refuses_an_illegal_source_before_writing(app):
    attempt_id = _attempt(AttemptStatus.FAILED)
    with pytest.raises(attempts.IllegalAttemptTransition, match="from failed to open"):
        with write_transaction():
            attempts.move_where(
                PaymentAttempt.id == attempt_id,
                from_=[AttemptStatus.EXPIRED, AttemptStatus.FAILED],
                to=AttemptStatus.OPEN,
                now=utcnow(),
            )
    assert _status(attempt_id) == "failed"


LIFECYCLES = [
    ("attempts", "attempt", "PaymentAttempt"),
    ("orders", "order", "Order"),
    ("refunds", "refund", "Refund"),
    ("ticket_lifecycle", "ticket", "Ticket"),
    ("reconcile", "item", "ReconcileItem"),
]


def _writes_of_status(path: Path, hint: str, model: str) -> list[str]:
    """Places in a module that write ``model``'s status: an assignment to
    ``<something named like hint>.status``, or ``update(model)….values(status=…)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "status"
                and hint in ast.unparse(target.value).lower()
            ):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values":
            chain = ast.unparse(node.func.value)
            if f"update({model})" in chain and any(k.arg == "status" for k in node.keywords):
                found.append(f"{path.name}:{node.lineno}: {chain[:60]}….values(status=…)")
    return found


@pytest.mark.parametrize("owner, hint, model", LIFECYCLES, ids=[m for _, _, m in LIFECYCLES])
def test_no_module_but_the_owner_writes_a_status(project_root, owner, hint, model):
    package = project_root / "storefront"
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == f"{owner}.py" and path.parent == package or "sandbox" in path.parts:
            continue
        offenders += _writes_of_status(path, hint, model)
    assert offenders == []


def test_the_scan_finds_a_stray_write(tmp_path):
    """The scan above is not vacuous: both shapes of a stray write are caught."""
    stray = tmp_path / "stray.py"
    stray.write_text(
        "def f(attempt, db):\n"
        "    attempt.status = 'paid'\n"
        "    db.session.execute(update(PaymentAttempt).where(x).values(status='open'))\n"
    )
    assert len(_writes_of_status(stray, "attempt", "PaymentAttempt")) == 2


TICKET_PAIRS = list(itertools.product(TicketStatus, TicketStatus))


@pytest.mark.parametrize("current, to", TICKET_PAIRS, ids=[f"{a}->{b}" for a, b in TICKET_PAIRS])
def test_ticket_moves_follow_the_table(app, current, to):
    """``ticket_lifecycle`` refuses an illegal move before writing and makes a legal one."""
    from storefront import ticket_lifecycle

    from .factories import make_event, make_order

    ticket = make_order(make_event(), ticket_status=current.value).tickets[0]
    legal = to in ticket_lifecycle.TRANSITIONS[current]
    if legal:
        with write_transaction():
            moved = ticket_lifecycle._move_where(Ticket.id == ticket.id, [current], to)
        assert moved == [ticket.id]
    else:
        with pytest.raises(ticket_lifecycle.IllegalTicketTransition):
            with write_transaction():
                ticket_lifecycle._move_where(Ticket.id == ticket.id, [current], to)
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == (to if legal else current).value
