"""Refunds of succeeded charges, whole or partial up to what remains; they succeed at
once (the sandbox sends no ``refund.updated``)."""

from __future__ import annotations

from typing import Any

from . import params as checks
from . import render
from .errors import ApiError, invalid_request, resource_missing
from .events import Events, RequestInfo
from .money import format_amount
from .objects import list_page, now
from .store import Store, insert_object, load_data, save_object

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class Refunds:
    """``POST /v1/refunds`` and its list."""

    def __init__(self, store: Store, events: Events) -> None:
        self.store = store
        self.events = events

    def create(self, params: dict[str, Any], *, req: RequestInfo) -> dict:
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
                created=now(),
                amount=amount,
                currency=ch["currency"],
                charge_id=ch["id"],
                payment_intent_id=ch["payment_intent"],
                reason=reason,
                metadata=metadata,
            )
            insert_object(tx, refund)
            self.events.emit(tx, "refund.created", refund, req=req)
            previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
            save_object(tx, ch)
            self.events.emit(tx, "charge.refunded", ch, previous, req=req)
            return refund

    def list(self, params: dict[str, Any]) -> dict:
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
        return list_page(self.store, "refund", "/v1/refunds", params, where, args)
