"""The reconciliation inbox in Debian's Chromium: items in plain words with what Stripe
says beside what we have, times on the venue's clock; a refund through its confirm step;
a run asked for, watched by htmx polling until it finished and its findings replaced the list. Screenshots in
tests/artifacts/admin-reconcile-*.png."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storefront import jobs
from storefront.extensions import db
from storefront.reconcile import reconcile
from storefront.staff_models import Role

from .admin_support import add_member, make_user
from .browser_support import PageWatch, browser  # noqa: F401 (browser: fixture)
from .checkout_support import attempt_of, sandbox, shop  # noqa: F401 (shop, sandbox: fixtures)
from .test_admin_browser import DESKTOP, assert_no_script_trouble, shoot, sign_in_on_page
from .test_reconcile_inbox import _amount_mismatch, _paid_without_order_item

pytestmark = pytest.mark.browser


# One backend is enough for the screenshots; the actions are proven on both (test_reconcile_inbox.py).
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_manager_refunds_an_item_and_starts_a_run(shop, sandbox, browser, backend):
    from playwright.sync_api import expect

    event, mismatch_session = _amount_mismatch(shop, sandbox)
    reconcile(since=timedelta(hours=1))
    _paid_without_order_item(shop, sandbox)
    add_member(make_user("manager-reconciles@example.com"), event.organiser, Role.MANAGER)
    slug = event.organiser.slug
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    watch = PageWatch(page)
    try:
        sign_in_on_page(page, shop.live_url, "manager-reconciles@example.com")
        page.goto(f"{shop.live_url}/admin/o/{slug}/reconciliation")
        rows = page.locator("table.reconcile-items tbody tr")
        expect(rows).to_have_count(2)
        mismatch = rows.filter(has_text="Paid another amount than we asked")
        expect(mismatch).to_contain_text("€50.00")  # at Stripe
        expect(mismatch).to_contain_text("We asked €50.00; Stripe's completion said €0.50 paid")
        expect(mismatch).to_contain_text("Paris")  # the venue's clock, named
        expect(mismatch.get_by_role("button", name="Fulfil…")).to_have_count(0)
        expect(rows.filter(has_text="Paid, but we have no order").get_by_role("button", name="Fulfil…")).to_be_visible()
        shoot(page, "reconcile-inbox", DESKTOP)

        mismatch.get_by_role("button", name="Refund…").click()
        expect(page.locator("h1")).to_have_text("Refund this payment?")
        shoot(page, "reconcile-refund-confirm", DESKTOP)
        page.get_by_role("button", name="Refund now").click()
        expect(page.locator("body")).to_contain_text("Refunded at Stripe")
        expect(page.locator("table.reconcile-items tbody tr")).to_have_count(1)
        db.session.rollback()
        assert attempt_of(mismatch_session).status == "refunded"

        page.get_by_role("button", name="Start a run now").click()
        expect(page.locator("#reconcile-runs")).to_contain_text("A run is asked for or working")
        shoot(page, "reconcile-run-asked", DESKTOP)
        queue = jobs.get_jobs(shop).huey
        [task] = queue.pending()
        jobs.get_jobs(shop)._reconcile_run(*task.args)  # the job's work (no worker consumes the queue here)
        queue.flush()
        runs = page.locator("#reconcile-runs")
        expect(runs.get_by_role("button", name="Start a run now")).to_be_visible(timeout=10000)
        expect(runs).to_contain_text("manager-reconciles@example.com")
        # The inbox came with it: the run fulfilled the paid session (the item's cause went away).
        expect(page.locator("#reconcile-inbox")).to_contain_text("Nothing to look at.")
        shoot(page, "reconcile-run-finished", DESKTOP)
        assert_no_script_trouble(watch)
    finally:
        context.close()
