"""The words the back office shows for roles and audit actions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ..staff_models import Role

ROLE_LABELS = {
    Role.OWNER: _l("Owner"),
    Role.MANAGER: _l("Manager"),
    Role.BOX_OFFICE: _l("Box office"),
    Role.DOOR: _l("Door"),
    Role.VIEWER: _l("Viewer"),
}
ROLE_DESCRIPTIONS = {
    Role.OWNER: _l("Everything, including members and the organiser's settings"),
    Role.MANAGER: _l("Events, ticket types, orders and refunds"),
    Role.BOX_OFFICE: _l("Read orders, resend mail, correct attendee names, check in"),
    Role.DOOR: _l("Check in only"),
    Role.VIEWER: _l("Read only"),
}
ACTION_LABELS = {
    "signed_in": _l("Signed in"),
    "sign_in_failed": _l("Failed sign-in"),
    "two_factor_failed": _l("Wrong second-factor code"),
    "signed_out": _l("Signed out"),
    "password_changed": _l("Password changed"),
    "password_reset": _l("Password reset by mail link"),
    "password_reset_requested": _l("Password reset link asked for"),
    "account_created": _l("Account created"),
    "two_factor_setup_started": _l("Two-factor setup started"),
    "two_factor_enabled": _l("Two-factor sign-in turned on"),
    "two_factor_disabled": _l("Two-factor sign-in turned off"),
    "recovery_codes_replaced": _l("New recovery codes"),
    "organiser_created": _l("Organiser created"),
    "member_invited": _l("Member invited"),
    "invitation_accepted": _l("Invitation accepted"),
    "invitation_revoked": _l("Invitation revoked"),
    "role_changed": _l("Role changed"),
    "member_removed": _l("Member removed"),
    "member_added": _l("Member added"),
    "event_access_changed": _l("Event access changed"),
    "settings_changed": _l("Settings changed"),
    "check_in_undone": _l("Check-in undone"),
    "door_list_exported": _l("Door list exported"),
    "ticket_reissued": _l("Ticket reissued"),
}

# The events area's (storefront.events, storefront.ticket_types).
ACTION_LABELS.update(
    {
        "event_created": _l("Event created"),
        "event_changed": _l("Event changed"),
        "event_published": _l("Event published"),
        "event_unpublished": _l("Event unpublished"),
        "event_cancelled": _l("Event cancelled"),
        "event_duplicated": _l("Event duplicated"),
        "cover_changed": _l("Cover image changed"),
        "cover_removed": _l("Cover image removed"),
        "ticket_type_created": _l("Ticket type created"),
        "ticket_type_changed": _l("Ticket type changed"),
        "ticket_types_reordered": _l("Ticket types reordered"),
        "ticket_type_hidden": _l("Ticket type hidden"),
        "ticket_type_shown": _l("Ticket type shown again"),
        "ticket_type_deleted": _l("Ticket type deleted"),
    }
)

# The money side's (orders, refunds, exports, cancellations, reconciliation).
ACTION_LABELS.update(
    {
        "event_exported": _l("Event exported"),
        "event.cancellation_finished": _l("Event cancellation finished"),
        "order.cancelled": _l("Order cancelled"),
        "order.confirmation_resent": _l("Confirmation sent again"),
        "refund.requested": _l("Refund asked for"),
        "refund.retried": _l("Refund tried again"),
        "ticket.renamed": _l("Attendee name corrected"),
        "reconcile_item.dismiss": _l("Reconciliation item dismissed"),
        "reconcile_item.fulfil": _l("Reconciliation item fulfilled"),
        "reconcile_item.refund": _l("Reconciliation item refunded"),
        "reconcile_run.requested": _l("Reconciliation run started"),
    }
)
