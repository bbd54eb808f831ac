"""The order confirmation mail (and the late-payment refund notice), end to end: pay
through the sandbox process, the signed webhook reaches the storefront over HTTP,
fulfilment makes the order and its outbox row, a job of the real queue (a consumer in
this process, as the demo runs it) sends it, and the mail lands in a real outbox folder
or at a real SMTP server (aiosmtpd, run by the test on a loopback port). Exactly one
mail per order, whatever is repeated or raced; the webhook never waits for the mail
server; a failed send is retried later with its error kept. SQLite and PostgreSQL.
(A worker killed while sending: tests/test_jobs.py.)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from storefront import fulfilment, outbox
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, MailOutbox, Order, PaymentAttempt, WebhookEvent, utcnow

from .checkout_support import (  # noqa: F401 (sandbox: fixture)
    CARD_OK,
    add,
    attempt_of,
    buy_until_stripe,
    deliver,
    drop_completed,
    order_of,
    sandbox,
    serving_shop,
    session_id_of,
    shop_app_for,
    stripe_event,
    wait_for_order,
)
from .conftest import clean
from .factories import make_event, ticket_type
from .jobs_support import mail_row_of_order, running_jobs
from .sandbox_support import free_port, wait_until

BASE = "https://tickets.example.org"


@pytest.fixture
def outbox_dir(tmp_path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def shop(database_urls, backend, sandbox, outbox_dir, request):
    """The storefront against the sandbox process (as in checkout_support), its mail
    going to this test's own outbox folder, its jobs run by a consumer in this process
    (not for tests marked ``no_worker``: they start it themselves)."""
    # An https address: the session cookie must then be Secure (the test client sends it back anyway).
    app = shop_app_for(
        database_urls, backend, sandbox, MAIL_OUTBOX=str(outbox_dir), PUBLIC_BASE_URL=BASE, SESSION_COOKIE_SECURE=True
    )
    clean(app)
    try:
        with serving_shop(app, sandbox), app.app_context():
            if request.node.get_closest_marker("no_worker"):
                yield app
            else:
                with running_jobs(app, workers=2):
                    yield app
            db.session.remove()
    finally:
        clean(app)


class SMTPSink:
    """A real SMTP server (aiosmtpd) on a loopback port; keeps what it receives."""

    def __init__(self, port: int) -> None:
        self.messages = []
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, parse(envelope.original_content or envelope.content)))
        return "250 Message accepted for delivery"

    def __enter__(self) -> SMTPSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def mails(outbox: Path) -> list:
    return [parse(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))] if outbox.exists() else []


def parts(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def new_york_event(**kwargs) -> Event:
    """Two ticket types in dollars; starts 2027-01-15 01:30 UTC = Thursday 14 January,
    8:30 PM in New York."""
    event = make_event(
        title="Harbour Jazz",
        timezone="America/New_York",
        currency="USD",
        ticket_types=[
            {"name": "Standard", "price_minor": 2500, "capacity": 10},
            {"name": "Reduced", "price_minor": 1250, "capacity": 10},
        ],
        **kwargs,
    )
    from datetime import datetime

    with write_transaction():
        db.session.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(starts_at=datetime(2027, 1, 15, 1, 30, tzinfo=UTC), venue="Blue Note, 131 W 3rd St")
        )
    db.session.rollback()
    return db.session.get(Event, event.id)


def pay_for_two(shop, sandbox, event, *, dropped: bool = False) -> str:
    client = shop.test_client()
    standard, reduced = (tt.id for tt in event.ticket_types)
    add(client, event, {standard: 1, reduced: 1})
    form = {
        "email": "ada@example.com",
        "first-1": "Zoë",
        "last-1": "O'Brien & Sons",
        "first-2": "Grace",
        "last-2": "Hopper",
    }
    response = client.post("/checkout", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    session_id = session_id_of(response)
    if dropped:
        drop_completed(sandbox)
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    return session_id


def confirmation_sent(order_id: int) -> bool:
    row = mail_row_of_order(order_id)
    return row.status == "sent" and row.sent_at is not None


def test_paying_writes_one_confirmation_with_everything_the_buyer_needs(shop, sandbox, outbox_dir):
    event = new_york_event()
    session_id = pay_for_two(shop, sandbox, event)
    order = wait_for_order(session_id)
    [message] = wait_until(lambda: mails(outbox_dir), what="the confirmation in the outbox")
    # The file, named <timestamp>-<code>.eml, and nothing half-written beside it.
    [path] = list(outbox_dir.iterdir())
    assert path.name.endswith(f"-{order.code}.eml") and path.name[:8].isdigit()

    assert message["To"] == "ada@example.com"
    assert order.code in message["Subject"] and "Harbour Jazz" in message["Subject"]
    assert message["From"] and message["Message-ID"] and message["Date"]
    # Text and HTML as alternatives, with the tickets' PDF and the calendar entry attached.
    assert message.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "multipart/alternative",
        "application/pdf",
        "text/calendar",
    ]
    text, html = parts(message)
    link = f"{BASE}/orders/{order.access_token}"
    for body in (text, html):
        assert order.code in body and "Harbour Jazz" in body and "Blue Note, 131 W 3rd St" in body
        # The event's local time, with the zone named (not the UTC 01:30 of the 15th).
        assert "Thursday, January 14, 2027" in body and "8:30\u202fPM" in body and "Eastern Standard Time" in body
        assert "Grace Hopper" in body and "Standard" in body and "Reduced" in body
        assert "$25.00" in body and "$12.50" in body and "$37.50" in body
        assert link in body
    assert "Zoë O'Brien & Sons" in text
    assert "Zoë O&#39;Brien &amp; Sons" in html and f'href="{link}"' in html
    # The link in the mail opens the order.
    assert shop.test_client().get(link.removeprefix(BASE)).status_code == 200
    wait_until(lambda: confirmation_sent(order.id), what="the outbox row marked sent")
    # Its Message-ID is the outbox row's, the same on any copy of this mail.
    assert message["Message-ID"] == mail_row_of_order(order.id).message_id


def test_a_free_order_is_confirmed_too(shop, outbox_dir):
    event = make_event(ticket_types=[{"name": "Free entry", "price_minor": 0, "capacity": 5}])
    client = shop.test_client()
    add(client, event, {event.ticket_types[0].id: 1})
    response = client.post("/checkout", data={"email": "free@example.com", "first-1": "Ada", "last-1": "L"})
    assert response.status_code == 303 and "/orders/" in response.headers["Location"]
    [message] = wait_until(lambda: mails(outbox_dir), what="the free order's confirmation")
    order = db.session.execute(select(Order)).scalar_one()
    assert message["To"] == "free@example.com" and order.code in message["Subject"]
    wait_until(lambda: confirmation_sent(order.id), what="the outbox row marked sent")


def test_webhook_twice_fulfil_again_and_threads_still_send_one_mail(shop, sandbox, outbox_dir):
    event = new_york_event()
    session_id = pay_for_two(shop, sandbox, event)
    order = wait_for_order(session_id)
    wait_until(lambda: mails(outbox_dir), what="the confirmation")
    completed = stripe_event("checkout.session.completed", session_id)
    client = shop.test_client()
    # The same event delivered twice more (a duplicate), and again under a new id (as
    # if Stripe had made a second event about the session): both reach fulfil's checks.
    assert deliver(client, completed).status_code == 200
    assert deliver(client, completed).status_code == 200
    copy = completed.to_dict()
    copy["id"] = completed.id + "_copy"
    response = deliver(client, copy)
    assert response.status_code == 200 and response.get_json()["outcome"] == "order"
    assert fulfilment.fulfil(session_id, source="test").order_id == order.id
    run_in_threads(shop, 6, lambda: fulfilment.fulfil(session_id, source="thread"))
    assert len(mails(outbox_dir)) == 1


def test_racing_senders_of_an_unsent_confirmation_send_it_once(shop, sandbox, outbox_dir):
    """A confirmation left unsent (SMTP was down; its retry far ahead), then sent by
    several senders at the same moment, fulfilment called again meanwhile: one of them
    takes the row, the others send nothing. Without the guarded claim, every thread
    would send one."""
    shop.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2, MAIL_RETRY_SECONDS=3600)
    session_id = pay_for_two(shop, sandbox, new_york_event())
    order = wait_for_order(session_id)
    row = wait_until(
        lambda: (r := mail_row_of_order(order.id)).attempts == 1 and r.status == "pending" and r,
        what="the job's first try to fail",
    )
    assert mails(outbox_dir) == [] and "Connection" in row.last_error
    shop.config.update(MAIL_SERVER=None)
    results = run_in_threads(
        shop,
        8,
        lambda i: (
            outbox.send(row.id, also_waiting=True) if i % 2 else fulfilment.fulfil(session_id, source=f"thread {i}")
        ),
        pass_index=True,
    )
    assert sum(r == "sent" for r in results) == 1
    assert len(mails(outbox_dir)) == 1
    assert confirmation_sent(order.id)


def completion_processed(session_id: str) -> bool:
    db.session.rollback()
    return any(
        json.loads(row.payload)["data"]["object"]["id"] == session_id
        for row in db.session.execute(
            select(WebhookEvent).where(
                WebhookEvent.type == "checkout.session.completed", WebhookEvent.processed_at.is_not(None)
            )
        ).scalars()
    )


def run_in_threads(app, n: int, work, pass_index: bool = False) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def runner(i: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                results[i] = work(i) if pass_index else work()
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_smtp_server_receives_the_confirmation_once(shop, sandbox, outbox_dir):
    port = free_port()
    with SMTPSink(port) as sink:
        shop.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        session_id = pay_for_two(shop, sandbox, new_york_event())
        order = wait_for_order(session_id)
        wait_until(lambda: sink.messages, what="the SMTP server to receive the confirmation")
        fulfilment.fulfil(session_id, source="test")
        copy = stripe_event("checkout.session.completed", session_id).to_dict()
        copy["id"] += "_again"
        assert deliver(shop.test_client(), copy).status_code == 200
        [(recipients, message)] = sink.messages
    assert recipients == ["ada@example.com"] and message["To"] == "ada@example.com"
    assert order.code in message["Subject"]
    text, html = parts(message)
    assert "Grace Hopper" in text and "$37.50" in html and f"{BASE}/orders/{order.access_token}" in text
    assert mails(outbox_dir) == []  # with MAIL_SERVER, nothing goes to the folder


def test_smtp_down_keeps_the_order_and_send_confirmations_sends_it_later(shop, sandbox, outbox_dir):
    port = free_port()  # nothing listens there yet
    # The retry far ahead: here a person runs the command.
    shop.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=2, MAIL_RETRY_SECONDS=3600)
    session_id = pay_for_two(shop, sandbox, new_york_event(), dropped=True)
    completed = stripe_event("checkout.session.completed", session_id)
    response = deliver(shop.test_client(), completed)
    assert response.status_code == 200 and response.get_json()["outcome"] == "order"
    order = order_of(session_id)
    assert order is not None and len(order.tickets) == 2
    row = wait_until(
        lambda: (r := mail_row_of_order(order.id)).attempts == 1 and r.status == "pending" and r,
        what="the job's try to fail",
    )
    # The error is kept on the row, and the retry waits (MAIL_RETRY_SECONDS).
    assert "ConnectionRefusedError" in row.last_error and row.sent_at is None
    assert row.due_at > utcnow() + timedelta(minutes=50)
    # Another fulfil while the server is still down: the order stands, nothing raised, no second row.
    assert fulfilment.fulfil(session_id, source="test").kind == "order"
    runner = shop.test_cli_runner()
    failed = runner.invoke(args=["send-confirmations"])
    assert failed.exit_code == 1 and "1 failed" in failed.output
    assert mail_row_of_order(order.id).attempts == 2 and not confirmation_sent(order.id)

    with SMTPSink(port) as sink:
        sent = runner.invoke(args=["send-confirmations"])
        assert sent.exit_code == 0, sent.output
        assert "Sent 1 order confirmation(s) and 0 refund notice(s); 0 failed." in sent.output
        again = runner.invoke(args=["send-confirmations"])
        assert "Sent 0 order confirmation(s)" in again.output and again.exit_code == 0
        fulfilment.fulfil(session_id, source="test")
        [(recipients, message)] = sink.messages
    assert recipients == ["ada@example.com"] and order.code in message["Subject"]
    row = mail_row_of_order(order.id)
    assert confirmation_sent(order.id) and row.attempts == 3 and "ConnectionRefusedError" in row.last_error
    assert mails(outbox_dir) == []


def test_a_failed_send_is_retried_by_itself_with_backoff(shop, sandbox, outbox_dir):
    """SMTP down at first: the job's try fails, the row keeps the error and waits
    MAIL_RETRY_SECONDS, then twice that; once the server is up the retry sends it,
    without anyone running a command."""
    port = free_port()
    shop.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=2, MAIL_RETRY_SECONDS=1)
    session_id = pay_for_two(shop, sandbox, new_york_event())
    order = wait_for_order(session_id)
    first_due = wait_until(
        lambda: (r := mail_row_of_order(order.id)).attempts == 1 and r.status == "pending" and r.due_at,
        what="the first try",
    )
    second = wait_until(
        lambda: (r := mail_row_of_order(order.id)).attempts == 2 and r.status == "pending" and r,
        what="the first retry to fail",
    )
    assert "ConnectionRefusedError" in second.last_error and second.status == "pending"
    # Doubling: the second wait (2 s) is twice the first (1 s), counted from a later try.
    assert second.due_at - first_due >= timedelta(seconds=1.9)
    with SMTPSink(port) as sink:
        wait_until(lambda: sink.messages, timeout=20, what="a retry to reach the server")
        wait_until(lambda: confirmation_sent(order.id), what="the row marked sent")
        time.sleep(1.5)  # no further retry comes
        [(recipients, message)] = sink.messages
    row = mail_row_of_order(order.id)
    assert row.attempts >= 3 and row.last_error and message["Message-ID"] == row.message_id


@pytest.mark.no_worker
def test_the_webhook_answers_without_waiting_for_the_mail_server(shop, sandbox, outbox_dir):
    """A mail server that takes the connection and never answers: the webhook that made
    the order answers at once; the mail waits in the outbox for a worker."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nobody ever says hello
    try:
        shop.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=silent.getsockname()[1], MAIL_TIMEOUT=5)
        session_id = pay_for_two(shop, sandbox, new_york_event(), dropped=True)
        completed = stripe_event("checkout.session.completed", session_id)
        started = time.monotonic()
        response = deliver(shop.test_client(), completed)
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and response.get_json()["outcome"] == "order"
        assert elapsed < 2, f"the webhook took {elapsed:.1f} s"
        order = order_of(session_id)
        row = mail_row_of_order(order.id)
        assert row.status == "pending" and row.attempts == 0
    finally:
        silent.close()
    # A worker comes, the server is a real one now: the mail goes out, once.
    port = free_port()
    with SMTPSink(port) as sink:
        shop.config.update(MAIL_PORT=port)
        with running_jobs(shop):
            wait_until(lambda: confirmation_sent(order.id), what="the worker to send the confirmation")
        [(recipients, message)] = sink.messages
    assert recipients == ["ada@example.com"] and order.code in message["Subject"]


def test_a_late_payment_refunded_for_want_of_stock_is_told_once(shop, sandbox, outbox_dir):
    from storefront import cart as carts
    from storefront.models import Cart

    event = make_event(title="Sold Out Gala", ticket_types=[{"name": "Standard", "price_minor": 3000, "capacity": 1}])
    tt_id = event.ticket_types[0].id
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {tt_id: 1})
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "delay", "seconds": 2.5, "event_type": "checkout.session.completed"}
    )
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    # Meanwhile the hold is released (as when it lapsed), and another buyer takes the stock.
    with client.session_transaction() as sess:
        token = sess["cart"]
    cart_id = db.session.execute(select(Cart.id).where(Cart.token == token)).scalar_one()
    with write_transaction():
        assert carts.release_checking_out(cart_id, utcnow())
    add(shop.test_client(), event, {tt_id: 1})

    attempt = wait_until(
        lambda: (a := attempt_of(session_id)) and a.status == "refunded" and a, timeout=15, what="the automatic refund"
    )
    [message] = wait_until(lambda: mails(outbox_dir), what="the refund notice")
    assert [p.name.endswith(f"-refund-attempt{attempt.id}.eml") for p in outbox_dir.iterdir()] == [True]
    assert message["To"] == "ada@example.com" and "refunded" in message["Subject"]
    text, html = parts(message)
    for body in (text, html):
        assert "Sold Out Gala" in body and "€30.00" in body and "refunded" in body
    # Fulfilment asked again (webhook retry, reconcile): no second notice, no order.
    assert fulfilment.fulfil(session_id, source="test").kind == "refunded"
    assert fulfilment.fulfil(session_id, source="test").kind == "refunded"
    assert len(mails(outbox_dir)) == 1 and order_of(session_id) is None
    db.session.rollback()
    notice = db.session.execute(select(MailOutbox).where(MailOutbox.attempt_id == attempt.id)).scalar_one()
    wait_until(lambda: db.session.refresh(notice) or notice.status == "sent", what="the notice marked sent")
    assert notice.kind == "refund_notice" and message["Message-ID"] == notice.message_id
    assert db.session.get(PaymentAttempt, attempt.id).status == "refunded"
    assert ticket_type(tt_id).held == 1


def test_a_bank_debit_is_confirmed_by_mail_when_it_settles(shop, sandbox, outbox_dir):
    from storefront.payments import gateway as gw

    from .checkout_support import IBAN_OK

    event = make_event(ticket_types=[{"name": "Standard", "price_minor": 2000, "capacity": 5}])
    client = shop.test_client()
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    assert sandbox.pay(session_id, iban=IBAN_OK)["outcome"] == "processing"
    wait_until(lambda: attempt_of(session_id).status == "processing", what="the attempt processing")
    page = client.get(f"/checkout/status?session_id={session_id}", headers={"HX-Request": "true"})
    assert "confirmation will also come by email" in page.get_data(as_text=True)
    assert mails(outbox_dir) == []  # nothing is confirmed before the money is there
    pi_id = gw.get_gateway().retrieve_checkout_session(session_id).payment_intent
    sandbox.control("POST", f"/_sandbox/payment_intents/{pi_id}/settle", {})
    order = wait_for_order(session_id)
    [message] = wait_until(lambda: mails(outbox_dir), what="the confirmation after settlement")
    assert order.code in message["Subject"] and "€20.00" in parts(message)[0]
