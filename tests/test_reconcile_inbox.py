"""Reconcile's runs and what each found are stored (issue 11): one run row per run, one
item per mismatch (kind + Stripe id), the same item when found again, closed by itself
when its cause went away. Real sandbox over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from storefront import fulfilment
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, PaymentAttempt, ReconcileItem, ReconcileRun, utcnow
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


# --- acting on an item: fulfil, refund; what cannot be acted on ----------------------------------


def _manager_of_the_event(shop, event):
    """A manager of the home organiser, signed in, and ``event`` moved to that organiser."""
    from .admin_support import build_world, sign_in_as

    world = build_world()
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE events SET organiser_id = :o WHERE id = :e"), {"o": world.organiser.id, "e": event.id}
        )
    client = shop.test_client()
    sign_in_as(client, world.users["manager"])
    return world, client


def _audits(action: str):
    from storefront.staff_models import AuditEntry

    db.session.rollback()
    return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars().all()


def _paid_without_order_item(shop, sandbox):
    """A paid session of ours with no order, found by a run that could not fulfil it."""
    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2500, "capacity": 5}])
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 2})
    pay_but_drop_the_completion(sandbox, session_id)
    attempt = attempt_of(session_id)
    with write_transaction():
        run = ReconcileRun(started_by="test", finished_at=utcnow())
        db.session.add(run)
        db.session.flush()
        item = ReconcileItem(
            kind="paid_without_order",
            stripe_id=session_id,
            status="open",
            event_id=event.id,
            attempt_id=attempt.id,
            stripe_status="complete/paid",
            stripe_amount_minor=5000,
            stripe_currency="EUR",
            ours=f"attempt {attempt.id} is {attempt.status}; no order",
            first_run_id=run.id,
            last_run_id=run.id,
            note="",
        )
        db.session.add(item)
    return event, session_id, item.id


def test_fulfil_asks_to_confirm_then_makes_exactly_one_order_under_a_double_submit(shop, sandbox):
    from storefront.models import Order

    event, session_id, item_id = _paid_without_order_item(shop, sandbox)
    world, client = _manager_of_the_event(shop, event)
    url = f"/admin/o/home/reconciliation/{item_id}/fulfil"
    page = client.get("/admin/o/home/reconciliation").get_data(as_text=True)
    assert "Paid, but we have no order" in page and "Fulfil…" in page and "Refund…" in page
    assert "Paid: <strong>€50.00" in page and "We asked €50.00" in page  # Stripe beside ours

    confirm = client.post(url)
    assert confirm.status_code == 200 and "Make the order" in confirm.get_data(as_text=True)
    assert order_of(session_id) is None  # the confirm step did nothing

    first = client.post(url, data={"confirm": "1"})
    assert first.status_code == 303, first.get_data(as_text=True)[:500]
    second = client.post(url, data={"confirm": "1"})
    assert second.status_code == 409 and "dealt with already" in second.get_data(as_text=True)
    db.session.rollback()
    orders = db.session.execute(select(Order).where(Order.stripe_checkout_session_id == session_id)).scalars().all()
    assert len(orders) == 1 and len(orders[0].tickets) == 2
    item = db.session.get(ReconcileItem, item_id)
    assert item.status == "fulfilled" and orders[0].code in item.note
    assert attempt_of(session_id).status == AttemptStatus.PAID.value
    [entry] = _audits("reconcile_item.fulfil")
    assert entry.event_id == event.id and entry.organiser_id == world.organiser.id
    # Fulfilling again at the domain level finds the order, never makes a second one.
    assert fulfilment.fulfil(session_id, source="test").order_id == orders[0].id


def test_refund_of_an_amount_mismatch_goes_to_stripe_once_and_moves_the_attempt(shop, sandbox):
    event, session_id = _amount_mismatch(shop, sandbox)
    reconcile(since=timedelta(hours=1))
    [item] = _items()
    world, client = _manager_of_the_event(shop, event)
    page = client.get("/admin/o/home/reconciliation").get_data(as_text=True)
    assert "Paid another amount than we asked" in page and "Refund…" in page and "Fulfil…" not in page
    url = f"/admin/o/home/reconciliation/{item.id}/refund"
    # The confirm step, and an action the kind does not offer, change nothing.
    assert "Refund now" in client.post(url).get_data(as_text=True)
    refused = client.post(f"/admin/o/home/reconciliation/{item.id}/fulfil", data={"confirm": "1"})
    assert refused.status_code == 409 and "does not apply" in refused.get_data(as_text=True)
    assert attempt_of(session_id).status == AttemptStatus.AMOUNT_MISMATCH.value

    assert client.post(url, data={"confirm": "1"}).status_code == 303
    again = client.post(url, data={"confirm": "1"})
    assert again.status_code == 409 and "dealt with already" in again.get_data(as_text=True)

    attempt = attempt_of(session_id)
    session = gw.get_gateway().retrieve_checkout_session(session_id)
    refunds = list(gw.get_gateway().list_refunds(payment_intent=session.payment_intent).auto_paging_iter())
    assert len(refunds) == 1 and refunds[0].amount == 5000  # all that was paid, once
    assert (attempt.status, attempt.stripe_refund_id) == (AttemptStatus.REFUNDED.value, refunds[0].id)
    item = db.session.get(ReconcileItem, item.id)
    assert item.status == "refunded" and refunds[0].id in item.note
    [entry] = _audits("reconcile_item.refund")
    assert entry.event_id == event.id and refunds[0].id in str(entry.after)
    assert order_of(session_id) is None
    # No longer under review: the cart's hold, kept for the person, is released once it lapses.
    from storefront.checkout import expire_lapsed_checkouts
    from storefront.models import TicketType

    assert db.session.get(TicketType, event.ticket_types[0].id).held == 2
    assert expire_lapsed_checkouts(now=utcnow() + timedelta(hours=2)) == 1
    db.session.rollback()
    assert db.session.get(TicketType, event.ticket_types[0].id).held == 0


def test_refund_when_stripe_fails_changes_nothing_of_the_item_and_the_next_click_refunds_once(shop, sandbox):
    event, session_id = _amount_mismatch(shop, sandbox)
    reconcile(since=timedelta(hours=1))
    [item] = _items()
    _world, client = _manager_of_the_event(shop, event)
    url = f"/admin/o/home/reconciliation/{item.id}/refund"
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "api_error", "status": 500, "path": "/v1/refunds", "count": 10}
    )
    failed = client.post(url, data={"confirm": "1"})
    assert failed.status_code == 503 and "could not be reached" in failed.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(ReconcileItem, item.id).status == "open"
    assert attempt_of(session_id).status == AttemptStatus.REFUNDING.value  # decided: no order can be made now
    sandbox.control("DELETE", "/_sandbox/faults")
    assert client.post(url, data={"confirm": "1"}).status_code == 303
    session = gw.get_gateway().retrieve_checkout_session(session_id)
    assert len(list(gw.get_gateway().list_refunds(payment_intent=session.payment_intent).auto_paging_iter())) == 1
    assert attempt_of(session_id).status == AttemptStatus.REFUNDED.value


def test_dismissed_and_closed_items_and_actions_a_kind_lacks_are_refused_with_nothing_changed(app):
    from .admin_support import snapshot

    world, client, home_item, _ = _inbox(app)
    for status in ("dismissed", "closed"):
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE reconcile_items SET status = :s WHERE id = :i"), {"s": status, "i": home_item})
        before = snapshot()
        for action, data in (("fulfil", {"confirm": "1"}), ("refund", {"confirm": "1"}), ("refund", {})):
            answer = client.post(f"/admin/o/home/reconciliation/{home_item}/{action}", data=data)
            assert answer.status_code == 409, (status, action)
            assert "dealt with already" in answer.get_data(as_text=True)
        answer = client.post(f"/admin/o/home/reconciliation/{home_item}/dismiss", data={"note": "again"})
        assert answer.status_code == 303
        assert snapshot() == before, status
    # An open item whose kind offers neither action (open at Stripe): refused, unchanged.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE reconcile_items SET status = 'open' WHERE id = :i"), {"i": home_item})
    before = snapshot()
    for action in ("fulfil", "refund"):
        answer = client.post(f"/admin/o/home/reconciliation/{home_item}/{action}", data={"confirm": "1"})
        assert answer.status_code == 409 and "does not apply" in answer.get_data(as_text=True)
    assert snapshot() == before


def test_another_organisers_item_and_an_item_without_event_are_not_found_and_a_viewer_cannot_act(app):
    from .admin_support import sign_in_as, snapshot

    world, client, home_item, away_item = _inbox(app)
    with write_transaction():
        orphan = ReconcileItem(
            kind="no_attempt",
            stripe_id="cs_test_nobody",
            status="open",
            event_id=None,
            stripe_status="complete/paid",
            stripe_amount_minor=900,
            stripe_currency="EUR",
            ours="no attempt of ours",
            first_run_id=db.session.get(ReconcileItem, home_item).first_run_id,
            last_run_id=db.session.get(ReconcileItem, home_item).last_run_id,
            note="",
        )
        db.session.add(orphan)
    before = snapshot()
    for item_id in (away_item, orphan.id):
        for action in ("fulfil", "refund", "dismiss"):
            data = {"confirm": "1", "note": "mine?"}
            assert client.post(f"/admin/o/home/reconciliation/{item_id}/{action}", data=data).status_code == 404
    for slug, member in (("home", "owner"), ("away", "other_organiser")):
        sign_in_as(client, world.users[member])
        page = client.get(f"/admin/o/{slug}/reconciliation").get_data(as_text=True)
        assert "cs_test_nobody" not in page and f"item-{orphan.id}" not in page
    sign_in_as(client, world.users["viewer"])
    page = client.get("/admin/o/home/reconciliation").get_data(as_text=True)
    assert f"item-{home_item}" in page and "Dismiss" not in page and "Start a run" not in page
    for action in ("fulfil", "refund", "dismiss"):
        answer = client.post(f"/admin/o/home/reconciliation/{home_item}/{action}", data={"confirm": "1", "note": "n"})
        assert answer.status_code == 404
    assert client.post("/admin/o/home/reconciliation/runs").status_code == 404
    assert snapshot() == before


# --- a run a manager asks for ---------------------------------------------------------------------


def test_starting_a_run_enqueues_it_once_and_it_runs_under_the_lease(shop, sandbox):
    from storefront import jobs, leases
    from storefront import reconcile as reconciliation

    from .admin_support import build_world, sign_in_as

    world = build_world()
    client = shop.test_client()
    sign_in_as(client, world.users["manager"])
    queue = jobs.get_jobs(shop).huey
    queue.flush()
    first = client.post("/admin/o/home/reconciliation/runs")
    assert first.status_code == 303
    second = client.post("/admin/o/home/reconciliation/runs")
    assert second.status_code == 409 and "has not finished yet" in second.get_data(as_text=True)
    [task] = queue.pending()
    assert task.name == "reconcile_run" and task.args[0] == "manager@example.com"
    assert len(_audits("reconcile_run.requested")) == 1
    # While asked for, the runs' part polls and says so; the button is gone.
    page = client.get("/admin/o/home/reconciliation").get_data(as_text=True)
    assert "A run is asked for or working" in page and 'hx-trigger="every 2s"' in page and "Start a run" not in page
    assert client.get("/admin/o/home/reconciliation", headers={"HX-Request": "true"}).status_code == 200

    # Another run works now (the periodic job, say): the job does nothing and asks again later.
    other = leases.new_holder()
    assert leases.take(reconciliation.RUNNING_LEASE, 600, other)
    runs_before = db.session.execute(select(ReconcileRun.id)).all()
    jobs.get_jobs(shop)._reconcile_run(*task.args)  # the job's body, as a worker runs it
    db.session.rollback()
    assert db.session.execute(select(ReconcileRun.id)).all() == runs_before
    _first, later = queue.pending()  # asked again, in a while (Huey keeps it queued with its eta)
    assert later.name == "reconcile_run" and later.args == (*task.args, 1) and later.eta is not None
    leases.finish(reconciliation.RUNNING_LEASE, other)

    jobs.get_jobs(shop)._reconcile_run(*task.args)
    db.session.rollback()
    [run] = db.session.execute(select(ReconcileRun).where(ReconcileRun.started_by == "manager@example.com")).scalars()
    assert run.finished_at is not None
    assert reconciliation.run_requested_until() is None  # the request is given back
    page = client.get("/admin/o/home/reconciliation").get_data(as_text=True)
    assert "manager@example.com" in page and "Start a run now" in page and "every 2s" not in page
    assert client.get("/admin/o/home/reconciliation", headers={"HX-Request": "true"}).status_code == 286
    assert client.post("/admin/o/home/reconciliation/runs").status_code == 303  # free to ask again
    queue.flush()


def test_the_command_does_not_run_while_another_run_works(app):
    from storefront import leases
    from storefront import reconcile as reconciliation

    holder = leases.new_holder()
    assert leases.take(reconciliation.RUNNING_LEASE, 600, holder)
    result = app.test_cli_runner().invoke(args=["reconcile", "--hours", "1"])
    assert result.exit_code == 1 and "Another reconciliation run is working now" in result.output
    db.session.rollback()
    assert db.session.execute(select(ReconcileRun.id)).all() == []
    leases.finish(reconciliation.RUNNING_LEASE, holder)


def test_a_refund_fulfilment_decided_and_the_inboxs_refund_are_one_refund_at_stripe(shop, sandbox):
    """Fulfilment decided to refund (no stock) and asked Stripe, but its answer was lost:
    the attempt is refunding. The inbox's refund asks with fulfilment's key and words, so
    Stripe answers with that same refund instead of making a second one."""
    from storefront import attempts

    event, session_id, item_id = _paid_without_order_item(shop, sandbox)
    session = gw.get_gateway().retrieve_checkout_session(session_id)
    attempt_id = attempt_of(session_id).id  # outside the transaction: attempt_of rolls back
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt_id)
        attempts.move(attempt, AttemptStatus.REFUNDING, utcnow())
        attempt.refund_reason = fulfilment.REFUND_REASON_SOLD_OUT
    lost = gw.get_gateway().create_refund(  # fulfilment's call, whose answer never came back
        session.payment_intent,
        reason="requested_by_customer",
        metadata=fulfilment.refund_metadata(session_id, fulfilment.REFUND_REASON_SOLD_OUT),
        idempotency_key=fulfilment.refund_key(session_id),
    )
    _world, client = _manager_of_the_event(shop, event)
    assert client.post(f"/admin/o/home/reconciliation/{item_id}/refund", data={"confirm": "1"}).status_code == 303
    refunds = list(gw.get_gateway().list_refunds(payment_intent=session.payment_intent).auto_paging_iter())
    assert [r.id for r in refunds] == [lost.id]
    attempt = attempt_of(session_id)
    assert (attempt.status, attempt.stripe_refund_id) == (AttemptStatus.REFUNDED.value, lost.id)
    assert db.session.get(ReconcileItem, item_id).status == "refunded"
