"""What the sandbox does, apart from HTTP: sessions, payments, refunds, events, expiry.

Every change is one transaction on the sandbox's SQLite file (``Store.write``) and
emits its events in that same transaction, so an event exists exactly when the change
it describes does. Deliveries of those events are rows too; ``webhooks.Deliverer``
sends them.

Times are Unix seconds (UTC); money is integer minor units, as on Stripe.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import faults, render
from . import params as checks
from .cards import AUTHENTICATION_FAILED, BANK_DEBIT_FAILED, CARDS, DECLINE_MESSAGES, IBANS, luhn_ok
from .config import SandboxConfig
from .errors import ApiError, invalid_request, missing_param, resource_missing, unknown_param
from .ids import new_id, new_session_id
from .money import format_amount, minimum_charge
from .store import Store, Tx, insert_object, load, load_data, page, save_object, seq_of

# Stripe: expires_at lies 30 minutes to 24 hours after creation. A few seconds of slack
# below the minimum, because a caller computes "now + 30 min" on its own clock before
# the request travels here.
MIN_EXPIRY_SECONDS = 30 * 60
MAX_EXPIRY_SECONDS = 24 * 60 * 60
EXPIRY_SLACK_SECONDS = 10
MAX_AMOUNT = 99_999_999  # Stripe's cap for most currencies, in minor units

# Parameters of POST /v1/checkout/sessions the sandbox implements ...
SESSION_PARAMS = {
    "mode",
    "line_items",
    "success_url",
    "cancel_url",
    "customer_email",
    "client_reference_id",
    "metadata",
    "payment_intent_data",
    "expires_at",
    "expand",
    "locale",
    "submit_type",
}
# ... those it accepts and ignores because they change nothing it models ...
SESSION_PARAMS_IGNORED = {
    "billing_address_collection",
    "allow_promotion_codes",
    "customer_creation",
    "phone_number_collection",
    "ui_mode",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "payment_method_options",
    "custom_text",
}
# ... and Stripe's other ones (stripe-python 16.1.0's SessionCreateParams), refused with
# a clear message rather than silently ignored.
SESSION_PARAMS_UNSUPPORTED = {
    "adaptive_pricing",
    "after_expiration",
    "automatic_tax",
    "branding_settings",
    "consent_collection",
    "currency",
    "custom_fields",
    "customer",
    "customer_account",
    "customer_update",
    "discounts",
    "integration_identifier",
    "invoice_creation",
    "managed_payments",
    "name_collection",
    "optional_items",
    "origin_context",
    "payment_method_collection",
    "payment_method_configuration",
    "payment_method_data",
    "permissions",
    "redirect_on_completion",
    "return_url",
    "saved_payment_method_options",
    "setup_intent_data",
    "shipping_address_collection",
    "shipping_options",
    "subscription_data",
    "tax_id_collection",
    "wallet_options",
}
PI_DATA_PARAMS = {"metadata", "description", "receipt_email", "statement_descriptor", "statement_descriptor_suffix"}
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
LOCALES = {"auto", "en", "fr", "de", "es", "it", "nl", "pt"}


@dataclass
class RequestInfo:
    """The API request that caused a change, for the ``request`` field of its events."""

    id: str | None = None
    idempotency_key: str | None = None


@dataclass
class PaymentResult:
    """What the hosted page shows after a buyer's attempt.

    ``outcome``: ``succeeded``, ``processing`` (bank debit), ``requires_action`` (3-D
    Secure), ``declined``, ``invalid`` (the form itself is wrong), ``not_open``.
    """

    outcome: str
    message: str | None = None
    field_errors: dict[str, str] | None = None
    redirect: str | None = None
    decline_code: str | None = None


class Sandbox:
    """One sandbox: its configuration and its SQLite state."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.wake = threading.Event()  # set when a delivery may be due
        with self.store.write() as tx:
            for url in config.webhook_urls:
                tx.execute(
                    "INSERT INTO endpoints (url, secret) VALUES (?, ?) ON CONFLICT (url) DO UPDATE SET secret "
                    "= excluded.secret",
                    (url, config.webhook_secret),
                )
            # Deliveries a crash interrupted mid-send are sent again (at least once).
            tx.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'")
            # A key whose request died with a process would answer 409 forever; free it. (Not
            # the last minute's: another process on this file may still be running those.)
            tx.execute("DELETE FROM idempotency WHERE state = 'running' AND created < ?", (time.time() - 60,))

    # --- time -----------------------------------------------------------------------

    @staticmethod
    def now() -> int:
        return int(time.time())

    # --- checkout sessions ------------------------------------------------------------

    def create_session(self, params: dict[str, Any], *, hosted_base: str, req: RequestInfo) -> dict[str, Any]:
        for name in params:
            if name == "payment_method_types":
                # Removed from Checkout Session create in API 2026-09-30.endive.
                raise unknown_param(name)
            if name in SESSION_PARAMS_UNSUPPORTED:
                raise invalid_request(f"The Stripe sandbox does not support `{name}` on Checkout Sessions.", param=name)
            if name not in SESSION_PARAMS and name not in SESSION_PARAMS_IGNORED:
                raise unknown_param(name)
        mode = params.get("mode")
        if mode is None:
            raise missing_param("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise invalid_request("Invalid mode: must be one of payment, setup, or subscription", param="mode")
        if mode != "payment":
            raise invalid_request("The Stripe sandbox supports only `mode=payment`.", param="mode")
        if params.get("ui_mode") not in (None, "hosted_page"):
            raise invalid_request("The Stripe sandbox supports only `ui_mode=hosted_page`.", param="ui_mode")
        success_url = params.get("success_url")
        if success_url is None:
            raise missing_param("success_url")
        checks.check_url(success_url, "success_url")
        cancel_url = params.get("cancel_url")
        if cancel_url is not None:
            checks.check_url(cancel_url, "cancel_url")
        items = checks.line_items(params.get("line_items"))
        currency = items[0]["currency"]
        amount_total = sum(i["unit_amount"] * i["quantity"] for i in items)
        if amount_total < minimum_charge(currency):
            raise invalid_request(
                "The Checkout Session's total amount due must add up to at least "
                f"{format_amount(minimum_charge(currency), currency)} {currency}",
                param="line_items",
            )
        if amount_total > MAX_AMOUNT:
            raise invalid_request(
                "The Checkout Session's total amount due must be no more than "
                f"{format_amount(MAX_AMOUNT, currency)} {currency}",
                param="line_items",
            )
        customer_email = params.get("customer_email")
        if customer_email is not None:
            checks.check_email(customer_email, "customer_email")
        client_reference_id = params.get("client_reference_id")
        if client_reference_id is not None:
            if not isinstance(client_reference_id, str) or not 1 <= len(client_reference_id) <= 200:
                raise invalid_request("client_reference_id must be 1 to 200 characters", param="client_reference_id")
        metadata = checks.metadata(params.get("metadata"), "metadata")
        pi_data = params.get("payment_intent_data") or {}
        if not isinstance(pi_data, dict):
            raise invalid_request("Invalid object", param="payment_intent_data")
        for name in pi_data:
            if name not in PI_DATA_PARAMS:
                raise unknown_param(f"payment_intent_data[{name}]")
        pi_metadata = checks.metadata(pi_data.get("metadata"), "payment_intent_data[metadata]")
        locale = params.get("locale")
        if locale is not None and locale not in LOCALES:
            raise invalid_request(f"Invalid locale: {locale}", param="locale")
        submit_type = params.get("submit_type")
        if submit_type is not None and submit_type not in ("auto", "book", "donate", "pay", "subscribe"):
            raise invalid_request(f"Invalid submit_type: {submit_type}", param="submit_type")

        created = self.now()
        expires_at = created + MAX_EXPIRY_SECONDS
        if "expires_at" in params:
            expires_at = checks.integer(params["expires_at"], "expires_at")
            if expires_at < created + MIN_EXPIRY_SECONDS - EXPIRY_SLACK_SECONDS:
                raise invalid_request(
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                    param="expires_at",
                )
            if expires_at > created + MAX_EXPIRY_SECONDS:
                raise invalid_request(
                    "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                    param="expires_at",
                )
        session_id = new_session_id()
        for item in items:
            item["id"] = new_id("li")
            item["price_id"] = new_id("price")
            item["product_id"] = new_id("prod")
        session = render.checkout_session(
            session_id=session_id,
            created=created,
            expires_at=expires_at,
            currency=currency,
            amount_total=amount_total,
            success_url=success_url,
            cancel_url=cancel_url,
            customer_email=customer_email,
            client_reference_id=client_reference_id,
            metadata=metadata,
            locale=locale,
            submit_type=submit_type,
            url=hosted_base.rstrip("/") + "/pay/" + session_id,
        )
        internal = {
            "line_items": items,
            "pi_metadata": pi_metadata,
            "pi_description": pi_data.get("description"),
            "lapse_at": None,
        }
        with self.store.write() as tx:
            insert_object(tx, session, internal)
        return session

    def get_session(self, session_id: str) -> tuple[dict, dict]:
        with self.store.read() as conn:
            return _load_existing(conn, session_id, "checkout.session")

    def expand_session(self, session: dict, expand: list[str]) -> dict:
        """``session`` with the requested fields expanded (``payment_intent``,
        ``payment_intent.latest_charge``, ``line_items``)."""
        session = copy.deepcopy(session)
        for path in expand:
            if path == "line_items":
                session["line_items"] = self.line_items(session["id"], {"limit": "100"})
            elif path in ("payment_intent", "payment_intent.latest_charge"):
                if isinstance(session["payment_intent"], str):
                    session["payment_intent"] = self.expand_payment_intent(
                        self.get_payment_intent(session["payment_intent"]),
                        ["latest_charge"] if path.endswith("latest_charge") else [],
                    )
                elif isinstance(session["payment_intent"], dict) and path.endswith("latest_charge"):
                    session["payment_intent"] = self.expand_payment_intent(session["payment_intent"], ["latest_charge"])
            else:
                raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
        return session

    def line_items(self, session_id: str, params: dict[str, Any]) -> dict:
        session, internal = self.get_session(session_id)
        limit = checks.limit(params)
        items = [render.line_item(i, session["created"]) for i in internal["line_items"]]
        return render.list_object(f"/v1/checkout/sessions/{session_id}/line_items", items[:limit], len(items) > limit)

    def list_sessions(self, params: dict[str, Any]) -> dict:
        where: list[str] = []
        args: list[Any] = []
        checks.created_filter(params.get("created"), where, args)
        status = params.get("status")
        if status is not None:
            if status not in ("open", "complete", "expired"):
                raise invalid_request("Invalid status: must be one of open, complete, or expired", param="status")
            where.append("json_extract(data, '$.status') = ?")
            args.append(status)
        if params.get("payment_intent") is not None:
            where.append("json_extract(data, '$.payment_intent') = ?")
            args.append(params["payment_intent"])
        email = (
            (params.get("customer_details") or {}).get("email")
            if isinstance(params.get("customer_details"), dict)
            else None
        )
        if email is not None:
            where.append("json_extract(data, '$.customer_details.email') = ?")
            args.append(email)
        checks.only(
            params,
            {
                "created",
                "status",
                "payment_intent",
                "customer_details",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        return self._list("checkout.session", "/v1/checkout/sessions", params, where, args)

    def expire_session(self, session_id: str, *, req: RequestInfo) -> dict:
        with self.store.write() as tx:
            session, internal = _load_existing(tx, session_id, "checkout.session")
            if session["status"] != "open":
                raise invalid_request(
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This Checkout Session has a status of "{session["status"]}".',
                )
            return self._expire(tx, session, internal, req)

    def _expire(self, tx: Tx, session: dict, internal: dict, req: RequestInfo | None) -> dict:
        now = self.now()
        session["status"] = "expired"
        session["url"] = None
        save_object(tx, session)
        if isinstance(session["payment_intent"], str):
            pi, pi_internal = load(tx, session["payment_intent"], "payment_intent")
            if pi["status"] in ("requires_payment_method", "requires_action", "requires_confirmation"):
                pi.update(status="canceled", canceled_at=now, cancellation_reason="expired", next_action=None)
                save_object(tx, pi)
                self._emit(tx, "payment_intent.canceled", pi, req=req)
        self._emit(tx, "checkout.session.expired", session, {"status": "open"}, req=req)
        return session

    def lapse_session(self, session_id: str) -> None:
        """Test control: treat the session as past its ``expires_at`` from now on."""
        with self.store.write() as tx:
            session, internal = _load_existing(tx, session_id, "checkout.session")
            internal["lapse_at"] = self.now()
            save_object(tx, session, internal)

    def sweep(self) -> dict[str, list[str]]:
        """Expire open sessions past ``expires_at``; settle bank debits that are due."""
        now = self.now()
        expired: list[str] = []
        settled: list[str] = []
        with self.store.read() as conn:
            due = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM objects WHERE kind = 'checkout.session' AND json_extract(data, '$.status') "
                    "= 'open' "
                    "AND (json_extract(data, '$.expires_at') <= ? OR json_extract(internal, '$.lapse_at') <= ?)",
                    (now, now),
                )
            ]
            due_debits = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM objects WHERE kind = 'payment_intent' AND json_extract(data, '$.status') = "
                    "'processing' "
                    "AND json_extract(internal, '$.settle_at') <= ?",
                    (now,),
                )
            ]
        for session_id in due:
            with self.store.write() as tx:
                session, internal = load(tx, session_id, "checkout.session")
                if session["status"] == "open":  # re-checked under the write lock
                    self._expire(tx, session, internal, None)
                    expired.append(session_id)
        for pi_id in due_debits:
            if self.settle(pi_id, None, only_if_due=True):
                settled.append(pi_id)
        return {"expired": expired, "settled": settled}

    # --- the buyer pays (hosted page, or the control API) -----------------------------

    def pay(self, session_id: str, form: dict[str, str]) -> PaymentResult:
        """One attempt from the hosted page's form.

        ``form``: ``email``, ``name``, ``method`` (``card`` or ``bank_debit``), and
        ``card_number``, ``card_expiry`` (MM / YY), ``card_cvc`` or ``iban``.
        """
        email = (form.get("email") or "").strip()
        fixed_email = self._customer_email(session_id)
        if fixed_email:
            email = fixed_email
        name = (form.get("name") or "").strip() or None
        method = form.get("method") or "card"
        errors: dict[str, str] = {}
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            errors["email"] = "Your email address is invalid." if email else "Your email address is incomplete."
        card = None
        number = re.sub(r"[\s-]", "", form.get("card_number") or "")
        iban = re.sub(r"\s", "", form.get("iban") or "").upper()
        if method == "card":
            if not number.isdigit() or len(number) < 12:
                errors["card_number"] = (
                    "Your card number is incomplete." if len(number) < 12 else "Your card number is invalid."
                )
            elif not luhn_ok(number):
                errors["card_number"] = "Your card number is invalid."
            expiry = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", form.get("card_expiry") or "")
            exp_month = exp_year = 0
            if not expiry:
                errors["card_expiry"] = "Your card's expiration date is incomplete."
            else:
                exp_month, exp_year = int(expiry.group(1)), int(expiry.group(2))
                exp_year += 2000 if exp_year < 100 else 0
                today = time.gmtime()
                if not 1 <= exp_month <= 12:
                    errors["card_expiry"] = "Your card's expiration month is invalid."
                elif (exp_year, exp_month) < (today.tm_year, today.tm_mon):
                    errors["card_expiry"] = "Your card's expiration year is in the past."
            cvc = (form.get("card_cvc") or "").strip()
            if not re.fullmatch(r"\d{3,4}", cvc):
                errors["card_cvc"] = "Your card's security code is incomplete."
            if "card_number" not in errors:
                card = CARDS.get(number) or {
                    "brand": "mastercard" if number.startswith("5") else "visa",
                    "outcome": "decline",
                    "code": "card_declined",
                    "decline_code": "test_mode_live_card",
                }
        elif method == "bank_debit":
            if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
                errors["iban"] = "Your IBAN is incomplete." if len(iban) < 15 else "Your IBAN is invalid."
        else:
            errors["method"] = "Choose a payment method."
        if errors:
            return PaymentResult("invalid", field_errors=errors)

        with self.store.write() as tx:
            session, internal = _load_existing(tx, session_id, "checkout.session")
            if session["status"] != "open" or self._is_past_expiry(session, internal):
                return PaymentResult("not_open")
            # As on Stripe, a customer_email given at creation is the email; the page shows it read-only.
            email = session["customer_email"] or email
            pi = self._payment_intent_for(tx, session, internal, "card" if method == "card" else "sepa_debit", email)
            details = (
                render.card_details(number, exp_month, exp_year, card["brand"])
                if method == "card"
                else render.sepa_details(iban)
            )
            pm_id = new_id("pm")
            session["customer_details"] = render.customer_details(email, name)
            save_object(tx, session)
            if method == "bank_debit":
                return self._start_bank_debit(tx, session, pi, pm_id, details, email, name, iban)
            if card["outcome"] == "3ds":
                pi.update(
                    status="requires_action",
                    payment_method=pm_id,
                    payment_method_types=["card"],
                    next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}},
                )
                internal_pi = {
                    "session_id": session_id,
                    "pending_card": {"pm": pm_id, "details": details, "email": email, "name": name},
                }
                save_object(tx, pi, internal_pi)
                return PaymentResult("requires_action")
            if card["outcome"] == "succeed":
                self._succeed_card(tx, session, pi, pm_id, details, email, name)
                return PaymentResult("succeeded", redirect=self.success_redirect(session))
            return self._decline(tx, session, pi, pm_id, details, email, name, card["code"], card["decline_code"])

    def _customer_email(self, session_id: str) -> str | None:
        with self.store.read() as conn:
            session = load_data(conn, session_id, "checkout.session")
        if session is None:
            raise resource_missing("checkout.session", session_id)
        return session["customer_email"]

    def authenticate(self, session_id: str, passed: bool) -> PaymentResult:
        """The buyer completes (or fails) the 3-D Secure step of a pending card payment."""
        with self.store.write() as tx:
            session, internal = _load_existing(tx, session_id, "checkout.session")
            if session["status"] != "open" or not isinstance(session["payment_intent"], str):
                return PaymentResult("not_open")
            pi, pi_internal = load(tx, session["payment_intent"], "payment_intent")
            pending = pi_internal.get("pending_card")
            if pi["status"] != "requires_action" or not pending:
                return PaymentResult("not_open")
            pi["next_action"] = None
            pi_internal.pop("pending_card")
            save_object(tx, pi, pi_internal)
            details = pending["details"]
            details["card"]["three_d_secure"] = {
                "authentication_flow": "challenge",
                "result": "authenticated" if passed else "failed",
                "version": "2.2.0",
            }
            if passed:
                self._succeed_card(tx, session, pi, pending["pm"], details, pending["email"], pending["name"])
                return PaymentResult("succeeded", redirect=self.success_redirect(session))
            return self._decline(
                tx,
                session,
                pi,
                pending["pm"],
                details,
                pending["email"],
                pending["name"],
                "payment_intent_authentication_failure",
                None,
                message=AUTHENTICATION_FAILED,
            )

    def pending_authentication(self, session_id: str) -> bool:
        session, _ = self.get_session(session_id)
        if session["status"] != "open" or not isinstance(session["payment_intent"], str):
            return False
        return self.get_payment_intent(session["payment_intent"])["status"] == "requires_action"

    def success_redirect(self, session: dict) -> str:
        return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])

    def _is_past_expiry(self, session: dict, internal: dict) -> bool:
        now = self.now()
        return session["expires_at"] <= now or (internal.get("lapse_at") or now + 1) <= now

    def _payment_intent_for(self, tx: Tx, session: dict, internal: dict, method_type: str, email: str) -> dict:
        """The session's PaymentIntent, created at the buyer's first confirmation (API ≥ 2022-08-01)."""
        if isinstance(session["payment_intent"], str):
            pi, _ = load(tx, session["payment_intent"], "payment_intent")
            pi["payment_method_types"] = [method_type]
            return pi
        pi = render.payment_intent(
            created=self.now(),
            amount=session["amount_total"],
            currency=session["currency"],
            metadata=internal.get("pi_metadata") or {},
            description=internal.get("pi_description"),
            payment_method_type=method_type,
            receipt_email=None,
        )
        insert_object(tx, pi, {"session_id": session["id"]})
        session["payment_intent"] = pi["id"]
        save_object(tx, session)
        return pi

    def _new_charge(
        self, tx: Tx, pi: dict, pm_id: str, details: dict, email: str, name: str | None, status: str, **failure
    ) -> dict:
        ch = render.charge(
            created=self.now(),
            amount=pi["amount"],
            currency=pi["currency"],
            payment_intent_id=pi["id"],
            payment_method_id=pm_id,
            payment_method_details=details,
            billing_email=email,
            billing_name=name,
            metadata=pi["metadata"],
            description=pi["description"],
            status=status,
            **failure,
        )
        insert_object(tx, ch)
        return ch

    def _succeed_card(
        self, tx: Tx, session: dict, pi: dict, pm_id: str, details: dict, email: str, name: str | None
    ) -> None:
        ch = self._new_charge(tx, pi, pm_id, details, email, name, "succeeded")
        self._emit(tx, "charge.succeeded", ch)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=ch["id"],
            payment_method=pm_id,
            last_payment_error=None,
            next_action=None,
        )
        save_object(tx, pi)
        self._emit(tx, "payment_intent.succeeded", pi)
        session.update(status="complete", payment_status="paid", url=None)
        save_object(tx, session)
        self._emit(tx, "checkout.session.completed", session)

    def _decline(
        self,
        tx: Tx,
        session: dict,
        pi: dict,
        pm_id: str,
        details: dict,
        email: str,
        name: str | None,
        code: str,
        decline_code: str | None,
        *,
        message: str | None = None,
    ) -> PaymentResult:
        message = message or DECLINE_MESSAGES.get(decline_code or "", "Your card was declined.")
        ch = self._new_charge(
            tx,
            pi,
            pm_id,
            details,
            email,
            name,
            "failed",
            failure_code=code,
            failure_message=message,
            outcome_reason=decline_code,
        )
        self._emit(tx, "charge.failed", ch)
        error: dict[str, Any] = {
            "type": "card_error",
            "code": code,
            "message": message,
            "charge": ch["id"],
            "doc_url": "https://docs.stripe.com/error-codes/" + code.replace("_", "-"),
        }
        if code == "card_declined":
            error["decline_code"] = decline_code
        pi.update(
            status="requires_payment_method",
            latest_charge=ch["id"],
            payment_method=None,
            last_payment_error=error,
            next_action=None,
        )
        save_object(tx, pi)
        self._emit(tx, "payment_intent.payment_failed", pi)
        return PaymentResult("declined", message=message, decline_code=decline_code or code)

    def _start_bank_debit(
        self, tx: Tx, session: dict, pi: dict, pm_id: str, details: dict, email: str, name: str | None, iban: str
    ) -> PaymentResult:
        ch = self._new_charge(tx, pi, pm_id, details, email, name, "pending")
        ch["outcome"] = None
        save_object(tx, ch)
        self._emit(tx, "charge.pending", ch)
        pi.update(
            status="processing",
            latest_charge=ch["id"],
            payment_method=pm_id,
            last_payment_error=None,
            payment_method_types=["sepa_debit"],
            next_action=None,
        )
        settle_after = self.config.bank_debit_settle_seconds
        save_object(
            tx,
            pi,
            {
                "session_id": session["id"],
                "settle_outcome": IBANS.get(iban, "succeeded"),
                "settle_at": None if settle_after is None else self.now() + settle_after,
            },
        )
        self._emit(tx, "payment_intent.processing", pi)
        session.update(status="complete", payment_status="unpaid", url=None)
        save_object(tx, session)
        self._emit(tx, "checkout.session.completed", session)
        return PaymentResult("processing", redirect=self.success_redirect(session))

    def settle(self, pi_id: str, outcome: str | None, *, only_if_due: bool = False) -> bool:
        """Settle a processing bank debit: ``succeeded``/``failed``, or its IBAN's outcome.

        Returns False when the PaymentIntent is not processing (already settled)."""
        if outcome not in (None, "succeeded", "failed"):
            raise invalid_request("outcome must be succeeded or failed", param="outcome")
        with self.store.write() as tx:
            pi, internal = _load_existing(tx, pi_id, "payment_intent")
            if pi["status"] != "processing":
                return False
            if only_if_due and (internal.get("settle_at") is None or internal["settle_at"] > self.now()):
                return False
            outcome = outcome or internal.get("settle_outcome") or "succeeded"
            ch = load_data(tx, pi["latest_charge"], "charge")
            session = load_data(tx, internal["session_id"], "checkout.session")
            if outcome == "succeeded":
                ch.update(
                    status="succeeded",
                    paid=True,
                    captured=True,
                    amount_captured=ch["amount"],
                    balance_transaction=new_id("txn"),
                    outcome={
                        "network_status": "approved_by_network",
                        "reason": None,
                        "risk_level": "not_assessed",
                        "seller_message": "Payment complete.",
                        "type": "authorized",
                    },
                )
                save_object(tx, ch)
                self._emit(tx, "charge.succeeded", ch)
                pi.update(status="succeeded", amount_received=pi["amount"])
                save_object(tx, pi)
                self._emit(tx, "payment_intent.succeeded", pi)
                session["payment_status"] = "paid"
                save_object(tx, session)
                self._emit(tx, "checkout.session.async_payment_succeeded", session, {"payment_status": "unpaid"})
            else:
                ch.update(
                    status="failed",
                    failure_code="insufficient_funds",
                    failure_message=BANK_DEBIT_FAILED,
                    outcome={
                        "network_status": "declined_by_network",
                        "reason": "insufficient_funds",
                        "risk_level": "not_assessed",
                        "seller_message": BANK_DEBIT_FAILED,
                        "type": "issuer_declined",
                    },
                )
                save_object(tx, ch)
                self._emit(tx, "charge.failed", ch)
                pi.update(
                    status="requires_payment_method",
                    payment_method=None,
                    last_payment_error={
                        "type": "card_error",
                        "code": "payment_method_provider_decline",
                        "message": BANK_DEBIT_FAILED,
                        "charge": ch["id"],
                    },
                )
                save_object(tx, pi)
                self._emit(tx, "payment_intent.payment_failed", pi)
                self._emit(tx, "checkout.session.async_payment_failed", session)
            return True

    # --- payment intents, charges, refunds --------------------------------------------

    def get_payment_intent(self, pi_id: str) -> dict:
        with self.store.read() as conn:
            pi = load_data(conn, pi_id, "payment_intent")
        if pi is None:
            raise resource_missing("payment_intent", pi_id)
        return pi

    def expand_payment_intent(self, pi: dict, expand: list[str]) -> dict:
        pi = copy.deepcopy(pi)
        for path in expand:
            if path != "latest_charge":
                raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
            if isinstance(pi["latest_charge"], str):
                with self.store.read() as conn:
                    pi["latest_charge"] = load_data(conn, pi["latest_charge"], "charge")
        return pi

    def create_refund(self, params: dict[str, Any], *, req: RequestInfo) -> dict:
        checks.only(params, {"payment_intent", "charge", "amount", "reason", "metadata", "expand"})
        if params.get("payment_intent") is None and params.get("charge") is None:
            raise invalid_request("Must provide either `charge` or `payment_intent`.")
        reason = params.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid_request(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer", param="reason"
            )
        metadata = checks.metadata(params.get("metadata"), "metadata")
        amount = checks.integer(params["amount"], "amount") if params.get("amount") is not None else None
        if amount is not None and amount < 1:
            raise invalid_request("Invalid positive integer", param="amount")
        with self.store.write() as tx:
            if params.get("payment_intent") is not None:
                pi = load_data(tx, params["payment_intent"], "payment_intent")
                if pi is None:
                    raise resource_missing(
                        "payment_intent", params["payment_intent"], param="payment_intent", status=400
                    )
                if pi["status"] != "succeeded" or not pi["latest_charge"]:
                    raise invalid_request(
                        f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                        param="payment_intent",
                    )
                ch = load_data(tx, pi["latest_charge"], "charge")
                if params.get("charge") not in (None, ch["id"]):
                    raise invalid_request("The charge does not belong to this PaymentIntent.", param="charge")
            else:
                ch = load_data(tx, params["charge"], "charge")
                if ch is None:
                    raise resource_missing("charge", params["charge"], param="charge", status=400)
                if ch["status"] != "succeeded":
                    raise invalid_request(
                        f"Charge {ch['id']} has not succeeded; there is nothing to refund.", param="charge"
                    )
            remaining = ch["amount_captured"] - ch["amount_refunded"]
            if remaining <= 0:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    f"Charge {ch['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            if amount is None:
                amount = remaining
            if amount > remaining:
                what = "charge amount" if ch["amount_refunded"] == 0 else "unrefunded amount on charge"
                raise invalid_request(
                    f"Refund amount ({format_amount(amount, ch['currency'])}) is greater than {what} "
                    f"({format_amount(remaining, ch['currency'])})",
                    param="amount",
                    code="amount_too_large",
                )
            refund = render.refund(
                created=self.now(),
                amount=amount,
                currency=ch["currency"],
                charge_id=ch["id"],
                payment_intent_id=ch["payment_intent"],
                reason=reason,
                metadata=metadata,
            )
            insert_object(tx, refund)
            self._emit(tx, "refund.created", refund, req=req)
            previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
            save_object(tx, ch)
            self._emit(tx, "charge.refunded", ch, previous, req=req)
            return refund

    def list_refunds(self, params: dict[str, Any]) -> dict:
        checks.only(
            params, {"payment_intent", "charge", "created", "limit", "starting_after", "ending_before", "expand"}
        )
        where: list[str] = []
        args: list[Any] = []
        checks.created_filter(params.get("created"), where, args)
        for name in ("payment_intent", "charge"):
            if params.get(name) is not None:
                where.append(f"json_extract(data, '$.{name}') = ?")
                args.append(params[name])
        return self._list("refund", "/v1/refunds", params, where, args)

    # --- events -----------------------------------------------------------------------

    def list_events(self, params: dict[str, Any]) -> dict:
        checks.only(
            params,
            {"type", "types", "created", "delivery_success", "limit", "starting_after", "ending_before", "expand"},
        )
        where: list[str] = []
        args: list[Any] = []
        checks.created_filter(params.get("created"), where, args)
        if params.get("type") is not None and params.get("types") is not None:
            raise invalid_request("You may only specify one of these parameters: type, types.", param="types")
        types = params.get("types")
        if params.get("type") is not None:
            pattern = params["type"]
            if "*" in pattern:
                where.append("json_extract(data, '$.type') LIKE ?")
                args.append(pattern.replace("*", "%"))
            else:
                where.append("json_extract(data, '$.type') = ?")
                args.append(pattern)
        elif types is not None:
            if not isinstance(types, list) or not types:
                raise invalid_request("Invalid array", param="types")
            where.append(f"json_extract(data, '$.type') IN ({','.join('?' * len(types))})")
            args.extend(types)
        success = params.get("delivery_success")
        if success is not None:
            if success not in ("true", "false"):
                raise invalid_request("Invalid boolean: " + str(success), param="delivery_success")
            failing = "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = objects.id AND d.state <> 'delivered')"
            where.append(f"NOT {failing}" if success == "true" else failing)
        return self._list("event", "/v1/events", params, where, args)

    def get_event(self, event_id: str) -> dict:
        with self.store.read() as conn:
            ev = load_data(conn, event_id, "event")
        if ev is None:
            raise resource_missing("event", event_id)
        return ev

    def _emit(
        self, tx: Tx, type_: str, obj: dict, previous: dict | None = None, *, req: RequestInfo | None = None
    ) -> dict:
        """Record an event about ``obj`` (as it is now) and schedule its deliveries."""
        enabled = self.config.webhook_events
        endpoints = (
            []
            if enabled and type_ not in enabled
            else tx.execute("SELECT url, secret FROM endpoints ORDER BY id").fetchall()
        )
        ev = render.event(
            created=self.now(),
            type_=type_,
            obj=copy.deepcopy(obj),
            previous_attributes=previous,
            pending_webhooks=len(endpoints),
            request_id=req.id if req else None,
            idempotency_key=req.idempotency_key if req else None,
        )
        insert_object(tx, ev)
        for endpoint in endpoints:
            self._schedule(tx, ev, endpoint["url"], endpoint["secret"])
        tx.after_commit(self.wake.set)
        return ev

    def _schedule(self, tx: Tx, ev: dict, url: str, secret: str) -> None:
        now = time.time()
        state, due, group, copies = "pending", now, None, 1
        fault = faults.take(tx, faults.DELIVERY_KINDS, event_type=ev["type"])
        if fault:
            if fault["kind"] == "duplicate":
                copies = 2
            elif fault["kind"] == "delay":
                due = now + float(fault["seconds"])
            elif fault["kind"] == "drop":
                state, due = "dropped", None
            elif fault["kind"] == "reorder":
                state, group = "held", fault["id"]
        for _ in range(copies):
            tx.execute(
                "INSERT INTO deliveries (event_id, event_type, endpoint_url, secret, state, next_attempt_at, "
                "fault, hold_group, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ev["id"], ev["type"], url, secret, state, due, fault["kind"] if fault else None, group, now, now),
            )
        if fault and fault["kind"] == "reorder" and fault["remaining"] == 0:
            release_held(tx, group)

    # --- lists --------------------------------------------------------------------------

    def _list(self, kind: str, url: str, params: dict[str, Any], where: list[str], args: list[Any]) -> dict:
        limit = checks.limit(params)
        cursors = {}
        with self.store.read() as conn:
            for name in ("starting_after", "ending_before"):
                if params.get(name) is not None:
                    seq = seq_of(conn, params[name], kind)
                    if seq is None:
                        raise resource_missing(kind, params[name], param=name, status=400)
                    cursors[name] = seq
            items, has_more = page(conn, kind, where=where, args=args, limit=limit, **cursors)
        return render.list_object(url, items, has_more)


def _load_existing(conn, object_id: str, kind: str) -> tuple[dict, dict]:
    """The object and its sandbox-only state, or Stripe's resource_missing error."""
    found = load(conn, object_id, kind)
    if found is None:
        raise resource_missing(kind, object_id)
    return found


def release_held(tx: Tx, group: int | None = None) -> None:
    """Send held (reordered) deliveries, newest first."""
    rows = tx.execute(
        "SELECT id FROM deliveries WHERE state = 'held'"
        + (" AND hold_group = ?" if group is not None else "")
        + " ORDER BY id DESC",
        (group,) if group is not None else (),
    ).fetchall()
    now = time.time()
    for i, row in enumerate(rows):
        tx.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated = ? WHERE id = ?",
            (now + i * 0.001, now, row["id"]),
        )
