"""The job queue (Huey): work that leaves the request, and the periodic jobs that replace cron.

Where the queue lives: with ``REDIS_URL``, in Redis (every key under
``<REDIS_KEY_PREFIX>:jobs:``), shared by every web process and worker on every host;
without it, in a SQLite file (``JOBS_SQLITE_PATH``, default ``instance/jobs.db``),
shared by the processes of one machine. Who runs the jobs: ``flask --app wsgi worker``
(a consumer, its own process; as many as wanted, on as many hosts), or, for the demo, a
consumer started inside ``flask demo`` (``start_consumer``).

The jobs:

* ``send_mail(mail_id)``: one row of the mail outbox (``storefront.outbox``), asked for
  by whoever recorded it, once that transaction committed (``send_mail_soon``). A failed
  try is asked for again when the row's backoff ends.
* ``cancel_event(cancellation_id)``: refund a cancelled event's paid orders
  (``storefront.cancellations``), asked for by the cancelling view after its commit.
* ``reconcile_run(started_by, holder)``: a reconciliation run a manager asked for from the
  inbox (``storefront.reconcile.request_run``). It and the periodic ``reconcile`` both run
  under the ``reconcile-running`` lease, so two runs never overlap.
* periodic, each under a lease (``storefront.leases``) so that several workers never run
  one at once, kept for its period so that of the copies every worker's scheduler
  enqueues, one runs: ``release_lapsed_holds`` and ``expire_lapsed_checkouts`` every
  minute, ``send_due_mail`` every minute (rows whose job was lost or whose retry is
  due), ``resume_cancellations`` every minute (event cancellation runs left
  unfinished), ``reconcile`` every ``JOBS_RECONCILE_MINUTES`` (default 5),
  ``rollup_reports`` every 5 minutes (the dashboard's rollup over the last
  ``REPORT_ROLLUP_LOOKBACK_DAYS``, ``storefront.report_rollup``).

A job that fails is logged and not retried by Huey: each is idempotent and finds its
work again from the database (the outbox's ``due_at``, the carts' ``expires_at``,
Stripe's sessions), so the next run or the next period does what this one could not.
The commands (``flask sweep-holds``, ``reconcile``, ``send-confirmations``) run the same
domain functions by hand.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app
from huey import Huey, SqliteHuey, crontab
from huey.consumer import Consumer
from huey.storage import RedisStorage

from . import leases
from .config import ConfigurationError

log = logging.getLogger(__name__)

EXTENSION = "jobs"


class InProcessConsumer(Consumer):
    """A consumer that runs beside a web server in one process (``flask demo``, tests):
    the signals stay the server's (Ctrl-C stops the demo), so it sets no handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class PrefixedRedisStorage(RedisStorage):
    """Huey's Redis storage with every key under ``<REDIS_KEY_PREFIX>:jobs:``, like every
    other key the shop writes in a Redis it may share."""

    def __init__(self, *args, key_prefix: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for attr, value in list(vars(self).items()):
            if isinstance(value, str) and value.startswith("huey.") and attr.endswith(("_key", "_prefix")):
                setattr(self, attr, f"{key_prefix}:jobs:{value.removeprefix('huey.')}")


def _huey(config) -> Huey:
    # No results are kept: a job's outcome is in the database (the outbox, the orders).
    if config.get("REDIS_URL"):
        return Huey(
            "storefront",
            results=False,
            utc=True,
            storage_class=PrefixedRedisStorage,
            url=config["REDIS_URL"],
            key_prefix=config["REDIS_KEY_PREFIX"],
        )
    path = Path(config["JOBS_SQLITE_PATH"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("storefront", results=False, utc=True, filename=str(path))


class Jobs:
    """The app's queue and its jobs (``app.extensions["jobs"]``)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.huey = _huey(app.config)
        # Where the queue is, for the worker's first words (never the Redis URL: it may hold a password).
        self.where = "in Redis" if app.config.get("REDIS_URL") else f"in {app.config['JOBS_SQLITE_PATH']}"
        huey = self.huey
        self.send_mail = huey.task(name="send_mail")(self._send_mail)
        self.cancel_event = huey.task(name="cancel_event")(self._cancel_event)
        self.reconcile_run = huey.task(name="reconcile_run")(self._reconcile_run)
        every_minute = crontab(minute="*")
        reconcile_every = crontab(minute=f"*/{app.config['JOBS_RECONCILE_MINUTES']}")
        self.release_lapsed_holds = huey.periodic_task(every_minute, name="release_lapsed_holds")(
            self._periodic("release_lapsed_holds", 60, _release_lapsed_holds)
        )
        self.expire_lapsed_checkouts = huey.periodic_task(every_minute, name="expire_lapsed_checkouts")(
            self._periodic("expire_lapsed_checkouts", 60, _expire_lapsed_checkouts)
        )
        self.send_due_mail = huey.periodic_task(every_minute, name="send_due_mail")(
            self._periodic("send_due_mail", 60, _send_due_mail)
        )
        self.resume_cancellations = huey.periodic_task(every_minute, name="resume_cancellations")(
            self._periodic("resume_cancellations", 60, _resume_cancellations)
        )
        self.reconcile = huey.periodic_task(reconcile_every, name="reconcile")(
            self._periodic("reconcile", 60 * app.config["JOBS_RECONCILE_MINUTES"], _reconcile)
        )
        self.rollup_reports = huey.periodic_task(crontab(minute="*/5"), name="rollup_reports")(
            self._periodic("rollup_reports", 300, _rollup_reports)
        )

    def _send_mail(self, mail_id: int) -> None:
        from . import outbox

        with self.app.app_context():
            outcome = outbox.send(mail_id)
            if outcome == "retry":
                wait = outbox.seconds_until_due(mail_id)
                if wait is not None:
                    self.send_mail.schedule((mail_id,), delay=wait)

    def _cancel_event(self, cancellation_id: int) -> None:
        from . import cancellations

        with self.app.app_context():
            # One runner per run at a time (a re-enqueued job and the periodic one may meet);
            # even without the lease, the order locks keep every order refunded once.
            with leases.held(f"cancellation-{cancellation_id}", 600) as mine:
                if mine:
                    cancellations.run(cancellation_id)

    def _reconcile_run(self, started_by: str, holder: str, tries: int = 0) -> None:
        """A run a manager asked for (``reconcile.request_run``): under the running lease
        like the periodic one; if a run works now, asked again in a while (within the
        request's lease); the request is given back when its run ends."""
        from . import reconcile

        with self.app.app_context():
            try:
                report = reconcile.run_exclusive(
                    since=timedelta(hours=self.app.config["JOBS_RECONCILE_HOURS"]), started_by=started_by
                )
            except Exception:
                reconcile.finish_request(holder)
                raise
            if report is None and tries < RECONCILE_RUN_TRIES:
                log.info("job reconcile_run: another run works now; asking again in %ss", RECONCILE_RUN_WAIT)
                self.reconcile_run.schedule((started_by, holder, tries + 1), delay=RECONCILE_RUN_WAIT)
                return
            reconcile.finish_request(holder)

    def _periodic(self, name: str, period_seconds: int, work):
        """``work()`` under the job's lease, held for ten periods at most (a run that
        takes longer could meet the next), and kept for the rest of its period."""
        app = self.app

        def run() -> None:
            with app.app_context():
                with leases.held(name, 10 * period_seconds, keep_for=period_seconds - 5) as mine:
                    if not mine:
                        log.info("job %s: ran elsewhere in this period, or runs now; skipped", name)
                        return
                    work()
                    log.info("job %s: ran", name)

        run.__name__ = name
        return run

    def consumer(self, *, workers: int, periodic: bool, in_process: bool = False) -> Consumer:
        """A Huey consumer of this queue: ``workers`` threads, and with ``periodic`` the
        scheduler that enqueues the periodic jobs. SQLite is polled (a new job waits at
        most ``JOBS_POLL_SECONDS``); Redis is waited on. SIGTERM stops it gracefully (the
        running jobs finish; what systemd and container runtimes send), SIGINT at once."""
        return (InProcessConsumer if in_process else Consumer)(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=periodic,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=self.app.config["JOBS_POLL_SECONDS"],
            check_worker_health=True,
            graceful_signal="TERM",
        )


def init_app(app: Flask) -> None:
    """Checks the settings; the queue itself is opened on first use (``get_jobs``), so
    an app that never queues a job (a command, most tests) never touches its storage."""
    minutes = app.config["JOBS_RECONCILE_MINUTES"]
    if not 1 <= minutes <= 60 or 60 % minutes:
        raise ConfigurationError(f"JOBS_RECONCILE_MINUTES must divide 60 (1, 2, 3, 4, 5, 6, 10, …), got {minutes}")


_opening = threading.Lock()


def get_jobs(app: Flask | None = None) -> Jobs:
    """The app's queue and jobs, opened on first use."""
    app = app or current_app._get_current_object()
    jobs = app.extensions.get(EXTENSION)
    if jobs is None:
        with _opening:
            jobs = app.extensions.get(EXTENSION)
            if jobs is None:
                jobs = app.extensions[EXTENSION] = Jobs(app)
    return jobs


def send_mail_soon(mail_id: int) -> None:
    """Ask a worker to send the outbox row ``mail_id`` now. Call it only after the
    transaction that recorded the row committed. Never raises: if the queue cannot be
    reached, the periodic ``send_due_mail`` sends the row within a minute or so."""
    try:
        get_jobs().send_mail(mail_id)
    except Exception:
        log.exception("mail %s: could not be queued; the periodic mail job sends it", mail_id)


def start_consumer(app: Flask, *, workers: int = 1, periodic: bool = True) -> Consumer:
    """A consumer inside this process (``flask demo``; tests): its threads run the jobs
    while the process serves requests. ``stop()`` it when done (``stop_consumer``)."""
    consumer = get_jobs(app).consumer(workers=workers, periodic=periodic, in_process=True)
    consumer.start()
    return consumer


def stop_consumer(consumer: Consumer) -> None:
    consumer.stop(graceful=True)


# --- the periodic jobs' work (each in the job's app context) -------------------------------------


def _release_lapsed_holds() -> None:
    from .cart import release_lapsed_holds

    total = 0
    while released := release_lapsed_holds():
        total += released
    if total:
        log.info("job release_lapsed_holds: released %s lapsed cart hold(s)", total)


def _expire_lapsed_checkouts() -> None:
    from .checkout import expire_lapsed_checkouts

    released = expire_lapsed_checkouts()
    if released:
        log.info("job expire_lapsed_checkouts: released %s cart(s) whose checkout lapsed", released)


def _send_due_mail() -> None:
    from .outbox import send_due

    sent = send_due()
    if sent.confirmations or sent.notices or sent.failures:
        log.info(
            "job send_due_mail: %s confirmation(s) and %s refund notice(s) sent, %s failed",
            sent.confirmations,
            sent.notices,
            sent.failures,
        )


def _resume_cancellations() -> None:
    """Cancellation runs a crash or a lost job left unfinished: run them again (each is
    idempotent; see ``storefront.cancellations``)."""
    from .cancellations import run, unfinished

    for cancellation_id in unfinished():
        with leases.held(f"cancellation-{cancellation_id}", 600) as mine:
            if mine:
                run(cancellation_id)


def cancel_event_soon(cancellation_id: int) -> None:
    """Ask a worker to run the cancellation now (after its commit). Never raises: the
    periodic ``resume_cancellations`` runs it within a minute otherwise."""
    try:
        get_jobs().cancel_event(cancellation_id)
    except Exception:
        log.exception("cancellation %s: could not be queued; the periodic job runs it", cancellation_id)


RECONCILE_RUN_WAIT = 15  # seconds
RECONCILE_RUN_TRIES = 30  # a manager's run waits this many times for another to end


def reconcile_run_soon(started_by: str, holder: str) -> None:
    """Ask a worker for the run a manager asked for (after ``reconcile.request_run``)."""
    get_jobs().reconcile_run(started_by, holder)


def _reconcile() -> None:
    from .reconcile import run_exclusive

    report = run_exclusive(since=timedelta(hours=current_app.config["JOBS_RECONCILE_HOURS"]), started_by="job")
    if report is None:
        log.info("job reconcile: a manager's run works now; skipped")
        return
    for line in report.fixed:
        log.warning("job reconcile: fixed: %s", line)
    for line in report.mismatches:
        log.error("job reconcile: MISMATCH: %s", line)


def _rollup_reports() -> None:
    from .report_rollup import rebuild_recent

    rebuilt = rebuild_recent(timedelta(days=current_app.config["REPORT_ROLLUP_LOOKBACK_DAYS"]))
    log.info("job rollup_reports: rebuilt from %s, rolled up until %s", rebuilt.since, rebuilt.rolled_up_until)
