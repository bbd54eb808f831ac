"""Shared by the sandbox tests: the sandbox as a real process, a webhook receiver,
Stripe's JSON Schema, and small helpers. Test modules import the fixtures they use.

The sandbox runs as ``python -m storefront.payments.sandbox`` on a free loopback port
with its own SQLite file, exactly as a developer or CI would start it; tests talk to it
over HTTP with the real ``stripe`` library and, for test-only controls, JSON with the
sandbox's API key. Its webhook endpoints are given when it starts (``--webhook-url``),
as nothing can add one later: the shared ``sandbox`` delivers to a ``Receiver`` in this
process, at ``HOOK_PATH``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from storefront.payments.sandbox.config import LIVE_KEY_PREFIXES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT.parent / "shared" / "stripe" / "jsonschema-subset.json"
TEST_KEY = "sk_test_sandbox_tests_0123456789"
# Live-looking keys that are no keys at all: what the refusal tests offer.
FAKE_LIVE_KEY = LIVE_KEY_PREFIXES[0] + "not_a_real_key"
FAKE_LIVE_RESTRICTED_KEY = LIVE_KEY_PREFIXES[1] + "not_a_real_key"
WEBHOOK_SECRET = "whsec_sandbox_tests_secret"
# Where the shared sandbox delivers its webhooks, on its receiver.
HOOK_PATH = "/hooks/sandbox"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class SandboxProcess:
    """``python -m storefront.payments.sandbox`` in a subprocess, and how to reach it."""

    def __init__(self, db_path: Path, *extra: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.db_path = db_path
        self.extra = extra
        self.env = env or {}
        self.cwd = cwd
        # The key for the control API: the one --api-key allows, else any test key.
        self.key = extra[extra.index("--api-key") + 1] if "--api-key" in extra else TEST_KEY
        self.receiver: Receiver | None = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = db_path.with_suffix(".log")

    def start(self) -> SandboxProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "storefront.payments.sandbox",
                "--port",
                str(self.port),
                "--db",
                str(self.db_path),
                "--webhook-secret",
                WEBHOOK_SECRET,
                "--retry-base",
                "0.3",
                "--max-attempts",
                "4",
                "--tick",
                "0.2",
                "--delivery-timeout",
                "3",
                "--settle-seconds",
                "-1",
                *self.extra,
            ],
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STRIPE_SECRET_KEY": "", **self.env},
        )
        wait_until(self._healthy, timeout=20, what=f"the sandbox to answer on {self.base} (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the sandbox exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        request = urllib.request.Request(self.base + "/_sandbox/health", headers=self._auth())
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung sandbox
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()

    def client(self, key: str = TEST_KEY, **options) -> stripe.StripeClient:
        return stripe.StripeClient(key, base_addresses={"api": self.base}, **options)

    # --- the control API (JSON) ---

    def control(self, method: str, path: str, body: dict | None = None, expect: int | None = 200) -> Any:
        """A control API call with the sandbox's key; a POST or DELETE carries a JSON object."""
        if body is None and method != "GET":
            body = {}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json", **self._auth()}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
            error.close()
        if expect is not None:
            assert status == expect, (status, text[:500])
        return json.loads(text) if text else None

    def pay(self, session_id: str, **body) -> dict:
        return self.control("POST", f"/_sandbox/checkout/sessions/{session_id}/pay", body)

    def deliveries(self, event_id: str | None = None) -> list[dict]:
        query = f"?event_id={event_id}" if event_id else ""
        return self.control("GET", "/_sandbox/deliveries" + query)["deliveries"]


class Shared:
    """One thing for the whole test session, shared by every module that imports a
    session fixture handing it out (each import registers its own session-scoped copy;
    they all hand out the same thing, and the last one to finish stops it)."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[Any], None]) -> None:
        self._start, self._stop = start, stop
        self.value: Any = None
        self.users = 0

    def __enter__(self) -> Any:
        if self.value is None:
            self.value = self._start()
        self.users += 1
        return self.value

    def __exit__(self, *exc) -> None:
        self.users -= 1
        if self.users == 0:
            self._stop(self.value)
            self.value = None


def _start_shared_sandbox(path: Path) -> SandboxProcess:
    receiver = Receiver()
    # Refunds that settle later do so only when a test says (the control API).
    process = SandboxProcess(path, "--webhook-url", receiver.base + HOOK_PATH, "--refund-settle-seconds", "-1")
    process.receiver = receiver
    try:
        return process.start()
    except BaseException:
        receiver.close()
        raise


def _stop_shared_sandbox(process: SandboxProcess) -> None:
    try:
        process.stop()
    finally:
        process.receiver.close()


_shared: dict[str, Shared] = {}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """One sandbox process for the whole test session; it delivers its webhooks to its
    ``receiver`` at ``HOOK_PATH``."""
    if "sandbox" not in _shared:
        _shared["sandbox"] = Shared(
            lambda: _start_shared_sandbox(tmp_path_factory.mktemp("stripe-sandbox") / "sandbox.db"),
            _stop_shared_sandbox,
        )
    with _shared["sandbox"] as process:
        yield process


@pytest.fixture
def no_faults_left(sandbox):
    """Whatever faults a test arms are cleared after it, even when it fails half-way."""
    yield
    sandbox.control("DELETE", "/_sandbox/faults")


def raw_api(
    base: str,
    method: str,
    path: str,
    *,
    key: str | None = TEST_KEY,
    data: bytes | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, dict]:
    """One API call without the stripe library: (status, JSON body, headers)."""
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read()), dict(error.headers)
        finally:
            error.close()


# --- Stripe's JSON Schema (../shared/stripe/, never copied into the project) ---------------


@functools.lru_cache(maxsize=1)
def _schema_doc() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@functools.cache
def _validator(name: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$defs": _schema_doc()["$defs"], "$ref": f"#/$defs/{name}"})


def require_schema() -> None:
    """Skip (saying why) only where ../shared/stripe is absent, as the issue allows."""
    if not SCHEMA_PATH.parent.is_dir():
        pytest.skip(f"{SCHEMA_PATH.parent} is absent: Stripe's JSON Schema subset lives beside the checkout, not in it")


def assert_stripe_shape(obj: Any, name: str) -> None:
    """``obj`` (a dict, or a StripeObject) validates against Stripe's schema ``name``."""
    require_schema()
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{name} {list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]


# --- a webhook receiver over real HTTP ---------------------------------------------------


class Receiver:
    """A tiny HTTP server that records what arrives per path and answers scripted statuses."""

    def __init__(self) -> None:
        receiver = self
        self.received: dict[str, list[dict]] = defaultdict(list)
        self.scripts: dict[str, tuple[bytes, list[int]]] = {}
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    match, script = receiver.scripts.get(self.path, (b"", []))
                    status = script.pop(0) if script and match in body else 200
                    receiver.received[self.path].append(
                        {
                            "body": body,
                            "signature": self.headers.get("Stripe-Signature"),
                            "status": status,
                            "at": time.time(),
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def script(self, path: str, statuses: list[int], match: bytes = b"") -> None:
        """Answer the next deliveries to ``path`` whose body contains ``match`` with ``statuses``."""
        with self.lock:
            self.scripts[path] = (match, list(statuses))

    def events(self, path: str, object_ids: set[str] | None = None, status: int | None = 200) -> list[dict]:
        """Parsed events that arrived at ``path`` (answered ``status``), about ``object_ids``."""
        with self.lock:
            items = list(self.received[path])
        out = []
        for item in items:
            if status is not None and item["status"] != status:
                continue
            event = json.loads(item["body"])
            obj = event["data"]["object"]
            if object_ids is None or obj.get("id") in object_ids or obj.get("payment_intent") in object_ids:
                out.append(event)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def session_params(**overrides) -> dict:
    """A valid Checkout Session: two ticket lines in EUR, 30 minutes to pay."""
    params = {
        "mode": "payment",
        "success_url": "http://shop.test/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.test/cart",
        "line_items": [
            {
                "price_data": {"currency": "eur", "unit_amount": 1900, "product_data": {"name": "Early Bird"}},
                "quantity": 2,
            },
            {
                "price_data": {
                    "currency": "eur",
                    "unit_amount": 6000,
                    "product_data": {"name": "VIP", "description": "Front rows"},
                },
                "quantity": 1,
            },
        ],
        "customer_email": "ada@example.com",
        "client_reference_id": "cart-42",
        "metadata": {"cart_id": "42"},
        "payment_intent_data": {"metadata": {"cart_id": "42"}},
        "expires_at": int(time.time()) + 31 * 60,
    }
    params.update(overrides)
    return params
