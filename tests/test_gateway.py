"""The payment gateway (the one module that imports ``stripe``) and how the app picks
where Stripe calls go: a sandbox process at STRIPE_API_BASE, the built-in sandbox
mounted under /_sandbox/stripe, or the real Stripe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from storefront import config as settings
from storefront.payments import gateway as gw
from storefront.payments.sandbox import LiveKeyError

from .conftest import make_app
from .sandbox_support import (  # noqa: F401 (sandbox, no_faults_left: fixtures)
    FAKE_LIVE_KEY,
    HOOK_PATH,
    ROOT,
    TEST_KEY,
    WEBHOOK_SECRET,
    SandboxProcess,
    assert_stripe_shape,
    free_port,
    no_faults_left,
    sandbox,
    session_params,
    wait_until,
)


@pytest.fixture
def remote_app(database_urls, sandbox):
    """The storefront pointed at the sandbox process, as tests and benchmarks run it."""
    app = make_app(
        database_urls["sqlite"],
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_API_BASE=sandbox.base,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    with app.app_context():
        yield app


@pytest.fixture
def local_app(database_urls, tmp_path):
    """The storefront in demo mode with no Stripe settings: the built-in sandbox, mounted."""
    app = make_app(
        database_urls["sqlite"],
        DEMO_MODE=True,
        STRIPE_SECRET_KEY=None,
        STRIPE_API_BASE=None,
        STRIPE_WEBHOOK_SECRET="whsec_local_test",
        STRIPE_SANDBOX_KEY="sk_test_local_generated",
        STRIPE_SANDBOX_DB=str(tmp_path / "in-process-sandbox.db"),
        PUBLIC_BASE_URL="http://shop.example:8080",
    )
    yield app
    app.extensions["stripe_sandbox"].stop()


# --- against the sandbox process ------------------------------------------------------------


def test_gateway_round_trip_through_the_sandbox_process(remote_app, sandbox):
    gateway = gw.get_gateway()
    assert "stripe_sandbox" not in remote_app.extensions  # nothing mounted: the process serves
    session = gateway.create_checkout_session(session_params(), idempotency_key="gw-cart-1")
    assert (
        gateway.create_checkout_session(session_params(expires_at=session.expires_at), idempotency_key="gw-cart-1").id
        == session.id
    )
    with pytest.raises(gw.IdempotencyError):
        gateway.create_checkout_session(session_params(client_reference_id="other"), idempotency_key="gw-cart-1")
    assert session.url.startswith(sandbox.base + "/pay/")
    assert sandbox.pay(session.id, card="4242424242424242")["outcome"] == "succeeded"

    paid = gateway.retrieve_checkout_session(session.id, expand=["payment_intent"])
    assert (paid.payment_status, paid.payment_intent.status) == ("paid", "succeeded")
    assert_stripe_shape(paid, "checkout.session")
    assert session.id in [s.id for s in gateway.list_checkout_sessions(payment_intent=paid.payment_intent.id).data]
    pi = gateway.retrieve_payment_intent(paid.payment_intent.id, expand=["latest_charge"])
    assert pi.latest_charge.amount == 9800

    refund = gateway.create_refund(
        pi.id, amount=1900, reason="requested_by_customer", metadata={"order": "X1"}, idempotency_key="gw-refund-1"
    )
    assert (refund.amount, refund.metadata.to_dict()) == (1900, {"order": "X1"})
    assert (
        gateway.create_refund(
            pi.id, amount=1900, reason="requested_by_customer", metadata={"order": "X1"}, idempotency_key="gw-refund-1"
        ).id
        == refund.id
    )
    assert [r.id for r in gateway.list_refunds(payment_intent=pi.id).data] == [refund.id]
    with pytest.raises(gw.InvalidRequestError):
        gateway.create_refund(pi.id, amount=10_000)
    assert gateway.list_events(type="refund.created", limit=1).data[0].data.object.id == refund.id

    other = gateway.create_checkout_session(session_params())
    assert gateway.expire_checkout_session(other.id).status == "expired"


def test_gateway_retries_over_a_500_and_a_lost_answer(remote_app, sandbox, no_faults_left):
    """The gateway turns on the library's retries (StripeClient has none by default), and
    a retry reuses the idempotency key: no double session after a lost answer."""
    gateway = gw.get_gateway()
    sandbox.control(
        "POST", "/_sandbox/faults", {"kind": "api_error", "method": "POST", "path": "/v1/checkout/sessions"}
    )
    assert gateway.create_checkout_session(session_params(), idempotency_key="gw-retry-500").status == "open"
    sandbox.control(
        "POST",
        "/_sandbox/faults",
        {"kind": "connection_error", "when": "after", "method": "POST", "path": "/v1/checkout/sessions"},
    )
    session = gateway.create_checkout_session(
        session_params(client_reference_id="gw-lost"), idempotency_key="gw-lost-answer"
    )
    assert session.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [
        s.id for s in gateway.list_checkout_sessions(limit=100).auto_paging_iter() if s.client_reference_id == "gw-lost"
    ] == [session.id]
    assert all(f["remaining"] == 0 for f in sandbox.control("GET", "/_sandbox/faults")["faults"])


def test_gateway_verifies_the_sandbox_signature_and_rejects_tampering(remote_app, sandbox):
    receiver = sandbox.receiver  # where the sandbox process was told to deliver
    gateway = gw.get_gateway()
    session = gateway.create_checkout_session(session_params())
    sandbox.pay(session.id, card="4242424242424242")
    wait_until(lambda: receiver.events(HOOK_PATH, {session.id}), what="checkout.session.completed")
    [raw] = [r for r in receiver.received[HOOK_PATH] if session.id.encode() in r["body"]]
    event = gateway.construct_event(raw["body"], raw["signature"])
    assert (event.type, event.data.object.id, event.data.object.payment_status) == (
        "checkout.session.completed",
        session.id,
        "paid",
    )
    with pytest.raises(gw.SignatureVerificationError):
        gateway.construct_event(raw["body"].replace(b'"paid"', b'"unpaid"'), raw["signature"])
    with pytest.raises(gw.SignatureVerificationError):
        gateway.construct_event(raw["body"], None)


# --- the built-in sandbox, mounted -----------------------------------------------------------------


def test_without_stripe_settings_the_mounted_sandbox_serves_api_and_page(local_app):
    gateway = local_app.extensions["payments_gateway"]
    with local_app.test_request_context("/checkout", base_url="http://shop.example:8080"):
        session = gateway.create_checkout_session(session_params())
    assert session.last_response.request_id.startswith("req_")
    # The hosted page is at the storefront's public address, under the sandbox's prefix.
    assert session.url == f"http://shop.example:8080/_sandbox/stripe/pay/{session.id}"
    assert_stripe_shape(session, "checkout.session")

    client = local_app.test_client()
    page = client.get(f"/_sandbox/stripe/pay/{session.id}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "€98.00" in html and "Early Bird" in html
    assert 'href="/_sandbox/stripe/static/css/sandbox.css"' in html
    with client.get("/_sandbox/stripe/static/css/sandbox.css") as css:
        assert css.status_code == 200
    paid = client.post(
        f"/_sandbox/stripe/pay/{session.id}",
        data={
            "email": "ada@example.com",
            "method": "card",
            "card_number": "4242 4242 4242 4242",
            "card_expiry": "12 / 34",
            "card_cvc": "123",
            "name": "Ada",
        },
    )
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://shop.test/checkout/success?session_id={session.id}"
    with local_app.app_context():
        assert gateway.retrieve_checkout_session(session.id).payment_status == "paid"  # outside a request too
    # Only the generated key is accepted by the mounted sandbox.
    response = client.get(
        "/_sandbox/stripe/v1/checkout/sessions", headers={"Authorization": "Bearer sk_test_someone_else"}
    )
    assert response.status_code == 401
    # The storefront's own pages are untouched by the mount.
    assert client.get("/").status_code == 200


def test_the_sandbox_key_and_secret_are_generated_once_and_only_in_demo_mode(tmp_path, monkeypatch):
    for name in (
        "STRIPE_SECRET_KEY",
        "STRIPE_API_BASE",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_SANDBOX_DB",
        "STOREFRONT_DEMO",
    ):
        monkeypatch.delenv(name, raising=False)
    plain = settings.stripe_settings(str(tmp_path))
    assert plain["DEMO_MODE"] is False
    assert (plain["STRIPE_SECRET_KEY"], plain["STRIPE_API_BASE"], plain["STRIPE_WEBHOOK_SECRET"]) == (None, None, None)
    assert plain["STRIPE_SANDBOX_DB"] == str(tmp_path / "stripe-sandbox.db")
    assert list(tmp_path.iterdir()) == []  # reading the settings generates nothing

    monkeypatch.setenv("STOREFRONT_DEMO", "1")
    assert settings.stripe_settings(str(tmp_path))["DEMO_MODE"] is True
    key = settings.sandbox_credential(str(tmp_path), "STRIPE_SANDBOX_KEY")
    secret = settings.sandbox_credential(str(tmp_path), "STRIPE_WEBHOOK_SECRET")
    assert re.fullmatch(r"sk_test_[0-9a-f]{48}", key)
    assert re.fullmatch(r"whsec_[0-9a-f]{48}", secret)
    # Kept under instance/: every worker, and the next start, gets the same.
    assert settings.sandbox_credential(str(tmp_path), "STRIPE_SANDBOX_KEY") == key
    assert settings.sandbox_credential(str(tmp_path), "STRIPE_WEBHOOK_SECRET") == secret

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_real_account")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_dashboard")
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:12111/")
    real = settings.stripe_settings(str(tmp_path))
    assert (real["STRIPE_SECRET_KEY"], real["STRIPE_WEBHOOK_SECRET"]) == (
        "sk_test_real_account",
        "whsec_from_dashboard",
    )
    assert real["STRIPE_API_BASE"] == "http://127.0.0.1:12111"


def test_a_live_key_goes_only_to_stripe(database_urls):
    live = {"STRIPE_SECRET_KEY": FAKE_LIVE_KEY, "STRIPE_WEBHOOK_SECRET": "whsec_live_endpoint", "DEMO_MODE": False}
    with pytest.raises(LiveKeyError):
        make_app(database_urls["sqlite"], **live, STRIPE_API_BASE="http://127.0.0.1:12111")
    app = make_app(database_urls["sqlite"], **live, STRIPE_API_BASE=None)
    assert "stripe_sandbox" not in app.extensions  # the real Stripe; nothing is called here
    assert app.extensions["payments_gateway"].live
    # Demo mode takes no real payment: a live key there is refused.
    with pytest.raises(LiveKeyError, match="STOREFRONT_DEMO"):
        make_app(database_urls["sqlite"], **{**live, "DEMO_MODE": True}, STRIPE_API_BASE=None)


def test_only_the_gateway_imports_stripe():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "storefront").rglob("*.py")
        if path.name != "gateway.py" and re.search(r"^\s*(import stripe|from stripe\b)", path.read_text(), re.M)
    ]
    assert offenders == []


# --- entry points ---------------------------------------------------------------------------------------


def test_the_flask_command_serves_the_sandbox(tmp_path):
    port = free_port()
    env = {**os.environ, "STRIPE_SECRET_KEY": "", "STOREFRONT_DEMO": "1"}  # a development tool: demo mode
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "stripe-sandbox",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "cli.db"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/_sandbox/health", headers={"Authorization": f"Bearer {TEST_KEY}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=20, what="flask stripe-sandbox to answer")
        assert (tmp_path / "cli.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode == 0, output
    assert f"Stripe sandbox on http://127.0.0.1:{port}" in output
