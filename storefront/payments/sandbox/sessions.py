"""Checkout Sessions: created, retrieved (with expansions), listed, expired by the API
or because their ``expires_at`` passed (the sweep), and lapsed on request by tests."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import params as checks
from . import render
from .errors import invalid_request, missing_param, unknown_param
from .events import Events, RequestInfo
from .ids import new_id, new_session_id
from .money import format_amount, minimum_charge
from .objects import list_page, load_existing, now
from .store import Store, Tx, insert_object, load, save_object

if TYPE_CHECKING:
    from .payments import Payments

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
LOCALES = {"auto", "en", "fr", "de", "es", "it", "nl", "pt"}


class Sessions:
    """Checkout Sessions and their lifecycle (open → complete or expired)."""

    def __init__(self, store: Store, events: Events, payments: Payments) -> None:
        self.store = store
        self.events = events
        self.payments = payments

    def create(self, params: dict[str, Any], *, hosted_base: str, req: RequestInfo) -> dict[str, Any]:
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

        created = now()
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

    def get(self, session_id: str) -> tuple[dict, dict]:
        with self.store.read() as conn:
            return load_existing(conn, session_id, "checkout.session")

    def exists(self, session_id: str) -> bool:
        with self.store.read() as conn:
            return load(conn, session_id, "checkout.session") is not None

    def expand(self, session: dict, expand: list[str]) -> dict:
        """``session`` with the requested fields expanded (``payment_intent``,
        ``payment_intent.latest_charge``, ``line_items``)."""
        session = copy.deepcopy(session)
        for path in expand:
            if path == "line_items":
                session["line_items"] = self.line_items(session["id"], {"limit": "100"})
            elif path in ("payment_intent", "payment_intent.latest_charge"):
                if isinstance(session["payment_intent"], str):
                    session["payment_intent"] = self.payments.expand_payment_intent(
                        self.payments.get_payment_intent(session["payment_intent"]),
                        ["latest_charge"] if path.endswith("latest_charge") else [],
                    )
                elif isinstance(session["payment_intent"], dict) and path.endswith("latest_charge"):
                    session["payment_intent"] = self.payments.expand_payment_intent(
                        session["payment_intent"], ["latest_charge"]
                    )
            else:
                raise invalid_request(f"This property cannot be expanded ({path}).", param="expand")
        return session

    def line_items(self, session_id: str, params: dict[str, Any]) -> dict:
        session, internal = self.get(session_id)
        limit = checks.limit(params)
        items = [render.line_item(i, session["created"]) for i in internal["line_items"]]
        return render.list_object(f"/v1/checkout/sessions/{session_id}/line_items", items[:limit], len(items) > limit)

    def list(self, params: dict[str, Any]) -> dict:
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
        return list_page(self.store, "checkout.session", "/v1/checkout/sessions", params, where, args)

    def expire(self, session_id: str, *, req: RequestInfo) -> dict:
        with self.store.write() as tx:
            session, internal = load_existing(tx, session_id, "checkout.session")
            if session["status"] != "open":
                raise invalid_request(
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f'This Checkout Session has a status of "{session["status"]}".',
                )
            return self._expire(tx, session, internal, req)

    def _expire(self, tx: Tx, session: dict, internal: dict, req: RequestInfo | None) -> dict:
        moment = now()
        session["status"] = "expired"
        session["url"] = None
        save_object(tx, session)
        if isinstance(session["payment_intent"], str):
            pi, pi_internal = load(tx, session["payment_intent"], "payment_intent")
            if pi["status"] in ("requires_payment_method", "requires_action", "requires_confirmation"):
                pi.update(status="canceled", canceled_at=moment, cancellation_reason="expired", next_action=None)
                save_object(tx, pi)
                self.events.emit(tx, "payment_intent.canceled", pi, req=req)
        self.events.emit(tx, "checkout.session.expired", session, {"status": "open"}, req=req)
        return session

    def lapse(self, session_id: str) -> None:
        """Test control: treat the session as past its ``expires_at`` from now on."""
        with self.store.write() as tx:
            session, internal = load_existing(tx, session_id, "checkout.session")
            internal["lapse_at"] = now()
            save_object(tx, session, internal)

    def expire_lapsed(self) -> list[str]:
        """Expire every open session past its ``expires_at`` (or lapsed); returns their ids."""
        moment = now()
        with self.store.read() as conn:
            due = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM objects WHERE kind = 'checkout.session' AND json_extract(data, '$.status') "
                    "= 'open' "
                    "AND (json_extract(data, '$.expires_at') <= ? OR json_extract(internal, '$.lapse_at') <= ?)",
                    (moment, moment),
                )
            ]
        expired: list[str] = []
        for session_id in due:
            with self.store.write() as tx:
                session, internal = load(tx, session_id, "checkout.session")
                if session["status"] == "open":  # re-checked under the write lock
                    self._expire(tx, session, internal, None)
                    expired.append(session_id)
        return expired


def is_past_expiry(session: dict, internal: dict) -> bool:
    """Whether the session's ``expires_at`` passed, or a test lapsed it."""
    moment = now()
    return session["expires_at"] <= moment or (internal.get("lapse_at") or moment + 1) <= moment
