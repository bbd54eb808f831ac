"""The sandbox's hosted checkout page in Debian's Chromium: each test card, 3-D Secure,
bank debit, the back link, an expired session; and the sandbox mounted in the storefront (the demo).

The sandbox runs as its own process; a tiny "shop" HTTP server in the test stands at
the success and cancel URLs, so the browser really lands there. Screenshots go to
``tests/artifacts/`` (and to ``docs/screenshots/`` with ``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from .browser_support import ARTIFACTS, PageWatch, browser  # noqa: F401 (browser: a fixture)
from .sandbox_support import sandbox, session_params  # noqa: F401 (sandbox: a fixture)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DOC_SHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def shop():
    """The shop's success and cancel pages: they say where the buyer landed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            session_id = parse_qs(url.query).get("session_id", [""])[0]
            title = {"/checkout/success": "Thank you", "/cart": "Your cart"}.get(url.path, "Shop")
            body = f"<!doctype html><title>{title}</title><h1>{title}</h1><p id='session'>{session_id}</p>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB")
    yield context
    context.close()


def new_session(sandbox, shop, **overrides):
    params = session_params(
        success_url=f"{shop}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{shop}/cart",
        **overrides,
    )
    return sandbox.client().v1.checkout.sessions.create(params=params)


def fill_card(page, number, expiry="12 / 34", cvc="123"):
    page.get_by_label("Card information").fill(number)
    page.get_by_label("Expiry").fill(expiry)
    page.get_by_label("CVC").fill(cvc)
    page.get_by_label("Name on card or account").fill("Ada Lovelace")


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # refresh the committed picture on purpose only
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SHOTS / name)


def events_about(sandbox, type_, object_id):
    listing = sandbox.client().v1.events.list(params={"type": type_, "limit": 100})
    return [e for e in listing.auto_paging_iter() if e.data.object.id == object_id]


# --- the cards ----------------------------------------------------------------------------


def test_the_page_shows_the_order_and_4242_pays(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    page = context.new_page()
    watch = PageWatch(page)
    response = page.goto(session.url)
    assert "script-src 'none'" in response.headers["content-security-policy"]
    expect(page.locator("#total")).to_have_text("€98.00")
    expect(page.locator(".sbx-line")).to_have_count(2)
    expect(page.locator(".sbx-line").first).to_contain_text("Early Bird")
    expect(page.locator(".sbx-line").first).to_contain_text("Qty 2 · €19.00 each")
    expect(page.locator(".sbx-line").first).to_contain_text("€38.00")
    expect(page.locator(".sbx-line").nth(1)).to_contain_text("Front rows")
    expect(page.get_by_label("Email")).to_have_value("ada@example.com")
    expect(page.get_by_role("button", name="Pay €98.00")).to_be_visible()
    expect(page.get_by_label("IBAN")).to_be_hidden()  # card is the default method
    fill_card(page, "4242 4242 4242 4242")
    shoot(page, "sandbox-checkout.png")

    page.get_by_role("button", name="Pay €98.00").click()
    page.wait_for_url(f"{shop}/checkout/success?session_id={session.id}")
    expect(page.locator("#session")).to_have_text(session.id)
    paid = sandbox.client().v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (paid.status, paid.payment_status, paid.payment_intent.status) == ("complete", "paid", "succeeded")
    assert paid.customer_details.name == "Ada Lovelace"
    watch.assert_clean()

    # Coming back to the page of a paid session says so.
    page.goto(session.url)
    expect(page.locator("#state h2")).to_have_text("Payment complete")


@pytest.mark.parametrize(
    "card, words, decline_code",
    [
        ("4000 0000 0000 0002", "Your card was declined.", "generic_decline"),
        ("4000 0000 0000 9995", "Your card has insufficient funds.", "insufficient_funds"),
    ],
)
def test_a_declined_card_stays_on_the_page_and_can_try_again(sandbox, shop, context, card, words, decline_code):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(session.url)
    fill_card(page, card)
    page.get_by_role("button", name="Pay €98.00").click()
    expect(page.locator("#decline")).to_have_text(words)
    expect(page.locator("#decline")).to_have_attribute("data-decline-code", decline_code)
    assert page.url == session.url
    assert sandbox.client().v1.checkout.sessions.retrieve(session.id).status == "open"
    pi_id = sandbox.client().v1.checkout.sessions.retrieve(session.id).payment_intent
    [failed] = events_about(sandbox, "payment_intent.payment_failed", pi_id)
    assert failed.data.object.last_payment_error.decline_code == decline_code
    if decline_code == "insufficient_funds":
        shoot(page, "sandbox-declined.png")
    # The card number is not echoed back; the buyer types another card.
    expect(page.get_by_label("Card information")).to_have_value("")
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay €98.00").click()
    page.wait_for_url(f"{shop}/checkout/success?session_id={session.id}")
    watch.assert_clean()


def test_three_d_secure_can_fail_then_pass(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(session.url)
    fill_card(page, "4000 0025 0000 3155")
    page.get_by_role("button", name="Pay €98.00").click()
    expect(page.get_by_role("heading", name="Authenticate your payment")).to_be_visible()
    expect(page.locator("#challenge-amount")).to_have_text("€98.00")
    shoot(page, "sandbox-3ds.png")
    page.get_by_role("button", name="Fail authentication").click()
    expect(page.locator("#decline")).to_contain_text("We are unable to authenticate your payment method.")
    pi_id = sandbox.client().v1.checkout.sessions.retrieve(session.id).payment_intent
    assert sandbox.client().v1.payment_intents.retrieve(pi_id).status == "requires_payment_method"

    fill_card(page, "4000002500003155")
    page.get_by_role("button", name="Pay €98.00").click()
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(f"{shop}/checkout/success?session_id={session.id}")
    pi = sandbox.client().v1.payment_intents.retrieve(pi_id, params={"expand": ["latest_charge"]})
    assert pi.status == "succeeded"
    assert pi.latest_charge.payment_method_details.card.three_d_secure.result == "authenticated"
    watch.assert_clean()


def test_bank_debit_completes_unpaid(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(session.url)
    page.get_by_label("Bank debit").check()
    expect(page.get_by_label("Card information")).to_be_hidden()
    page.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 00")
    page.get_by_label("Name on card or account").fill("Ada Lovelace")
    shoot(page, "sandbox-bank-debit.png")
    page.get_by_role("button", name="Pay €98.00").click()
    page.wait_for_url(f"{shop}/checkout/success?session_id={session.id}")
    done = sandbox.client().v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status, done.payment_intent.status) == ("complete", "unpaid", "processing")
    page.goto(session.url)
    expect(page.locator("#state h2")).to_have_text("Payment processing")
    watch.assert_clean()


def test_a_wrong_form_says_what_is_wrong_and_charges_nothing(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop, customer_email=None)
    page = context.new_page()
    page.goto(session.url)
    page.get_by_label("Email").fill("not-an-email")
    fill_card(page, "4242 4242 4242 4241", expiry="01 / 20", cvc="1")
    page.get_by_role("button", name="Pay €98.00").click()
    expect(page.get_by_label("Card information")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#card-number-error")).to_have_text("Your card number is invalid.")
    expect(page.locator("#card-expiry-error")).to_have_text("Your card's expiration year is in the past.")
    expect(page.locator("#card-cvc-error")).to_have_text("Your card's security code is incomplete.")
    expect(page.locator("#email-error")).to_have_text("Your email address is invalid.")
    assert sandbox.client().v1.checkout.sessions.retrieve(session.id).payment_intent is None


def test_the_back_link_goes_to_cancel_url(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    page = context.new_page()
    page.goto(session.url)
    page.get_by_role("link", name="Back").click()
    page.wait_for_url(f"{shop}/cart")
    expect(page.locator("h1")).to_have_text("Your cart")


def test_an_expired_session_says_so(sandbox, shop, context):
    from playwright.sync_api import expect

    session = new_session(sandbox, shop)
    sandbox.client().v1.checkout.sessions.expire(session.id)
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(session.url)
    expect(page.locator("#state h2")).to_have_text("This checkout session has expired")
    expect(page.get_by_role("button", name="Pay €98.00")).to_have_count(0)
    expect(page.get_by_role("button", name="Return to the shop")).to_have_attribute("href", f"{shop}/cart")
    shoot(page, "sandbox-expired.png")
    watch.assert_clean()

    # A session whose time ran out while the page was open: paying fails, the page says why.
    lapsing = new_session(sandbox, shop)
    page.goto(lapsing.url)
    sandbox.control("POST", f"/_sandbox/checkout/sessions/{lapsing.id}/lapse", {"sweep": False})
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay €98.00").click()
    expect(page.locator("#state h2")).to_have_text("This checkout session has expired")
    assert sandbox.client().v1.checkout.sessions.retrieve(lapsing.id).status == "expired"


def test_submit_type_book_says_book(sandbox, shop, context):
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(new_session(sandbox, shop, submit_type="book").url)
    expect(page.locator("button[type=submit]")).to_have_text("Book €98.00")


def test_amounts_follow_the_buyers_language(sandbox, shop, browser):
    from playwright.sync_api import expect

    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(new_session(sandbox, shop).url)
        expect(page.locator("#total")).to_have_text("98,00\u00a0€")
    finally:
        context.close()


def test_a_form_on_another_site_cannot_drive_the_control_api(sandbox, shop, context):
    """A page elsewhere (the "shop" server: another origin) posts a form to the control
    API, as an attacker's page would: the browser's own request is refused, nothing paid."""
    session = new_session(sandbox, shop)
    page = context.new_page()
    page.goto(f"{shop}/checkout/success")
    with page.expect_response(lambda r: "/_sandbox/" in r.url) as answer:
        page.evaluate(
            """([action]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                const card = document.createElement("input");
                card.name = "card";
                card.value = "4242424242424242";
                form.append(card);
                document.body.append(form);
                form.submit();
            }""",
            [f"{sandbox.base}/_sandbox/checkout/sessions/{session.id}/pay"],
        )
    assert answer.value.status == 403
    request = answer.value.request
    assert request.header_value("origin") == shop
    assert request.header_value("sec-fetch-site") in ("same-site", "cross-site")
    assert sandbox.client().v1.checkout.sessions.retrieve(session.id).status == "open"


def test_the_demo_pays_on_the_sandbox_mounted_in_the_storefront(database_urls, tmp_path, context):
    """No Stripe settings: the storefront serves the hosted page itself, under
    /_sandbox/stripe, on its own origin; the buyer pays and comes back to the shop."""
    from playwright.sync_api import expect
    from werkzeug.serving import make_server

    from storefront.payments.gateway import get_gateway

    from .conftest import make_app

    app = make_app(
        database_urls["sqlite"],
        DEMO_MODE=True,
        STRIPE_SECRET_KEY=None,
        STRIPE_API_BASE=None,
        STRIPE_WEBHOOK_SECRET="whsec_demo_test",
        STRIPE_SANDBOX_KEY="sk_test_demo_generated",
        STRIPE_SANDBOX_DB=str(tmp_path / "mounted.db"),
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = base  # as flask demo --port sets it
    try:
        with app.test_request_context("/checkout", base_url=base):
            session = get_gateway().create_checkout_session(
                session_params(
                    success_url=f"{base}/?paid={{CHECKOUT_SESSION_ID}}",
                    cancel_url=f"{base}/",
                )
            )
        assert session.url == f"{base}/_sandbox/stripe/pay/{session.id}"
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(session.url)
        expect(page.locator("#total")).to_have_text("€98.00")
        fill_card(page, "4242 4242 4242 4242")
        page.get_by_role("button", name="Pay €98.00").click()
        page.wait_for_url(f"{base}/?paid={session.id}")
        watch.assert_clean()
        with app.app_context():
            assert get_gateway().retrieve_checkout_session(session.id).payment_status == "paid"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["stripe_sandbox"].stop()
