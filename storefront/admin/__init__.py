"""The back office under /admin: staff sign-in, organisers, members, roles and the audit log.

Views are thin, as the shop's: a form parses, one domain function acts (and writes the
audit entry in its transaction), the view renders. Every view carries an access rule
(``permissions``); adding an admin area is adding a views module that imports ``bp``,
decorates each view with its rule, and (for the access tests) names how to fill any new
URL argument in ``tests/admin_support.py``.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("admin", __name__, url_prefix="/admin")


def init_app(app: Flask) -> None:
    from . import sessions

    sessions.init_app(app)
    app.register_blueprint(bp)


from . import (  # noqa: E402,F401  (they register the routes)
    account_views,
    audit_views,
    auth_views,
    cancellation_views,
    door_views,
    event_views,
    export_views,
    live_views,
    member_views,
    order_action_views,
    order_views,
    organiser_views,
    reconcile_views,
    report_views,
    shared,
    ticket_views,
)
