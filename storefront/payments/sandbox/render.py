"""Stripe objects as the API returns them (API version 2026-10-28.endive, test mode).

Builders return plain dicts with every field Stripe's spec requires; ids of related
objects stay ids until a caller expands them (``expand``).
"""

from __future__ import annotations

from typing import Any

from .ids import new_id, random_token

API_VERSION = "2026-10-28.endive"


def checkout_session(
    *,
    session_id: str,
    created: int,
    expires_at: int,
    currency: str,
    amount_total: int,
    success_url: str,
    cancel_url: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    metadata: dict[str, str],
    locale: str | None,
    submit_type: str | None,
    url: str,
) -> dict[str, Any]:
    """A new, open Checkout Session in payment mode: unpaid, no PaymentIntent yet."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": expires_at,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": locale,
        "metadata": metadata,
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card", "sepa_debit"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "presentment_details": None,
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": submit_type,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "wallet_options": None,
    }


def customer_details(email: str, name: str | None) -> dict[str, Any]:
    return {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def line_item(item: dict[str, Any], created: int) -> dict[str, Any]:
    """A Checkout line item (``object: "item"``) from the stored price_data."""
    total = item["unit_amount"] * item["quantity"]
    return {
        "id": item["id"],
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": total,
        "amount_tax": 0,
        "amount_total": total,
        "currency": item["currency"],
        "description": item["name"],
        "price": {
            "id": item["price_id"],
            "object": "price",
            "active": False,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": item["currency"],
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": item["product_id"],
            "recurring": None,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time",
            "unit_amount": item["unit_amount"],
            "unit_amount_decimal": str(item["unit_amount"]),
        },
        "quantity": item["quantity"],
    }


def payment_intent(
    *,
    created: int,
    amount: int,
    currency: str,
    metadata: dict[str, str],
    description: str | None,
    payment_method_type: str,
    receipt_email: str | None,
) -> dict[str, Any]:
    """The PaymentIntent a Checkout Session creates when the buyer first confirms."""
    pi_id = new_id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{random_token(25)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": [payment_method_type],
        "processing": None,
        "receipt_email": receipt_email,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def card_details(number: str, exp_month: int, exp_year: int, brand: str) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {
            "amount_authorized": None,
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": random_token(16),
            "funding": "credit",
            "installments": None,
            "last4": number[-4:],
            "mandate": None,
            "network": brand,
            "network_token": {"used": False},
            "three_d_secure": None,
            "wallet": None,
        },
    }


def sepa_details(iban: str) -> dict[str, Any]:
    return {
        "type": "sepa_debit",
        "sepa_debit": {
            "bank_code": iban[4:12],
            "branch_code": None,
            "country": iban[:2],
            "fingerprint": random_token(16),
            "last4": iban[-4:],
            "mandate": new_id("mandate"),
        },
    }


def charge(
    *,
    created: int,
    amount: int,
    currency: str,
    payment_intent_id: str,
    payment_method_id: str,
    payment_method_details: dict[str, Any],
    billing_email: str | None,
    billing_name: str | None,
    metadata: dict[str, str],
    description: str | None,
    status: str,
    failure_code: str | None = None,
    failure_message: str | None = None,
    outcome_reason: str | None = None,
) -> dict[str, Any]:
    """A charge: ``succeeded``, ``pending`` (bank debit in flight) or ``failed``."""
    ch_id = new_id("ch")
    paid = status == "succeeded"
    if status == "failed":
        outcome = {
            "network_status": "declined_by_network",
            "reason": outcome_reason,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    else:
        outcome = {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "id": ch_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if paid else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if paid else None,
        "billing_details": {
            "address": None,
            "email": billing_email,
            "name": billing_name,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "STOREFRONT SANDBOX",
        "captured": paid,
        "created": created,
        "currency": currency,
        "customer": None,
        "description": description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": paid,
        "payment_intent": payment_intent_id,
        "payment_method": payment_method_id,
        "payment_method_details": payment_method_details,
        "radar_options": {},
        "receipt_email": billing_email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    *,
    created: int,
    amount: int,
    currency: str,
    charge_id: str,
    payment_intent_id: str,
    reason: str | None,
    metadata: dict[str, str],
    status: str,
) -> dict[str, Any]:
    """A refund as created: ``succeeded`` or ``pending`` (``refunds`` settles it later)."""
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": charge_id,
        "created": created,
        "currency": currency,
        "destination_details": None,
        "metadata": metadata,
        "payment_intent": payment_intent_id,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def event(
    *,
    created: int,
    type_: str,
    obj: dict[str, Any],
    previous_attributes: dict[str, Any] | None,
    pending_webhooks: int,
    request_id: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous_attributes:
        data["previous_attributes"] = previous_attributes
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type_,
    }


def list_object(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
