"""The job queue in tests: the real one (Huey on the app's own SQLite file, or on Redis),
consumed by a consumer inside the test's process (as ``flask demo`` runs it) or by
``flask --app wsgi worker`` processes; an SMTP server that can kill a worker; free
orders, which need no Stripe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from storefront import jobs
from storefront.extensions import db
from storefront.models import MailOutbox, Order

from .conftest import buyer_client
from .factories import make_event
from .sandbox_support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running_jobs(app: Flask, *, workers: int = 1, periodic: bool = False) -> Iterator[None]:
    """A consumer of the app's queue in this process while the block runs (no periodic
    jobs unless asked: they would change the database under the test)."""
    consumer = jobs.start_consumer(app, workers=workers, periodic=periodic)
    try:
        yield
    finally:
        jobs.stop_consumer(consumer)


def mail_rows() -> list[MailOutbox]:
    db.session.rollback()
    return list(db.session.execute(select(MailOutbox).order_by(MailOutbox.id)).scalars())


def mail_row_of_order(order_id: int) -> MailOutbox:
    db.session.rollback()
    return db.session.execute(select(MailOutbox).where(MailOutbox.order_id == order_id)).scalar_one()


def free_order(app: Flask, email: str = "free@example.com") -> Order:
    """A buyer checks out a free ticket through the shop: the order and its confirmation's
    outbox row commit, and a job is queued to send it."""
    event = make_event(ticket_types=[{"name": "Free entry", "price_minor": 0, "capacity": 50}])
    client = buyer_client(app)
    response = client.post(f"/events/{event.slug}/cart", data={f"quantity-{event.ticket_types[0].id}": "1"})
    assert response.status_code in (200, 303), response.get_data(as_text=True)[:300]
    response = client.post("/checkout", data={"email": email, "first-1": "Ada", "last-1": "Lovelace"})
    assert response.status_code == 303 and "/orders/" in response.headers["Location"]
    db.session.rollback()
    return db.session.execute(select(Order).order_by(Order.id.desc()).limit(1)).scalar_one()


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


class SMTPSink:
    """A real SMTP server (aiosmtpd) on a loopback port; keeps what it receives.
    ``kill_on_data``: a process to SIGKILL when a message arrives, before answering
    (the server has the message; its sender never hears that it was accepted)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list = []
        self.kill_on_data: subprocess.Popen | None = None
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(parse(envelope.original_content or envelope.content))
        victim, self.kill_on_data = self.kill_on_data, None
        if victim is not None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
        return "250 Message accepted for delivery"

    def __enter__(self) -> SMTPSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def worker_env(app: Flask, tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a worker process needs to share the test app's database and queue."""
    config = app.config
    env = {
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": "test-worker",
        "JOBS_SQLITE_PATH": config["JOBS_SQLITE_PATH"],
        "JOBS_POLL_SECONDS": "0.1",
        "MAIL_OUTBOX": config["MAIL_OUTBOX"],
        "MAIL_FROM": config["MAIL_FROM"],
        # Jobs that would call Stripe do not run in these tests; the app needs a setting.
        "STRIPE_SECRET_KEY": "sk_test_jobs_worker",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": "whsec_jobs_worker",
        "PUBLIC_BASE_URL": config["PUBLIC_BASE_URL"],
        "PYTHONUNBUFFERED": "1",
    }
    if config.get("REDIS_URL"):
        env.update(REDIS_URL=config["REDIS_URL"], REDIS_KEY_PREFIX=config["REDIS_KEY_PREFIX"])
    if config.get("MAIL_SERVER"):
        env.update(MAIL_SERVER=config["MAIL_SERVER"], MAIL_PORT=str(config["MAIL_PORT"]))
    env.update(extra)
    return env


class WorkerProcess:
    """``flask --app wsgi worker`` as its own process, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "MAIL_", "JOBS_", "STRIPE_"))}
        clean_env.pop("STOREFRONT_DEMO", None)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--no-periodic", *args],
                cwd=ROOT,
                env={**clean_env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self) -> None:
        def started():
            if self.proc.poll() is not None:
                pytest.fail(f"the worker exited with {self.proc.returncode}: {self.text()[-3000:]}")
            return "Job worker started" in self.text()

        wait_until(started, timeout=30, what="the worker process to start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the running jobs finish
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker
                self.proc.kill()
                self.proc.wait()
