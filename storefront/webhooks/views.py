"""The webhook endpoint: verify, then hand over to ``storefront.stripe_events``.

400 for a bad, stale, future or missing signature, and for a signed payload that is
not an event we can act on (nothing stored either way); 413 for a body larger than
``WEBHOOK_MAX_CONTENT_LENGTH`` (not read beyond it); 200 once the event is stored and
handled (or was a duplicate); any failure in between propagates to the 500 handler,
so Stripe delivers the event again.
"""

from __future__ import annotations

from flask import current_app, request

from .. import stripe_events
from ..extensions import csrf
from ..payments import gateway as gw
from . import bp


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    # Stripe's events are a few kilobytes; the shop's own limit is for its forms.
    request.max_content_length = current_app.config["WEBHOOK_MAX_CONTENT_LENGTH"]
    payload = request.get_data()
    try:
        event = gw.get_gateway().construct_event(payload, request.headers.get("Stripe-Signature"))
    except gw.SignatureVerificationError as error:
        current_app.logger.warning("stripe webhook refused: %s", type(error).__name__)
        return {"error": "invalid signature"}, 400
    except gw.MalformedEvent as error:
        current_app.logger.warning("stripe webhook refused, signed but not an event: %s", error)
        return {"error": "not an event"}, 400
    try:
        outcome = stripe_events.record_and_handle(event, payload)
    except stripe_events.MalformedEventObject as error:
        current_app.logger.warning("stripe webhook %s refused: %s", event.id, error)
        return {"error": "malformed event object"}, 400
    except Exception:
        # Logged and recorded on the event by record_and_handle; 500 makes Stripe retry.
        return {"error": "internal error, please retry"}, 500
    return {"received": True, "outcome": outcome}, 200
