"""The buyer pays: the hosted page's form (or the control API) confirms a session's
payment with a test card or IBAN. Creates the PaymentIntent at the first attempt
(API >= 2022-08-01), its charges, 3-D Secure steps, declines, and bank debits that
complete unpaid and settle later. Also retrieves PaymentIntents for the API."""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass
from typing import Any

from . import render
from .cards import (
    AUTHENTICATION_FAILED,
    BANK_DEBIT_FAILED,
    CARDS,
    DECLINE_MESSAGES,
    GENERIC_DECLINE,
    IBANS,
    N_,
    luhn_ok,
)
from .config import SandboxConfig
from .errors import invalid_request, resource_missing
from .events import Events
from .ids import new_id
from .objects import load_existing, now
from .sessions import is_past_expiry
from .store import Store, Tx, insert_object, load, load_data, save_object


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


class Payments:
    """Payment attempts on Checkout Sessions, and the PaymentIntents and charges they make."""

    def __init__(self, store: Store, events: Events, config: SandboxConfig) -> None:
        self.store = store
        self.events = events
        self.config = config

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
            errors["email"] = N_("Your email address is invalid.") if email else N_("Your email address is incomplete.")
        card = None
        number = re.sub(r"[\s-]", "", form.get("card_number") or "")
        iban = re.sub(r"\s", "", form.get("iban") or "").upper()
        if method == "card":
            if not number.isdigit() or len(number) < 12:
                errors["card_number"] = (
                    N_("Your card number is incomplete.") if len(number) < 12 else N_("Your card number is invalid.")
                )
            elif not luhn_ok(number):
                errors["card_number"] = N_("Your card number is invalid.")
            expiry = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", form.get("card_expiry") or "")
            exp_month = exp_year = 0
            if not expiry:
                errors["card_expiry"] = N_("Your card's expiration date is incomplete.")
            else:
                exp_month, exp_year = int(expiry.group(1)), int(expiry.group(2))
                exp_year += 2000 if exp_year < 100 else 0
                today = time.gmtime()
                if not 1 <= exp_month <= 12:
                    errors["card_expiry"] = N_("Your card's expiration month is invalid.")
                elif (exp_year, exp_month) < (today.tm_year, today.tm_mon):
                    errors["card_expiry"] = N_("Your card's expiration year is in the past.")
            cvc = (form.get("card_cvc") or "").strip()
            if not re.fullmatch(r"\d{3,4}", cvc):
                errors["card_cvc"] = N_("Your card's security code is incomplete.")
            if "card_number" not in errors:
                card = CARDS.get(number) or {
                    "brand": "mastercard" if number.startswith("5") else "visa",
                    "outcome": "decline",
                    "code": "card_declined",
                    "decline_code": "test_mode_live_card",
                }
        elif method == "bank_debit":
            if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
                errors["iban"] = N_("Your IBAN is incomplete.") if len(iban) < 15 else N_("Your IBAN is invalid.")
        else:
            errors["method"] = N_("Choose a payment method.")
        if errors:
            return PaymentResult("invalid", field_errors=errors)

        with self.store.write() as tx:
            session, internal = load_existing(tx, session_id, "checkout.session")
            if session["status"] != "open" or is_past_expiry(session, internal):
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
                    "pending_card": {
                        "pm": pm_id,
                        "details": details,
                        "email": email,
                        "name": name,
                        "refund": card.get("refund", "succeed"),
                    },
                }
                save_object(tx, pi, internal_pi)
                return PaymentResult("requires_action")
            if card["outcome"] == "succeed":
                self._succeed_card(tx, session, pi, pm_id, details, email, name, card.get("refund", "succeed"))
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
            session, internal = load_existing(tx, session_id, "checkout.session")
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
                self._succeed_card(
                    tx,
                    session,
                    pi,
                    pending["pm"],
                    details,
                    pending["email"],
                    pending["name"],
                    pending.get("refund", "succeed"),
                )
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
        """Whether a 3-D Secure step waits for the buyer on this session."""
        with self.store.read() as conn:
            session, _ = load_existing(conn, session_id, "checkout.session")
        if session["status"] != "open" or not isinstance(session["payment_intent"], str):
            return False
        return self.get_payment_intent(session["payment_intent"])["status"] == "requires_action"

    def success_redirect(self, session: dict) -> str:
        return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])

    def _payment_intent_for(self, tx: Tx, session: dict, internal: dict, method_type: str, email: str) -> dict:
        """The session's PaymentIntent, created at the buyer's first confirmation (API ≥ 2022-08-01)."""
        if isinstance(session["payment_intent"], str):
            pi, _ = load(tx, session["payment_intent"], "payment_intent")
            pi["payment_method_types"] = [method_type]
            return pi
        pi = render.payment_intent(
            created=now(),
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
            created=now(),
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
        self,
        tx: Tx,
        session: dict,
        pi: dict,
        pm_id: str,
        details: dict,
        email: str,
        name: str | None,
        refund_behaviour: str,
    ) -> None:
        ch = self._new_charge(tx, pi, pm_id, details, email, name, "succeeded")
        save_object(tx, ch, {"refund_behaviour": refund_behaviour})
        self.events.emit(tx, "charge.succeeded", ch)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=ch["id"],
            payment_method=pm_id,
            last_payment_error=None,
            next_action=None,
        )
        save_object(tx, pi)
        self.events.emit(tx, "payment_intent.succeeded", pi)
        session.update(status="complete", payment_status="paid", url=None)
        save_object(tx, session)
        self.events.emit(tx, "checkout.session.completed", session)

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
        message = message or DECLINE_MESSAGES.get(decline_code or "", GENERIC_DECLINE)
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
        self.events.emit(tx, "charge.failed", ch)
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
        self.events.emit(tx, "payment_intent.payment_failed", pi)
        return PaymentResult("declined", message=message, decline_code=decline_code or code)

    def _start_bank_debit(
        self, tx: Tx, session: dict, pi: dict, pm_id: str, details: dict, email: str, name: str | None, iban: str
    ) -> PaymentResult:
        ch = self._new_charge(tx, pi, pm_id, details, email, name, "pending")
        ch["outcome"] = None
        save_object(tx, ch, {"refund_behaviour": "pending"})
        self.events.emit(tx, "charge.pending", ch)
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
                "settle_at": None if settle_after is None else now() + settle_after,
            },
        )
        self.events.emit(tx, "payment_intent.processing", pi)
        session.update(status="complete", payment_status="unpaid", url=None)
        save_object(tx, session)
        self.events.emit(tx, "checkout.session.completed", session)
        return PaymentResult("processing", redirect=self.success_redirect(session))

    def settle(self, pi_id: str, outcome: str | None, *, only_if_due: bool = False) -> bool:
        """Settle a processing bank debit: ``succeeded``/``failed``, or its IBAN's outcome.

        Returns False when the PaymentIntent is not processing (already settled)."""
        if outcome not in (None, "succeeded", "failed"):
            raise invalid_request("outcome must be succeeded or failed", param="outcome")
        with self.store.write() as tx:
            pi, internal = load_existing(tx, pi_id, "payment_intent")
            if pi["status"] != "processing":
                return False
            if only_if_due and (internal.get("settle_at") is None or internal["settle_at"] > now()):
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
                self.events.emit(tx, "charge.succeeded", ch)
                pi.update(status="succeeded", amount_received=pi["amount"])
                save_object(tx, pi)
                self.events.emit(tx, "payment_intent.succeeded", pi)
                session["payment_status"] = "paid"
                save_object(tx, session)
                self.events.emit(tx, "checkout.session.async_payment_succeeded", session, {"payment_status": "unpaid"})
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
                self.events.emit(tx, "charge.failed", ch)
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
                self.events.emit(tx, "payment_intent.payment_failed", pi)
                self.events.emit(tx, "checkout.session.async_payment_failed", session)
            return True

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

    def settle_due(self) -> list[str]:
        """Settle every processing bank debit whose time has come; returns their ids."""
        with self.store.read() as conn:
            due = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM objects WHERE kind = 'payment_intent' AND json_extract(data, '$.status') = "
                    "'processing' "
                    "AND json_extract(internal, '$.settle_at') <= ?",
                    (now(),),
                )
            ]
        return [pi_id for pi_id in due if self.settle(pi_id, None, only_if_due=True)]
