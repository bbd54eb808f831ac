"""The live on-sale view of an event (``storefront.live_sales`` reads the numbers).

One route: the page, or for htmx's poll only its fragment (``admin/_live_sales.html``),
which the page includes. Reading it needs ``VIEW_ORDERS``: it shows how the sale goes.
"""

from __future__ import annotations

from .. import htmx, live_sales
from . import bp
from .permissions import Permission, requires

# How often the page asks again (seconds); the fragment says it, so a test can read it.
POLL_SECONDS = 5


@bp.get("/o/<organiser>/events/<event>/live")
@requires(Permission.VIEW_ORDERS, event=True)
def event_live(access):
    return htmx.render(
        "admin/event_live.html",
        "admin/_live_sales.html",
        access=access,
        event=access.event,
        live=live_sales.read_cached(access.event),
        poll_seconds=POLL_SECONDS,
    )
