"""Reconcile's runs and what each found are stored (issue 11): one run row per run, one
item per mismatch (kind + Stripe id), the same item when found again, closed by itself
when its cause went away. Real sandbox over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from storefront.extensions import db
from storefront.models import AttemptStatus, ReconcileItem, ReconcileRun
from storefront.payments import gateway as gw
from storefront.reconcile import reconcile

from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    attempt_of,
    buy_until_stripe,
    deliver,
    order_of,
    pay_but_drop_the_completion,
    sandbox,
    shop,
    stripe_event,
)
from .factories import make_event


def _amount_mismatch(shop, sandbox):
    """A paid session whose completion said another amount: fulfilment flagged it, no order."""
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 5}])
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 2})
    pay_but_drop_the_completion(sandbox, session_id)
    completed = stripe_event("checkout.session.completed", session_id).to_dict()
    completed["data"]["object"]["amount_total"] = 50
    assert deliver(shop.test_client(), completed).status_code == 200
    db.session.rollback()
    assert attempt_of(session_id).status == AttemptStatus.AMOUNT_MISMATCH.value
    return event, session_id


def _items():
    db.session.rollback()
    return db.session.execute(select(ReconcileItem).order_by(ReconcileItem.id)).scalars().all()


def test_a_run_and_its_mismatch_are_stored_and_found_again_is_the_same_item(shop, sandbox):
    event, session_id = _amount_mismatch(shop, sandbox)
    first = reconcile(since=timedelta(hours=1), started_by="cli")
    [item] = _items()
    assert (item.kind, item.stripe_id, item.status, item.event_id) == (
        "amount_mismatch",
        session_id,
        "open",
        event.id,
    )
    assert (item.stripe_amount_minor, item.stripe_currency, item.stripe_status) == (5000, "EUR", "complete/paid")
    assert "asked 5000 EUR" in item.ours and item.attempt_id == attempt_of(session_id).id
    run = db.session.get(ReconcileRun, first.run_id)
    assert run.started_by == "cli" and run.finished_at is not None
    assert (run.found_count, run.closed_count) == (1, 0) and run.checked_count >= 1

    second = reconcile(since=timedelta(hours=1), started_by="job")
    [again] = _items()
    assert again.id == item.id and again.status == "open"
    assert (again.first_run_id, again.last_run_id) == (first.run_id, second.run_id)
    assert db.session.get(ReconcileRun, second.run_id).started_by == "job"


def test_an_item_whose_cause_was_fixed_elsewhere_closes_itself_on_the_next_run(shop, sandbox):
    event = make_event()
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 1})
    # A crash left our attempt "creating" while Stripe has the session open: a mismatch.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE payment_attempts SET status = 'creating'"))
    reconcile(since=timedelta(hours=1))
    [item] = _items()
    assert (item.kind, item.status, item.stripe_status) == ("open_at_stripe", "open", "open/unpaid")
    # Fixed elsewhere: the session ends at Stripe; the next run ends our attempt too.
    gw.get_gateway().expire_checkout_session(session_id)
    later = reconcile(since=timedelta(hours=1))
    [closed] = _items()
    assert closed.id == item.id and closed.status == "closed" and closed.closed_at is not None
    assert db.session.get(ReconcileRun, later.run_id).closed_count == 1
    assert attempt_of(session_id).status == AttemptStatus.EXPIRED.value


def test_a_paid_session_without_an_order_is_fixed_so_no_item_is_left(shop, sandbox):
    event = make_event()
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    pay_but_drop_the_completion(sandbox, session_id)
    report = reconcile(since=timedelta(hours=1))
    assert order_of(session_id) is not None and _items() == []
    run = db.session.get(ReconcileRun, report.run_id)
    assert run.fixed_count >= 1 and run.found_count == 0


# --- the inbox in the admin -------------------------------------------------------------------


def _inbox(app):
    from .admin_support import build_world, reconcile_item_of, sign_in_as

    world = build_world()
    home_item, away_item = reconcile_item_of(world.other_event), reconcile_item_of(world.away_event)
    client = app.test_client()
    sign_in_as(client, world.users["manager"])
    return world, client, home_item, away_item


def test_the_inbox_lists_only_the_organisers_items_and_the_last_runs(app):
    world, client, home_item, away_item = _inbox(app)
    page = client.get("/admin/o/home/reconciliation")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"item-{home_item}" in body and f"item-{away_item}" not in body
    assert "Still open at Stripe, ended here" in body and "test" in body  # the run, started by "test"
    # Another organiser's item cannot be acted on from inside our URLs.
    refused = client.post(f"/admin/o/home/reconciliation/{away_item}/dismiss", data={"note": "not ours"})
    assert refused.status_code == 404
    assert db.session.get(ReconcileItem, away_item).status == "open"


def test_dismiss_needs_a_note_is_audited_and_a_double_click_changes_nothing(app):
    from storefront.staff_models import AuditEntry

    world, client, home_item, _ = _inbox(app)
    url = f"/admin/o/home/reconciliation/{home_item}/dismiss"
    for bad in ({}, {"note": "   "}, {"note": "x" * 2001}):
        answer = client.post(url, data=bad)
        assert answer.status_code == 422, bad
        db.session.rollback()
        assert db.session.get(ReconcileItem, home_item).status == "open"
    assert client.post("/admin/o/home/reconciliation/999999/dismiss", data={"note": "n"}).status_code == 404
    first = client.post(url, data={"note": "refunded by hand in the Stripe dashboard"})
    assert first.status_code in (302, 303)
    second = client.post(url, data={"note": "again"})
    assert second.status_code in (302, 303)
    db.session.rollback()
    item = db.session.get(ReconcileItem, home_item)
    assert (item.status, item.note) == ("dismissed", "refunded by hand in the Stripe dashboard")
    entries = (
        db.session.execute(select(AuditEntry).where(AuditEntry.action == "reconcile_item.dismiss")).scalars().all()
    )
    assert len(entries) == 1 and entries[0].event_id == world.other_event.id
    assert f"item-{home_item}" not in client.get("/admin/o/home/reconciliation").get_data(as_text=True)
