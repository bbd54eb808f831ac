"""The order actions over HTTP, as a manager's browser posts them (test client, CSRF on):
bad refund amounts and forged forms are a 4xx with a message that changed nothing; the same
confirm posted twice refunds once; a pending refund, then succeeded, and a failing one with
its Retry, as the order page shows them; cancelling twice; names refused; and sending the
confirmation again (one copy per form, throttled per order and per member, never for a
cancelled or refunded order). Refunds go to the sandbox over HTTP (tests/sandbox_support.py)."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from storefront import outbox, refunds
from storefront.extensions import db
from storefront.models import MailOutbox, Order, OrderStatus, Refund
from storefront.staff_models import Role

from .admin_support import add_member, audit_actions, csrf_token_of, mail_dir, mails_to, make_user, sign_in_as, snapshot
from .checkout_support import CARD_OK, sandbox, shop  # noqa: F401 (fixtures)
from .factories import make_event, make_order
from .sandbox_support import wait_until
from .test_refunds import CARD_REFUND_FAILS, CARD_REFUND_PENDING, at_stripe, fresh_order, paid_order

__all__ = ["mail_dir"]  # a fixture

CSRF_ON = pytest.mark.app_config(WTF_CSRF_ENABLED=True)
# Tables a refusal must leave as they were; the sandbox's webhooks about the payment
# itself (charge.succeeded …) may still be arriving while a test runs.
ASYNC_TABLES = {"webhook_events"}


def _still(before: dict) -> None:
    after = snapshot()
    assert {k: v for k, v in after.items() if k not in ASYNC_TABLES} == {
        k: v for k, v in before.items() if k not in ASYNC_TABLES
    }


def _manager_client(app, order: Order, role: Role = Role.MANAGER):
    """A member's signed-in client, CSRF checked from now on (the buying that made the
    order posted the shop's forms without tokens)."""
    app.config["WTF_CSRF_ENABLED"] = True
    event = db.session.get(Order, order.id).event
    user = make_user()
    add_member(user, event.organiser, role)
    client = app.test_client()
    sign_in_as(client, user)
    return client, f"/admin/o/{event.organiser.slug}/events/{event.slug}/orders/{order.code}"


def _token(client, url: str) -> str:
    answer = client.get(url)
    assert answer.status_code == 200, answer.status_code
    return csrf_token_of(answer.get_data(as_text=True))


def _hidden_fields(page: str) -> list[tuple[str, str]]:
    """The confirm form's fields as the browser would post them back."""
    form = page[page.index('<input type="hidden" name="confirm"') :]
    form = form[: form.index("</form>")]
    return [(k, html.unescape(v)) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)]


def _form(token: str, fields: list[tuple[str, str]]) -> MultiDict:
    return MultiDict([("csrf_token", token), *fields])


def _text(answer) -> str:
    return answer.get_data(as_text=True)


def _order_page(client, url: str) -> str:
    """The order page as a new request sees it: the test's app context (and session) is
    shared with the client's requests, so what it read before is let go first."""
    db.session.rollback()
    return _text(client.get(url))


# --- refunds: bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "amount, words",
    [
        ("0", "Choose an amount between €0.01 and €50.00."),
        ("-5", "This is not an amount that can be charged in EUR."),
        ("50.01", "Choose an amount between €0.01 and €50.00."),
        ("1e9", "Choose an amount between €0.01 and €50.00."),
        ("ten", "This is not an amount that can be charged in EUR."),
        ("", "This is not an amount that can be charged in EUR."),
        ("NaN", "This is not an amount that can be charged in EUR."),
        ("1.005", "This is not an amount that can be charged in EUR."),
    ],
)
def test_a_bad_amount_is_refused_with_its_reason_and_changes_nothing(shop, sandbox, backend, amount, words):
    order = paid_order(shop, sandbox)  # 2 × €25.00
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    before = snapshot()
    for confirm in ("", "1"):  # the review step, and a confirm posted by hand
        data = {"csrf_token": token, "mode": "amount", "amount": amount, "confirm": confirm, "committed_minor": "0"}
        answer = client.post(url + "/refund", data=data)
        assert 400 <= answer.status_code < 500, answer.status_code
        assert words in _text(answer)
    _still(before)
    assert at_stripe(order) == []


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "everything"},
        {"mode": "tickets"},  # none chosen
        {"mode": "tickets", "tickets": "NOSUCHCODE"},
        {"mode": "full", "confirm": "1", "committed_minor": "lots"},
        {"mode": "amount", "amount": "10", "confirm": "1", "committed_minor": "x" * 50},
    ],
    ids=["unknown-mode", "no-ticket", "unknown-ticket", "forged-committed", "long-committed"],
)
def test_a_forged_or_empty_refund_form_is_a_4xx_that_changes_nothing(shop, sandbox, backend, fields):
    order = paid_order(shop, sandbox)
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    before = snapshot()
    answer = client.post(url + "/refund", data={"csrf_token": token, **fields})
    assert 400 <= answer.status_code < 500, answer.status_code
    assert 'role="alert"' in _text(answer)
    _still(before)
    assert at_stripe(order) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_yen_have_no_decimals(shop, sandbox, backend):
    from .checkout_support import buy_until_stripe, wait_for_order

    event = make_event(currency="JPY", ticket_types=[{"name": "Seat", "price_minor": 3000}])
    session_id = buy_until_stripe(shop.test_client(), event, {event.ticket_types[0].id: 1})
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    before = snapshot()
    for amount in ("12.5", "0.1", "1000.00000001"):
        answer = client.post(url + "/refund", data={"csrf_token": token, "mode": "amount", "amount": amount})
        assert answer.status_code == 400 and "This is not an amount that can be charged in JPY." in _text(answer)
    _still(before)
    review = client.post(url + "/refund", data={"csrf_token": token, "mode": "amount", "amount": "1000"})
    assert review.status_code == 200 and "Refund ¥1,000." in _text(review)
    assert ("amount", "1000") in _hidden_fields(_text(review))


# --- refunds: double submits, pending, failing ------------------------------------------------


@pytest.mark.parametrize("mode", ["amount", "full", "tickets"])
def test_the_same_confirm_posted_twice_refunds_once(shop, sandbox, mode):
    order = paid_order(shop, sandbox)
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    review = {"csrf_token": token, "mode": mode, "amount": "10.00", "tickets": order.tickets[0].code}
    page = client.post(url + "/refund", data=review)
    assert page.status_code == 200 and "Confirm the refund" in _text(page)
    confirm = _form(token, _hidden_fields(_text(page)))
    first = client.post(url + "/refund", data=confirm)
    assert first.status_code == 303 and first.headers["Location"].endswith(url)
    second = client.post(url + "/refund", data=confirm)
    assert 400 <= second.status_code < 500 and 'role="alert"' in _text(second)
    expected = {"amount": 1000, "full": 5000, "tickets": 2500}[mode]
    assert [r.amount_minor for r in refunds.of_order(order.id)] == [expected]
    assert audit_actions(action="refund.requested") == ["refund.requested"]
    wait_until(lambda: len(at_stripe(order)) == 1, what="the refund at Stripe")
    assert len(at_stripe(order)) == 1


def _refund_rows(page: str) -> list[str]:
    section = page[page.index("<h2>Refunds</h2>") :]
    section = section[section.index("<tbody>") : section.index("</tbody>")]
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_pending_refund_shows_pending_then_succeeded(shop, sandbox, backend):
    order = paid_order(shop, sandbox, card=CARD_REFUND_PENDING)
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    assert (
        client.post(
            url + "/refund", data={"csrf_token": token, "mode": "full", "confirm": "1", "committed_minor": "0"}
        ).status_code
        == 303
    )
    [row] = _refund_rows(_order_page(client, url))
    assert "€50.00" in row and "On its way" in row and "re_" in row
    page = _order_page(client, url)
    assert "Try this refund again" not in page
    stripe_id = db.session.execute(select(Refund.stripe_refund_id).where(Refund.order_id == order.id)).scalar_one()
    sandbox.control("POST", f"/_sandbox/refunds/{stripe_id}/settle", {})
    wait_until(lambda: "Refunded" in _refund_rows(_order_page(client, url))[0], what="refund.updated")
    assert fresh_order(order.id).status == OrderStatus.REFUNDED.value


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_failed_refund_is_shown_with_retry_and_retried_once(shop, sandbox, backend):
    order = paid_order(shop, sandbox, card=CARD_REFUND_FAILS)
    client, url = _manager_client(shop, order)
    token = _token(client, url + "/refund")
    review = client.post(url + "/refund", data={"csrf_token": token, "mode": "amount", "amount": "20"})
    assert client.post(url + "/refund", data=_form(token, _hidden_fields(_text(review)))).status_code == 303
    refund = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    sandbox.control("POST", f"/_sandbox/refunds/{refund.stripe_refund_id}/settle", {})
    wait_until(lambda: "Failed" in _refund_rows(_order_page(client, url))[0], what="refund.failed")
    page = _order_page(client, url)
    assert "the card expired or was cancelled" in _refund_rows(page)[0]
    retry_url = f"{url}/refunds/{refund.id}/retry"
    assert f'action="{retry_url}"' in page and "Try this refund again" in page
    assert client.post(retry_url, data={"csrf_token": token}).status_code == 303
    again = client.post(retry_url, data={"csrf_token": token})  # the double click
    assert again.status_code == 400 and "Only a failed refund can be tried again, and only once." in _text(again)
    assert sorted(r.status for r in refunds.of_order(order.id)) == ["failed", "succeeded"]
    page = _order_page(client, url)
    assert "Try this refund again" not in page and "Tried again below." in page


# --- cancel, rename ------------------------------------------------------------------------------


@CSRF_ON
def test_cancelling_twice_cancels_once(app):
    order = make_order(make_event(), [("Ada", "L"), ("Bob", "M")])
    client, url = _manager_client(app, order)
    token = _token(client, url + "/cancel")
    review = client.post(url + "/cancel", data={"csrf_token": token})
    assert review.status_code == 200 and "No money goes back." in _text(review)
    confirm = _form(token, _hidden_fields(_text(review)))
    assert client.post(url + "/cancel", data=confirm).status_code == 303
    assert "The order is cancelled" in _order_page(client, url)
    assert client.post(url + "/cancel", data=confirm).status_code == 303
    assert "This order was cancelled already." in _order_page(client, url)
    assert audit_actions(action="order.cancelled") == ["order.cancelled"]
    assert [t.status for t in fresh_order(order.id).tickets] == ["void", "void"]


@CSRF_ON
@pytest.mark.parametrize("first, last", [("", "Lovelace"), ("Ada", "   "), ("A" * 101, "Lovelace"), ("Ada", "L\x07")])
def test_a_bad_name_is_a_400_with_its_reason(app, first, last):
    order = make_order(make_event())
    client, url = _manager_client(app, order)
    rename = f"{url}/tickets/{order.tickets[0].code}/name"
    token = _token(client, rename)
    before = snapshot()
    answer = client.post(rename, data={"csrf_token": token, "first_name": first, "last_name": last})
    assert answer.status_code == 400
    assert "A name is 1 to 100 characters, without line breaks or control characters." in _text(answer)
    _still(before)


# --- resending the confirmation ----------------------------------------------------------------


def _resend_rows(order_id: int) -> list[tuple[int, str]]:
    db.session.rollback()
    return [
        (row.resend, row.status)
        for row in db.session.execute(
            select(MailOutbox).where(MailOutbox.order_id == order_id).order_by(MailOutbox.id)
        ).scalars()
    ]


def _resend(client, url: str):
    page = _text(client.get(url + "/resend"))
    fields = re.findall(r'<input type="hidden" name="(resends)" value="([^"]*)"', page)
    return client.post(url + "/resend", data=_form(csrf_token_of(page), fields))


@CSRF_ON
def test_box_office_resends_the_confirmation_with_its_tickets_to_the_buyer(app, mail_dir):
    order = make_order(make_event(), [("Ada", "Lovelace"), ("Bob", "Marley")], email="ada@example.com")
    client, url = _manager_client(app, order, Role.BOX_OFFICE)
    page = _text(client.get(url + "/resend"))
    assert "goes again to ada@example.com" in page
    answer = _resend(client, url)
    assert answer.status_code == 303 and answer.headers["Location"].endswith(url)
    assert _resend_rows(order.id) == [(1, "pending")]
    outbox.send_due()  # what the queued job does
    assert _resend_rows(order.id) == [(1, "sent")]
    [mail] = mails_to(app, "ada@example.com")
    assert order.code in mail["Subject"]
    assert any(part.get_filename() == f"tickets-{order.code}.pdf" for part in mail.iter_attachments())
    page = _order_page(client, url)
    assert "Order confirmation, sent again (1)" in page and "Confirmation sent again" in page
    [entry] = audit_actions(action="order.confirmation_resent")
    assert entry == "order.confirmation_resent"


@CSRF_ON
def test_the_same_resend_form_posted_twice_sends_one_copy(app, mail_dir):
    order = make_order(make_event())
    client, url = _manager_client(app, order)
    page = _text(client.get(url + "/resend"))
    data = {"csrf_token": csrf_token_of(page), "resends": "0"}
    assert client.post(url + "/resend", data=data).status_code == 303
    assert client.post(url + "/resend", data=data).status_code == 303
    assert "The confirmation was sent again already." in _order_page(client, url)
    assert _resend_rows(order.id) == [(1, "pending")]
    assert audit_actions(action="order.confirmation_resent") == ["order.confirmation_resent"]


@CSRF_ON
@pytest.mark.parametrize("resends", ["", "-1", "two", "9" * 40])
def test_a_forged_resend_form_is_a_400_that_sends_nothing(app, resends):
    order = make_order(make_event())
    client, url = _manager_client(app, order)
    token = _token(client, url + "/resend")
    before = snapshot()
    answer = client.post(url + "/resend", data={"csrf_token": token, "resends": resends})
    assert answer.status_code == 400 and "This form is out of date" in _text(answer)
    _still(before)


@CSRF_ON
def test_three_resends_an_hour_per_order_then_429_and_nothing_queued(app):
    order = make_order(make_event())
    client, url = _manager_client(app, order)
    for _ in range(3):
        assert _resend(client, url).status_code == 303
    before = snapshot()
    refused = _resend(client, url)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "sent again 3 times in the last hour" in _text(refused)
    _still(before)
    # Another member does not get past the order's own cap.
    other, _url = _manager_client(app, order)
    assert _resend(other, url).status_code == 429
    assert [n for n, _status in _resend_rows(order.id)] == [1, 2, 3]


@CSRF_ON
@pytest.mark.app_config(WTF_CSRF_ENABLED=True, LIMIT_RESEND_MAIL="2 per hour")
def test_a_member_resending_too_often_gets_429(app):
    event = make_event()
    orders = [make_order(event) for _ in range(3)]
    client, _url = _manager_client(app, orders[0])
    base = _url.rsplit("/", 1)[0]
    assert _resend(client, f"{base}/{orders[0].code}").status_code == 303
    assert _resend(client, f"{base}/{orders[1].code}").status_code == 303
    before = snapshot()
    refused = _resend(client, f"{base}/{orders[2].code}")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "You sent confirmations again too often" in _text(refused)
    _still(before)


@CSRF_ON
@pytest.mark.parametrize("status", [OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value])
def test_no_resend_for_a_cancelled_or_refunded_order(app, status):
    order = make_order(make_event(), status=status)
    client, url = _manager_client(app, order)
    page = _text(client.get(url + "/resend"))
    assert "its tickets are void, so no confirmation is sent again" in page
    assert "Resend confirmation" not in _order_page(client, url)
    before = snapshot()
    answer = client.post(url + "/resend", data={"csrf_token": csrf_token_of(page), "resends": "0"})
    assert answer.status_code == 409 and "its tickets are void" in _text(answer)
    _still(before)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DOOR])
def test_a_role_without_resend_mail_does_not_find_the_resend(app, role):
    order = make_order(make_event())
    client, url = _manager_client(app, order, role)
    app.config["WTF_CSRF_ENABLED"] = False  # so that only the access rule can refuse
    before = snapshot()
    assert client.get(url + "/resend").status_code == 404
    assert client.post(url + "/resend", data={"resends": "0"}).status_code == 404
    _still(before)
