"""Limits counted in Redis hold across processes: two app processes, one count.

Needs the Redis at 127.0.0.1:6379 (``TEST_REDIS_URL``). Without it this skips, saying
why, except when ``STOREFRONT_REQUIRE_REDIS=1`` (CI), where it fails. Every key the
test writes is under a prefix of its own, deleted after.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import redis

from .factories import make_event, ticket_type
from .sandbox_support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_REDIS = os.environ.get("STOREFRONT_REQUIRE_REDIS") == "1"
CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')


@pytest.fixture
def redis_prefix():
    """(Redis URL, a key prefix of this test); the keys under it are deleted after."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        reason = f"Redis at {url} unreachable: {error}"
        if REQUIRE_REDIS:
            pytest.fail(reason + " (STOREFRONT_REQUIRE_REDIS=1: the Redis tests may not skip)")
        pytest.skip(reason)
    prefix = f"storefront-test-{secrets.token_hex(6)}"
    try:
        yield url, prefix
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


class AppProcess:
    """``python -m tests.serve_app`` on a free loopback port, configured by ``env``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.serve_app", "--port", str(self.port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, path: str) -> None:
        def up():
            if self.proc.poll() is not None:
                pytest.fail(f"the app process exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(up, timeout=30, what=f"the app on {self.base}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.proc.kill()
            self.proc.wait()


def test_two_app_processes_count_one_limit_in_redis(app, redis_prefix, tmp_path):
    url, prefix = redis_prefix
    event = make_event()
    tt_id = event.ticket_types[0].id
    env = {
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": "shared-by-both-processes",
        "REDIS_URL": url,
        "REDIS_KEY_PREFIX": prefix,
        "TRUSTED_PROXIES": "1",
        "LIMIT_ADD_TO_CART": "4 per minute",
        "STRIPE_SECRET_KEY": "sk_test_limits_redis",
        "STRIPE_API_BASE": "http://127.0.0.1:9",  # adding to a cart never calls Stripe
        "STRIPE_WEBHOOK_SECRET": "whsec_limits_redis",
        "MAIL_OUTBOX": str(tmp_path / "outbox"),
        "SESSION_COOKIE_SECURE": "0",  # plain http on loopback: the cookie must come back
    }
    servers = [AppProcess(env, tmp_path / f"app-{n}.log") for n in range(2)]
    try:
        for server in servers:
            server.wait_ready(f"/events/{event.slug}")
        # One browser behind the load balancer, its requests spread over both processes.
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with browser.open(f"{servers[0].base}/events/{event.slug}", timeout=10) as page:
            csrf = CSRF.search(page.read().decode()).group(1)

        def add(server, client_address: str) -> int:
            request = urllib.request.Request(
                f"{server.base}/events/{event.slug}/cart",
                data=f"quantity-{tt_id}=1".encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "HX-Request": "true",
                    "X-CSRFToken": csrf,
                    "X-Forwarded-For": client_address,
                },
            )
            try:
                with browser.open(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                assert error.code != 429 or int(error.headers["Retry-After"]) <= 60
                error.close()
                return error.code

        statuses = [add(servers[n % 2], "203.0.113.77") for n in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429], statuses
        assert add(servers[1], "203.0.113.78") == 200  # another client
    finally:
        for server in servers:
            server.stop()
    assert ticket_type(tt_id).held == 5
    keys = redis.Redis.from_url(url).keys(f"{prefix}:limits:*")
    assert any(b"add-to-cart" in key for key in keys), keys
