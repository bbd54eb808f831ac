"""Cancelling an event with paid orders (storefront.cancellations) against the sandbox over
HTTP: a run stopped halfway (an exception after some orders, and a crash between recording
a refund and asking Stripe) and started again refunds each order exactly once, counted at
Stripe; a refund that fails later ends visible on the progress page and is retried; the
admin routes: confirm step, double click, progress polling, retry, permission."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storefront import cancellations, refunds
from storefront import events as event_admin
from storefront.audit import Actor
from storefront.extensions import db
from storefront.models import CancellationOrder, EventCancellation, MailKind, MailOutbox, Order, Refund
from storefront.payments import gateway as gw
from storefront.staff_models import AuditEntry, Role

from .admin_support import add_member, make_user, sign_in_as
from .admin_support import outbox as admin_outbox
from .checkout_support import (  # noqa: F401 (shop, sandbox: fixtures)
    CARD_OK,
    buy_until_stripe,
    sandbox,
    shop,
    wait_for_order,
)
from .factories import make_event
from .sandbox_support import wait_until

CARD_REFUND_FAILS = "4000000000005126"
CARD_REFUND_PENDING = "4000000000007726"
ACTOR = Actor(user_id=None, name="manager@example.com", client_address="198.18.0.9")


class Crash(Exception):
    pass


def orders_of_one_event(shop, sandbox, cards: list[str]) -> tuple[object, list[Order]]:
    event = make_event()
    made = []
    for card in cards:
        session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 1})
        assert sandbox.pay(session_id, card=card)["outcome"] == "succeeded"
        made.append(wait_for_order(session_id))
    return event, made


def at_stripe(order: Order) -> list:
    return list(gw.get_gateway().list_refunds(payment_intent=order.stripe_payment_intent_id).data)


def statuses(orders: list[Order]) -> list[str]:
    db.session.rollback()
    return [db.session.get(Order, o.id).status for o in orders]


def test_a_run_stopped_halfway_and_started_again_refunds_each_order_exactly_once(shop, sandbox, monkeypatch):
    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK] * 5)
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    assert cancellations.progress(run_id).waiting == 5

    # 1. The job dies after its second order (as a worker killed there would).
    taken = []

    def crash_after_two(order_id):
        taken.append(order_id)
        if len(taken) == 2:
            raise Crash()

    monkeypatch.setattr(cancellations, "_after_order", crash_after_two)
    with pytest.raises(Crash):
        cancellations.run(run_id)
    assert [len(at_stripe(o)) for o in orders] == [1, 1, 0, 0, 0]
    monkeypatch.undo()

    # 2. The next run dies after recording the third order's refund, before Stripe is asked.
    real_submit = refunds.submit
    asked = []

    def die_before_asking(refund_id):
        asked.append(refund_id)
        raise Crash()

    monkeypatch.setattr(refunds, "submit", die_before_asking)
    with pytest.raises(Crash):
        cancellations.run(run_id)
    monkeypatch.setattr(refunds, "submit", real_submit)
    db.session.rollback()
    assert db.session.get(Refund, asked[0]).status == "requested"
    assert [len(at_stripe(o)) for o in orders] == [1, 1, 0, 0, 0]
    half = cancellations.progress(run_id)
    assert (half.done, half.waiting, half.finished) == (2, 3, False)

    # 3. Started again (the periodic job does this): the rest, and the third asked again with its key.
    done = cancellations.run(run_id)
    assert (done.orders, done.done, done.refunded, done.failed, done.waiting, done.finished) == (5, 5, 5, 0, 0, True)
    assert done.refunded_minor == 5 * orders[0].total_minor
    # 4. Once more, as a re-enqueued job would: nothing new.
    cancellations.run(run_id)
    assert [len(at_stripe(o)) for o in orders] == [1, 1, 1, 1, 1]
    assert statuses(orders) == ["refunded"] * 5
    assert db.session.execute(
        select(CancellationOrder.order_id).order_by(CancellationOrder.order_id)
    ).scalars().all() == [o.id for o in orders]
    mails = db.session.execute(select(MailOutbox.order_id).where(MailOutbox.kind == MailKind.EVENT_CANCELLED.value))
    assert sorted(mails.scalars()) == [o.id for o in orders]
    run = db.session.get(EventCancellation, run_id)
    assert (run.orders_count, run.refunded_count, run.failed_count) == (5, 5, 0) and run.finished_at is not None
    actions = db.session.execute(select(AuditEntry.action).where(AuditEntry.event_id == event.id)).scalars().all()
    assert actions.count("refund.requested") == 5 and "event_cancelled" in actions
    assert "event.cancellation_finished" in actions


def test_two_runners_at_once_refund_each_order_once(shop, sandbox):
    import threading

    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK] * 3)
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    errors = []

    def runner():
        with shop.app_context():
            try:
                cancellations.run(run_id)
            except Exception as error:  # pragma: no cover - shown in the assertion
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [len(at_stripe(o)) for o in orders] == [1, 1, 1]
    assert statuses(orders) == ["refunded"] * 3


def test_a_refund_that_fails_later_shows_on_the_progress_page_and_is_retried(shop, sandbox):
    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK, CARD_REFUND_FAILS, CARD_REFUND_PENDING])
    owner = make_user("owner-cancel@example.com")
    add_member(owner, event.organiser, Role.OWNER)
    client = shop.test_client()
    sign_in_as(client, owner)
    base = f"/admin/o/{event.organiser.slug}/events/{event.slug}"

    confirm = client.get(f"{base}/cancel")
    total = sum(o.total_minor for o in orders) / 100
    assert confirm.status_code == 200
    assert f"This refunds 3 orders, total €{total:.2f}" in confirm.get_data(as_text=True)
    started = client.post(f"{base}/cancel")
    assert started.status_code == 303 and started.headers["Location"].endswith(f"{base}/cancellation")
    again = client.post(f"{base}/cancel")  # a double click
    assert again.status_code == 303 and again.headers["Location"].endswith(f"{base}/cancellation")
    assert db.session.execute(select(EventCancellation).where(EventCancellation.event_id == event.id)).scalars().all()
    run_id = cancellations.of_event(event.id).id
    cancellations.run(run_id)  # what the job does (the queue is not consumed in this test)

    failing = db.session.execute(select(Refund).where(Refund.order_id == orders[1].id)).scalar_one()
    sandbox.control("POST", f"/_sandbox/refunds/{failing.stripe_refund_id}/settle", {})

    def failed_now():
        db.session.rollback()
        return cancellations.progress(run_id).failed == 1

    wait_until(failed_now, what="refund.failed to arrive")
    db.session.rollback()
    now = cancellations.progress(run_id)
    assert (now.refunded, now.pending, now.failed, now.waiting) == (1, 1, 1, 0)

    page = client.get(f"{base}/cancellation")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and orders[1].code in text and "Retry" in text
    assert 'hx-trigger="every 2s"' not in text or not now.finished

    retry_url = f"{base}/cancellation/orders/{orders[1].code}/retry"
    assert client.post(retry_url).status_code == 303
    assert client.post(retry_url).status_code == 409  # a double click: nothing more
    assert len(at_stripe(orders[1])) == 2  # the failed one and its retry
    db.session.rollback()
    assert cancellations.progress(run_id).failed == 0
    assert client.post(f"{base}/cancellation/orders/NOSUCHCODE/retry").status_code == 404
    assert client.post(f"{base}/cancellation/orders/{orders[0].code}/retry").status_code == 409


def test_polling_stops_once_the_run_is_finished(shop, sandbox):
    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK])
    owner = make_user("owner-poll@example.com")
    add_member(owner, event.organiser, Role.OWNER)
    client = shop.test_client()
    sign_in_as(client, owner)
    base = f"/admin/o/{event.organiser.slug}/events/{event.slug}"
    client.post(f"{base}/cancel")
    polling = client.get(f"{base}/cancellation", headers={"HX-Request": "true"})
    assert polling.status_code == 200 and 'hx-trigger="every 2s"' in polling.get_data(as_text=True)
    cancellations.run(cancellations.of_event(event.id).id)
    stopped = client.get(f"{base}/cancellation", headers={"HX-Request": "true"})
    assert stopped.status_code == 286 and "Finished" in stopped.get_data(as_text=True)


def test_each_buyer_gets_the_event_cancelled_mail_once(shop, sandbox, tmp_path):
    from storefront import outbox

    shop.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK])
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    cancellations.run(run_id)
    cancellations.run(run_id)
    ids = db.session.execute(select(MailOutbox.id).where(MailOutbox.kind == MailKind.EVENT_CANCELLED.value)).scalars()
    assert [outbox.send(mail_id) for mail_id in list(ids)] == ["sent"]
    (message,) = [m for m in admin_outbox(shop) if "cancelled" in m["Subject"]]
    body = message.get_body(("plain",)).get_content()
    assert message["To"] == orders[0].buyer_email and message["Subject"] == f"{event.title} is cancelled"
    assert orders[0].code in body and "€25.00" in body


def test_the_job_and_the_periodic_resume_run_an_unfinished_cancellation(shop, sandbox, monkeypatch):
    from storefront import jobs

    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK, CARD_OK])
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    monkeypatch.setattr(cancellations, "_after_order", lambda order_id: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        jobs.get_jobs(shop)._cancel_event(run_id)  # the job's body, as a worker runs it
    monkeypatch.undo()
    assert cancellations.unfinished() == [run_id]
    jobs._resume_cancellations()  # the periodic job's work
    assert cancellations.unfinished() == []
    assert [len(at_stripe(o)) for o in orders] == [1, 1]


def _tickets(order: Order) -> list[str]:
    db.session.rollback()
    return [t.status for t in db.session.get(Order, order.id).tickets]


def test_taking_an_order_voids_its_tickets_and_a_free_order_is_cancelled(shop, sandbox):
    from .factories import make_order

    event, (paid, failing) = orders_of_one_event(shop, sandbox, [CARD_OK, CARD_REFUND_FAILS])
    free = make_order(event, [("Free", "Guest"), ("Plus", "One")])  # took no money through Stripe
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    done = cancellations.run(run_id)
    assert done.orders == 3
    # Void at once, whatever Stripe answers: the refund that will fail leaves no valid ticket.
    assert _tickets(paid) == ["void"] and _tickets(failing) == ["void"] and _tickets(free) == ["void", "void"]
    assert statuses([free]) == ["cancelled"]
    assert free.stripe_payment_intent_id is None and len(at_stripe(paid)) == 1
    mails = db.session.execute(select(MailOutbox.order_id).where(MailOutbox.kind == MailKind.EVENT_CANCELLED.value))
    assert sorted(mails.scalars()) == sorted([paid.id, failing.id, free.id])


def test_the_mail_of_a_partly_refunded_order_names_what_this_refund_gives_back(shop, sandbox, tmp_path):
    from storefront import outbox

    shop.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    event, (order,) = orders_of_one_event(shop, sandbox, [CARD_OK])
    refunds.request(order.id, 1000, "goodwill", ACTOR)  # €10.00 of €25.00 back earlier
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    cancellations.run(cancellations.of_event(event.id).id)
    (mail_id,) = db.session.execute(
        select(MailOutbox.id).where(MailOutbox.kind == MailKind.EVENT_CANCELLED.value)
    ).scalars()
    assert outbox.send(mail_id) == "sent"
    (message,) = [m for m in admin_outbox(shop) if "cancelled" in m["Subject"]]
    body = message.get_body(("plain",)).get_content()
    assert "€15.00" in body and "after an earlier refund" in body and "€25.00" not in body


def test_a_retry_that_dies_before_asking_stripe_leaves_the_run_on_the_new_refund(shop, sandbox, monkeypatch):
    event, (order,) = orders_of_one_event(shop, sandbox, [CARD_REFUND_FAILS])
    event_admin.cancel(event.organiser_id, event.id, ACTOR)
    run_id = cancellations.of_event(event.id).id
    cancellations.run(run_id)
    failing = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    sandbox.control("POST", f"/_sandbox/refunds/{failing.stripe_refund_id}/settle", {})

    def failed_now():
        db.session.rollback()
        return cancellations.progress(run_id).failed == 1

    wait_until(failed_now, what="refund.failed to arrive")

    def die(refund_id):
        raise Crash()

    monkeypatch.setattr(refunds, "submit", die)
    with pytest.raises(Crash):
        cancellations.retry(run_id, order.id, ACTOR)
    monkeypatch.undo()
    db.session.rollback()
    row = db.session.execute(select(CancellationOrder).where(CancellationOrder.order_id == order.id)).scalar_one()
    retried = db.session.get(Refund, row.refund_id)
    assert retried.retry_of_id == failing.id and retried.status == "requested"
    assert cancellations.progress(run_id).failed == 0
    # Asked again later (reconciliation's submit_requested), with the refund's own key: one more at Stripe.
    refunds.submit(retried.id)
    refunds.submit(retried.id)
    assert len(at_stripe(order)) == 2


def test_cancelling_from_the_admin_with_a_real_consumer_refunds_every_order_once(shop, sandbox):
    from .jobs_support import running_jobs

    event, orders = orders_of_one_event(shop, sandbox, [CARD_OK, CARD_OK, CARD_OK])
    owner = make_user("owner-consumer@example.com")
    add_member(owner, event.organiser, Role.OWNER)
    client = shop.test_client()
    sign_in_as(client, owner)
    base = f"/admin/o/{event.organiser.slug}/events/{event.slug}"
    with running_jobs(shop, workers=2):
        assert client.post(f"{base}/cancel").status_code == 303  # enqueues jobs.cancel_event
        assert client.post(f"{base}/cancel").status_code == 303  # a double click enqueues nothing more
        run_id = cancellations.of_event(event.id).id

        def finished():
            db.session.rollback()
            return cancellations.progress(run_id).finished

        wait_until(finished, what="the worker to finish the cancellation run")
    assert [len(at_stripe(o)) for o in orders] == [1, 1, 1]
    assert statuses(orders) == ["refunded"] * 3
