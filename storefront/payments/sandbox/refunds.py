"""Refunds of succeeded charges, whole or partial up to what remains, with Stripe's
lifecycle: most succeed at once; a refund of a charge made with Stripe's "pending refund"
test card (4000000000007726) or by bank debit starts ``pending`` and succeeds later; one
of a charge made with the "asynchronous refund failure" card (4000000000005126) starts
``succeeded`` and fails later, giving the amount back to the charge's refundable rest.

"Later" is ``refund_settle_seconds`` after creation (the sweep settles what is due), or
when the control API says (``POST /_sandbox/refunds/<id>/settle``), which may also choose
the outcome of any refund still settling. Each change sends what Stripe sends:
``refund.updated`` and ``charge.refund.updated``, and ``refund.failed`` for a failure."""

from __future__ import annotations

from typing import Any

from . import params as checks
from . import render
from .cards import REFUND_BEHAVIOURS, REFUND_FAILURE_REASON
from .config import SandboxConfig
from .errors import ApiError, invalid_request, resource_missing
from .events import Events, RequestInfo
from .ids import new_id
from .money import format_amount
from .objects import list_page, load_existing, now
from .store import Store, insert_object, load, load_data, save_object

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


class Refunds:
    """``POST /v1/refunds`` and its list."""

    def __init__(self, store: Store, events: Events, config: SandboxConfig) -> None:
        self.store = store
        self.events = events
        self.config = config

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
            _, charge_internal = load(tx, ch["id"], "charge")
            behaviour = charge_internal.get("refund_behaviour", "succeed")
            assert behaviour in REFUND_BEHAVIOURS
            refund = render.refund(
                created=now(),
                amount=amount,
                currency=ch["currency"],
                charge_id=ch["id"],
                payment_intent_id=ch["payment_intent"],
                reason=reason,
                metadata=metadata,
                status="pending" if behaviour == "pending" else "succeeded",
            )
            internal: dict[str, Any] = {}
            if behaviour != "succeed":
                after = self.config.refund_settle_seconds
                internal = {
                    "settle_outcome": "failed" if behaviour == "fails" else "succeeded",
                    "settle_at": None if after is None else now() + after,
                }
            insert_object(tx, refund, internal)
            self.events.emit(tx, "refund.created", refund, req=req)
            previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
            save_object(tx, ch)
            self.events.emit(tx, "charge.refunded", ch, previous, req=req)
            return refund

    def get(self, refund_id: str) -> dict:
        with self.store.read() as conn:
            refund, _ = load_existing(conn, refund_id, "refund")
        return refund

    def settle(self, refund_id: str, outcome: str | None, *, only_if_due: bool = False) -> bool:
        """Finish a refund that is still settling: ``succeeded``/``failed``, or what its
        charge's card does. False when nothing about it is left to settle."""
        if outcome not in (None, "succeeded", "failed"):
            raise invalid_request("outcome must be succeeded or failed", param="outcome")
        with self.store.write() as tx:
            refund, internal = load_existing(tx, refund_id, "refund")
            if "settle_outcome" not in internal:
                return False
            if only_if_due and (internal.get("settle_at") is None or internal["settle_at"] > now()):
                return False
            outcome = outcome or internal["settle_outcome"]
            previous = {"status": refund["status"]}
            if outcome == refund["status"]:  # a card whose refund "fails" told to succeed: nothing changes
                save_object(tx, refund, {})
                return True
            refund["status"] = outcome
            if outcome == "failed":
                refund["failure_reason"] = REFUND_FAILURE_REASON
                refund["failure_balance_transaction"] = new_id("txn")
                ch = load_data(tx, refund["charge"], "charge")
                ch["amount_refunded"] -= refund["amount"]
                ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
                save_object(tx, ch)
            save_object(tx, refund, {})
            self.events.emit(tx, "refund.updated", refund, previous)
            if outcome == "failed":
                self.events.emit(tx, "refund.failed", refund, previous)
            self.events.emit(tx, "charge.refund.updated", refund, previous)
            return True

    def settle_due(self) -> list[str]:
        """Settle every refund whose time has come; returns their ids."""
        with self.store.read() as conn:
            due = [
                r["id"]
                for r in conn.execute(
                    "SELECT id FROM objects WHERE kind = 'refund' AND json_extract(internal, '$.settle_at') <= ?",
                    (now(),),
                )
            ]
        return [refund_id for refund_id in due if self.settle(refund_id, None, only_if_due=True)]

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
