"""The job queue and the mail outbox under failure, with real workers: ``flask --app wsgi
worker`` processes on the app's queue (Huey on SQLite here; on Redis in
test_jobs_redis.py), SQLite and PostgreSQL.

* A worker SIGKILLed after the mail server took the message and before the row was
  marked sent: the row is taken again once its claim runs out, so the buyer gets a
  second copy, the only case with two, and both copies carry the row's Message-ID.
  Delivered into the outbox folder, the second delivery replaces the first: one file.
* The order and its confirmation's row commit together: with the queue unreachable the
  order stands, its row waits, and the periodic mail job sends it.
* A periodic job runs once per period however many workers enqueue it, and never while
  another worker holds its lease (two worker processes, and a lease held by the test).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storefront import jobs, leases, outbox
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import JobLease, MailOutbox, utcnow

from .conftest import make_app
from .jobs_support import (
    SMTPSink,
    WorkerProcess,
    free_order,
    mail_row_of_order,
    running_jobs,
    worker_env,
)
from .sandbox_support import wait_until


def test_a_worker_killed_after_the_server_took_the_mail_sends_it_at_most_twice_with_one_message_id(app, tmp_path):
    with SMTPSink() as sink:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port)
        env = worker_env(app, tmp_path, MAIL_CLAIM_SECONDS="1")
        first = WorkerProcess(env, tmp_path / "worker-1.log")
        second = None
        try:
            first.wait_started()
            # The server takes the message, then kills its sender before answering "250".
            sink.kill_on_data = first.proc
            order = free_order(app)
            wait_until(lambda: first.proc.poll() is not None, timeout=20, what="the worker to be killed")
            [copy] = sink.messages
            row = mail_row_of_order(order.id)
            assert row.status == "sending" and row.attempts == 1 and row.sent_at is None

            # Another worker; once the dead one's claim ran out, the periodic mail job
            # (asked for now rather than at the next minute) takes the row again.
            second = WorkerProcess(env, tmp_path / "worker-2.log")
            second.wait_started()
            wait_until(lambda: utcnow() > row.claimed_until, timeout=5, what="the claim to run out")
            jobs.get_jobs(app).send_due_mail()
            wait_until(lambda: mail_row_of_order(order.id).status == "sent", timeout=20, what="the second sender")
        finally:
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
        assert len(sink.messages) == 2, "at most twice: one copy more for the sender that died"
        again = sink.messages[1]
    row = mail_row_of_order(order.id)
    assert row.attempts == 2 and row.sent_at is not None
    assert copy["Message-ID"] == again["Message-ID"] == row.message_id
    assert copy["Subject"] == again["Subject"] and order.code in copy["Subject"]


def test_into_the_folder_a_second_delivery_of_one_mail_replaces_the_first(app, tmp_path):
    """What a sender that died after writing the file leaves: the row still ``sending``,
    its claim run out. Taken again, the mail is written under the same name: one file."""
    app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    order = free_order(app)
    row = mail_row_of_order(order.id)
    assert outbox.send(row.id) == "sent"
    [written] = (tmp_path / "outbox").glob("*.eml")
    with write_transaction():
        db.session.execute(
            update(MailOutbox)
            .where(MailOutbox.id == row.id)
            .values(status="sending", claimed_until=utcnow() - timedelta(seconds=1), sent_at=None)
        )
    assert outbox.send_due().confirmations == 1
    assert list((tmp_path / "outbox").glob("*.eml")) == [written]
    assert mail_row_of_order(order.id).attempts == 2


@pytest.mark.app_config(REDIS_URL="redis://127.0.0.1:9/0")
def test_with_the_queue_unreachable_the_order_stands_and_the_periodic_job_sends_its_mail(app, tmp_path, caplog):
    app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    with caplog.at_level("ERROR", logger="storefront.jobs"):
        order = free_order(app)  # the checkout answers 303: nothing waited on the queue
    assert any("could not be queued" in m for m in caplog.messages)
    row = mail_row_of_order(order.id)
    assert row.status == "pending" and row.attempts == 0
    jobs.get_jobs(app).send_due_mail.call_local()  # what the worker runs every minute
    assert mail_row_of_order(order.id).status == "sent"
    [mail] = (tmp_path / "outbox").glob("*.eml")
    assert mail.name.endswith(f"-{order.code}.eml")


def _job_lines(workers, name: str) -> tuple[int, int]:
    text = "".join(worker.text() for worker in workers)
    return text.count(f"job {name}: ran\n"), text.count(f"job {name}: ran elsewhere")


def test_a_periodic_job_runs_once_per_period_across_two_worker_processes(app, tmp_path):
    """Every worker's scheduler enqueues each periodic job at the minute; here twelve
    copies at once, taken by two worker processes of two threads each: one runs, the
    others find its lease and skip."""
    env = worker_env(app, tmp_path)
    workers = [WorkerProcess(env, tmp_path / f"worker-{n}.log", "--workers", "2") for n in range(2)]
    try:
        for worker in workers:
            worker.wait_started()
        for _ in range(12):
            jobs.get_jobs(app).release_lapsed_holds()
        wait_until(lambda: sum(_job_lines(workers, "release_lapsed_holds")) == 12, timeout=30, what="every copy")
    finally:
        for worker in workers:
            worker.stop()
    assert _job_lines(workers, "release_lapsed_holds") == (1, 11)
    lease = db.session.get(JobLease, "release_lapsed_holds")
    # Kept for the rest of its minute, so the period's other copies skip too.
    assert lease.expires_at > utcnow() + timedelta(seconds=30)


def test_a_periodic_job_skips_while_another_worker_holds_its_lease(app, caplog):
    holder = leases.new_holder()
    assert leases.take("send_due_mail", 60, holder)
    assert not leases.take("send_due_mail", 60, leases.new_holder())
    order = free_order(app)
    with caplog.at_level("INFO", logger="storefront.jobs"):
        jobs.get_jobs(app).send_due_mail.call_local()
    assert any("send_due_mail: ran elsewhere" in m for m in caplog.messages)
    assert mail_row_of_order(order.id).status == "pending"
    # The holder died: its lease runs out, and the next run takes it.
    with write_transaction():
        db.session.execute(update(JobLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    jobs.get_jobs(app).send_due_mail.call_local()
    assert mail_row_of_order(order.id).status == "sent"
    db.session.rollback()
    assert db.session.execute(select(JobLease.holder)).scalar_one() != holder


def test_the_in_process_consumer_sends_a_free_order_confirmation(app, tmp_path):
    """As ``flask demo`` runs it: a consumer in the web process."""
    app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    with running_jobs(app):
        order = free_order(app)
        wait_until(lambda: mail_row_of_order(order.id).status == "sent", what="the consumer to send it")
    [mail] = (tmp_path / "outbox").glob("*.eml")
    assert mail.name.endswith(f"-{order.code}.eml")


def test_a_reconcile_period_that_does_not_divide_the_hour_is_refused_at_start(tmp_path):
    from storefront.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="JOBS_RECONCILE_MINUTES"):
        make_app(f"sqlite:///{tmp_path / 'unused.db'}", JOBS_RECONCILE_MINUTES=7)


def test_a_confirmation_whose_order_was_refunded_before_its_turn_is_skipped(app, tmp_path):
    from storefront.models import Order

    app.config["MAIL_OUTBOX"] = str(tmp_path / "outbox")
    order = free_order(app)
    with write_transaction():
        db.session.execute(update(Order).where(Order.id == order.id).values(status="refunded"))
    assert outbox.send(mail_row_of_order(order.id).id) == "skipped"
    row = mail_row_of_order(order.id)
    assert row.status == "skipped" and row.sent_at is None and "no longer paid" in row.last_error
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())
    assert outbox.send_due(also_waiting=True) == outbox.Sent(confirmations=0, notices=0, failures=0)
