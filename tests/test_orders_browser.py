"""The orders area in Debian's Chromium: the live search narrows the list as the organiser
types (htmx, no reload), and an order's page shows its payment attempt's timeline, a
decline then the payment, in plain words with Stripe's codes. Screenshots in
tests/artifacts/admin-orders*.png and admin-order-timeline*.png.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from storefront import attempts
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import AttemptStatus, PaymentAttempt, utcnow
from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user
from .browser_support import (  # noqa: F401 (browser, live, live_server: fixtures)
    PageWatch,
    browser,
    live,
    live_server,
)
from .factories import make_order
from .test_admin_browser import DESKTOP, PHONE, assert_no_script_trouble, shoot, sign_in_on_page

pytestmark = pytest.mark.browser


def _paid_after_a_decline(order) -> None:
    """The order's cart's attempt as checkout, the webhooks and fulfilment leave it: opened,
    declined for want of funds two minutes later, then paid."""
    start = utcnow() - timedelta(minutes=10)
    with write_transaction():
        attempt = PaymentAttempt(
            cart_id=order.cart_id,
            idempotency_key=f"browser-{order.id}",
            lines="[]",
            buyer_email=order.buyer_email,
            amount_minor=order.total_minor,
            currency=order.currency,
            session_expires_at=start + timedelta(minutes=30),
            status=AttemptStatus.CREATING.value,
            stripe_checkout_session_id=f"cs_test_browser{order.id}",
            created_at=start,
            updated_at=start,
        )
        db.session.add(attempt)
        attempts.move(attempt, AttemptStatus.OPEN, start + timedelta(seconds=2))
    error = SimpleNamespace(
        type="card_error",
        code="card_declined",
        decline_code="insufficient_funds",
        message="Your card has insufficient funds.",
    )
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt.id)
        attempts.record_failed_try(
            attempt, start + timedelta(minutes=1), payment_intent_id="pi_test_browser1", error=error
        )
    with write_transaction():
        attempt = db.session.get(PaymentAttempt, attempt.id)
        attempts.move(attempt, AttemptStatus.PAID, start + timedelta(minutes=3))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_live_search_and_an_orders_timeline(live, browser, viewport):
    from playwright.sync_api import expect

    _app, base_url = live
    organiser = make_organiser("harbour", "Harbour Arts")
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    event = make_event_of(organiser, "Lighthouse Sessions", slug="lighthouse", timezone="Europe/London")
    make_order(event, [("Ada", "Lovelace"), ("Charles", "Babbage")], email="ada@example.com")
    make_order(event, [("Zoé", "Lefèvre")], email="zoe@example.org")
    target = make_order(event, [("Grace", "Hopper")], email="grace@example.net")
    _paid_after_a_decline(target)

    context = browser.new_context(viewport=viewport, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@harbour.example")
        page.goto(f"{base_url}/admin/o/harbour/events/lighthouse")
        page.get_by_role("button", name="Orders", exact=True).click()  # the event page's link
        expect(page.locator("h1")).to_have_text("Orders: Lighthouse Sessions")
        rows = page.locator(".orders-table tbody tr")
        expect(rows).to_have_count(3)
        watch.mark()
        page.get_by_label("Search").fill("lefev")  # no accent typed
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Zoé Lefèvre")
        # Swapped in place by htmx (the address follows, for the back button and sharing).
        assert page.evaluate("window.__marker") == 1, "the page was reloaded"
        assert any(r.headers.get("hx-request") == "true" and "q=lefev" in r.url for r in watch.requests)
        assert "q=lefev" in page.url
        shoot(page, "orders-search", viewport)
        page.get_by_label("Search").fill("hop")
        expect(rows.first).to_contain_text("Grace Hopper")
        expect(rows).to_have_count(1)
        rows.first.get_by_role("link").click()

        expect(page.locator("h1")).to_have_text(f"Order {target.code}")
        timeline = page.locator(".timeline li")
        expect(timeline).to_have_count(4)
        expect(timeline.nth(0)).to_contain_text("Checkout started")
        expect(timeline.nth(2)).to_contain_text("Card declined: insufficient funds")
        expect(timeline.nth(2)).to_contain_text("insufficient_funds")
        expect(timeline.nth(3)).to_contain_text("Paid")
        expect(page.locator(".attempt-timeline header")).to_contain_text("pi_test_browser1")
        # A sandbox's payment has no page in Stripe's dashboard.
        expect(page.locator(".attempt-timeline a[href*='dashboard.stripe.com']")).to_have_count(0)
        expect(page.locator("table").first).to_contain_text("Grace Hopper")
        shoot(page, "order-timeline", viewport)
        assert_no_script_trouble(watch)
    finally:
        context.close()


def test_attempts_without_an_order(live, browser):
    from playwright.sync_api import expect

    _app, base_url = live
    organiser = make_organiser("harbour", "Harbour Arts")
    add_member(make_user("owner@harbour.example"), organiser, Role.OWNER)
    event = make_event_of(organiser, "Lighthouse Sessions", slug="lighthouse", timezone="Europe/London")
    from storefront.models import Cart, CartItem, CartStatus

    now = utcnow()
    for n, (status, code, decline) in enumerate(
        [
            (AttemptStatus.EXPIRED, None, None),
            (AttemptStatus.OPEN, "card_declined", "insufficient_funds"),
            (AttemptStatus.FAILED, "payment_method_provider_decline", None),
        ]
    ):
        with write_transaction():
            cart = Cart(token=f"browser-attempt-{n}", status=CartStatus.EXPIRED.value, expires_at=now)
            db.session.add(cart)
            db.session.flush()
            db.session.add(CartItem(cart_id=cart.id, ticket_type_id=event.ticket_types[0].id, quantity=2))
            db.session.add(
                PaymentAttempt(
                    cart_id=cart.id,
                    event_id=event.id,
                    idempotency_key=f"browser-attempt-{n}",
                    lines="[]",
                    buyer_email=f"buyer{n}@example.com",
                    amount_minor=5000,
                    currency="EUR",
                    status=status.value,
                    session_expires_at=now,
                    stripe_checkout_session_id=f"cs_test_attempt{n}",
                    error_code=code,
                    decline_code=decline,
                    created_at=now - timedelta(minutes=10 - n),
                    updated_at=now - timedelta(minutes=9 - n),
                )
            )
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, base_url, "owner@harbour.example")
        page.goto(f"{base_url}/admin/o/harbour/events/lighthouse")
        page.get_by_role("button", name="Attempts without an order").click()
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("Bank debit failed: the bank refused it")
        expect(rows.nth(1)).to_contain_text("Card declined: insufficient funds")
        page.get_by_label("Failure").select_option("insufficient_funds")
        page.get_by_role("button", name="Show").click()
        expect(rows).to_have_count(1)
        page.get_by_label("Failure").select_option("")
        page.get_by_role("button", name="Show").click()
        expect(rows).to_have_count(3)
        shoot(page, "event-attempts", DESKTOP)
        assert_no_script_trouble(watch)
    finally:
        context.close()
