"""Headers, cookies and absolute links a browser (and an attacker) can trust.

No-store on personal pages, HSTS over https, Permissions-Policy (overridable per
answer), a CSP form-action that lets the checkout form's 303 reach the payment page
and nothing else; the session cookie Secure outside demo mode and ``__Host-`` over
https; links from PUBLIC_BASE_URL whatever Host the request names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from email import message_from_bytes, policy

import pytest

from storefront import http_security
from storefront.cli import demo_base_url

from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    CARD_OK,
    buy_until_stripe,
    sandbox,
    shop,
    wait_for_order,
)
from .conftest import backend_url, clean, make_app
from .factories import make_event
from .jobs_support import running_jobs
from .sandbox_support import ROOT, TEST_KEY, WEBHOOK_SECRET, free_port, wait_until
from .test_routes import add

EVIL = "http://evil.example"


def form_action(response) -> list[str]:
    csp = response.headers["Content-Security-Policy"]
    [directive] = [d.strip() for d in csp.split(";") if d.strip().startswith("form-action")]
    return directive.split()[1:]


def free_order(client, event_kwargs=None) -> str:
    """A free order through the shop; returns its page's path."""
    event = make_event(ticket_types=[{"name": "Free", "price_minor": 0}], **(event_kwargs or {}))
    add(client, event, {event.ticket_types[0].id: 1})
    response = client.post("/checkout", data={"email": "ada@example.com", "first-1": "Ada", "last-1": "Lovelace"})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert response.headers["Location"].startswith("/orders/")
    return response.headers["Location"]


# --- Cache-Control ------------------------------------------------------------------------------


def test_pages_with_personal_data_are_not_stored(client):
    event = make_event()
    tt = event.ticket_types[0]
    answers = {
        "the cart change": add(client, event, {tt.id: 1}),
        "the cart fragment": client.post("/cart/lapse", headers={"HX-Request": "true"}),
        "the cart": client.get("/cart"),
        "the event page with the cart": client.get(f"/events/{event.slug}"),
        "the checkout": client.get("/checkout"),
        "the success page": client.get("/checkout/success", query_string={"session_id": "cs_test_x"}),
        "its status poll": client.get("/checkout/status", query_string={"session_id": "cs_test_x"}),
        "a refused checkout": client.post("/checkout", data={"email": "nope"}),
    }
    other_browser = client.application.test_client()
    answers["the order"] = other_browser.get(free_order(other_browser))
    for what, response in answers.items():
        assert response.headers.get("Cache-Control") == "no-store", what
    with client.get("/static/css/app.css") as static:
        assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


# --- HSTS, Permissions-Policy, CSP --------------------------------------------------------------


def test_hsts_only_over_https(client):
    assert client.get("/", base_url="https://shop.example").headers["Strict-Transport-Security"] == ("max-age=31536000")
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_permissions_policy_denies_what_the_shop_does_not_use_and_a_page_may_allow_its_own(app):
    @app.get("/_test/door")
    def door():
        return http_security.allow_features(app.make_response("the door"), "camera")

    client = app.test_client()
    policy_ = client.get("/").headers["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"):
        assert feature in policy_
    door_policy = client.get("/_test/door").headers["Permissions-Policy"]
    assert "camera=(self)" in door_policy and "microphone=()" in door_policy


def test_form_action_is_us_and_the_in_process_payment_page(client):
    # The built-in sandbox serves its page on the shop's own origin.
    assert form_action(client.get("/")) == ["'self'", "http://127.0.0.1:5000"]


@pytest.mark.parametrize(
    "settings,origin",
    [
        ({"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_API_BASE": None}, "https://checkout.stripe.com"),
        ({"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:12111"}, "http://127.0.0.1:12111"),
        (
            {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_CHECKOUT_ORIGIN": "https://pay.tickets.example"},
            "https://pay.tickets.example",
        ),
    ],
)
def test_form_action_allows_the_configured_payment_page_and_no_other(database_urls, settings, origin):
    app = make_app(
        backend_url(database_urls, "sqlite"),
        STRIPE_WEBHOOK_SECRET="whsec_x",
        PUBLIC_BASE_URL="https://tickets.example",
        SESSION_COOKIE_SECURE=None,
        **settings,
    )
    with app.test_client().get("/static/favicon.svg") as response:
        assert form_action(response) == ["'self'", origin, "https://tickets.example"]


# --- the session cookie -------------------------------------------------------------------------


def session_cookie(app):
    """The Set-Cookie of the first answer that gives this browser a session."""
    with app.app_context():
        event = make_event()
        client = app.test_client()
        response = add(client, event, {event.ticket_types[0].id: 1})
        [cookie] = response.headers.getlist("Set-Cookie")
        return cookie


@pytest.fixture
def cookie_app(database_urls, request):
    """An app whose cookie settings are the defaults (``SESSION_COOKIE_SECURE`` unset), plus the marker's.
    Outside demo mode unless the marker says so, so with a (test) Stripe key; no call reaches it."""
    marker = request.node.get_closest_marker("app_config")
    settings = {
        "SESSION_COOKIE_SECURE": None,
        "DEMO_MODE": False,
        "STRIPE_SECRET_KEY": TEST_KEY,
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **(marker.kwargs if marker else {}),
    }
    app = make_app(backend_url(database_urls, "sqlite"), **settings)
    clean(app)
    yield app
    clean(app)


def test_the_session_cookie_is_secure_by_default(cookie_app):
    cookie = session_cookie(cookie_app)
    assert cookie.startswith("session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.app_config(DEMO_MODE=True)
def test_in_demo_mode_the_cookie_works_over_plain_http(cookie_app):
    cookie = session_cookie(cookie_app)
    assert "Secure" not in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.app_config(PUBLIC_BASE_URL="https://tickets.example", DEMO_MODE=True)
def test_over_https_the_cookie_is_host_prefixed(cookie_app):
    cookie = session_cookie(cookie_app)
    assert cookie.startswith("__Host-session=")
    assert "; Secure" in cookie and "; Path=/" in cookie and "Domain" not in cookie


def test_an_https_shop_refuses_a_cookie_that_is_not_secure(database_urls):
    with pytest.raises(RuntimeError, match="must be Secure"):
        make_app(database_urls["sqlite"], PUBLIC_BASE_URL="https://tickets.example", SESSION_COOKIE_SECURE=False)


# --- absolute links come from PUBLIC_BASE_URL -----------------------------------------------------


@pytest.mark.app_config(PUBLIC_BASE_URL="http://tickets.example:8000")
def test_a_forged_host_changes_no_link_of_a_free_order(app, tmp_path):
    app.config["MAIL_OUTBOX"] = str(tmp_path)
    client = app.test_client()
    with running_jobs(app):
        order_path = free_order(client)
        wait_until(lambda: list(tmp_path.glob("*.eml")), what="the confirmation mail")
    assert not order_path.startswith(EVIL)
    page = client.get(order_path, base_url=EVIL).get_data(as_text=True)
    [link] = re.findall(r'class="order-link" href="([^"]+)"', page)
    assert link == "http://tickets.example:8000" + order_path
    assert "evil.example" not in page
    [mail] = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in tmp_path.glob("*.eml")]
    assert "http://tickets.example:8000" + order_path in mail.get_body(("plain",)).get_content()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_forged_host_changes_none_of_stripes_links_nor_the_success_page(shop, sandbox, tmp_path):
    shop.config["MAIL_OUTBOX"] = str(tmp_path)
    base = shop.config["PUBLIC_BASE_URL"]
    event = make_event()
    client = shop.test_client()
    client.environ_base["HTTP_HOST"] = "evil.example"
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    from storefront.payments import gateway as gw

    session = gw.get_gateway().retrieve_checkout_session(session_id)
    assert session.success_url == base + "/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    assert session.cancel_url == base + "/cart"
    sandbox.pay(session_id, card=CARD_OK)
    order = wait_for_order(session_id)
    page = client.get("/checkout/success", query_string={"session_id": session_id}).get_data(as_text=True)
    assert re.search(rf'class="order-link" href="{re.escape(base)}/orders/{order.access_token}"', page)
    assert "evil.example" not in page
    # A job sends the mail after the order's commit, which is all wait_for_order waits for.
    with running_jobs(shop):
        [mail] = wait_until(lambda: list(tmp_path.glob("*.eml")), what="the confirmation mail")
    assert f"{base}/orders/{order.access_token}" in mail.read_text() and "evil.example" not in mail.read_text()


def test_demo_base_url_follows_host_and_port():
    assert demo_base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert demo_base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert demo_base_url("localhost", 5001) == "http://localhost:5001"
    assert demo_base_url("::", 8000) == "http://[::1]:8000"


def test_flask_demo_on_another_port_points_its_links_there(tmp_path):
    """`flask demo --port N` without PUBLIC_BASE_URL: links (here the CSP's own origin,
    and the command's words) name that port, and the cookie works over plain http."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SECRET_KEY": "demo-test",
        "STRIPE_SECRET_KEY": TEST_KEY,  # no sandbox files written under instance/
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAIL_OUTBOX": str(tmp_path / "outbox"),
        "JOBS_SQLITE_PATH": str(tmp_path / "jobs.db"),  # the demo's in-process consumer's queue
        "STOREFRONT_DEMO": "1",
    }
    for name in ("PUBLIC_BASE_URL", "SESSION_COOKIE_SECURE"):
        env.pop(name, None)
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/events/nocturne-jazz-night", timeout=2) as r:
                    headers = r.headers
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert f"http://127.0.0.1:{port}" in headers["Content-Security-Policy"]
        assert headers["Set-Cookie"].startswith("session=") and "Secure" not in headers["Set-Cookie"]
        assert f"links point to http://127.0.0.1:{port}" in log.read_text()
        assert "Jobs (mail, holds, reconciliation) run in this process." in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
