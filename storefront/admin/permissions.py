"""Who may do what in the back office: the one table of roles and permissions, and the
decorators that put a rule on every admin view.

Every admin view carries exactly one rule (``view.access_rule``), set by one of:

* ``@public`` — anyone (sign-in, password reset, invitations: they throttle themselves);
* ``@signed_in()`` — any signed-in account (its own settings, choosing an organiser);
* ``@requires(Permission.X)`` — a member of the organiser in the URL (``<organiser>``,
  its slug) whose role has X; with ``event=True`` also an event (``<event>``, its slug)
  of that organiser that the member may see.

What a refusal looks like: not signed in → to the sign-in page; not a member of that
organiser, or an event they may not see (another organiser's, or outside their event
limit), or a member whose role lacks the permission → 404, exactly as for something that
does not exist (the issue's rule: anything a member may not see is "not found"; the 404
page says "it does not exist, or it is not yours to see"). The access tests read these
rules off ``app.url_map`` and fail for an admin view without one.

Every change (a non-GET request) by a signed-in member counts against ``LIMIT_STAFF_ACTIONS``
per member before the view runs (429 past it), but the door's, which have limits of their own.

A member whose organiser requires two-factor sign-in, and who has none yet, is sent to
set it up before anything else, except on the few views marked ``before_two_factor``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..models import Event, Organiser
from ..staff_models import Membership, Role, User


class Permission(enum.StrEnum):
    VIEW_ORGANISER = "view_organiser"  # the organiser's home and its events, read only
    VIEW_ORDERS = "view_orders"
    EDIT_EVENTS = "edit_events"  # events and ticket types
    MANAGE_ORDERS = "manage_orders"  # refunds, cancellations
    REISSUE_TICKETS = "reissue_tickets"  # a new secret and code for a forwarded or leaked ticket
    RESEND_MAIL = "resend_mail"
    EDIT_ATTENDEES = "edit_attendees"  # correct attendee names
    CHECK_IN = "check_in"
    UNDO_CHECK_IN = "undo_check_in"  # put a checked-in ticket back to valid
    MANAGE_MEMBERS = "manage_members"
    EDIT_SETTINGS = "edit_settings"
    VIEW_AUDIT = "view_audit"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.MANAGER: frozenset(
        {
            Permission.VIEW_ORGANISER,
            Permission.VIEW_ORDERS,
            Permission.EDIT_EVENTS,
            Permission.MANAGE_ORDERS,
            Permission.REISSUE_TICKETS,
            Permission.RESEND_MAIL,
            Permission.EDIT_ATTENDEES,
            Permission.CHECK_IN,
            Permission.UNDO_CHECK_IN,
        }
    ),
    Role.BOX_OFFICE: frozenset(
        {
            Permission.VIEW_ORGANISER,
            Permission.VIEW_ORDERS,
            Permission.RESEND_MAIL,
            Permission.EDIT_ATTENDEES,
            Permission.CHECK_IN,
        }
    ),
    Role.DOOR: frozenset({Permission.CHECK_IN}),
    Role.VIEWER: frozenset({Permission.VIEW_ORGANISER, Permission.VIEW_ORDERS}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]


class Scope(enum.StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    ORGANISER = "organiser"
    EVENT = "event"


@dataclass(frozen=True)
class Rule:
    scope: Scope
    permission: Permission | None = None
    # Reachable by a member who must still set up two-factor sign-in.
    before_two_factor: bool = False


@dataclass(frozen=True)
class Access:
    """What an admin view of an organiser acts within: the signed-in user, their
    membership (so the organiser), and the event of the URL if there is one."""

    user: User
    membership: Membership
    event: Event | None = None

    @property
    def organiser(self) -> Organiser:
        return self.membership.organiser

    @property
    def role(self) -> Role:
        return self.membership.role

    def can(self, permission: Permission | str) -> bool:
        return allows(self.membership.role, Permission(permission))


def _with_rule(view: Callable, rule: Rule) -> Callable:
    view.access_rule = rule
    return view


def public(view: Callable) -> Callable:
    return _with_rule(view, Rule(Scope.PUBLIC))


def _signed_in_user(rule: Rule):
    """The signed-in user, or the answer that sends the request elsewhere."""
    if not current_user.is_authenticated:
        target = request.full_path if request.method == "GET" else None
        return None, redirect(url_for("admin.sign_in", next=target), code=303)
    if not rule.before_two_factor:
        from .. import two_factor

        if two_factor.must_enrol(current_user):
            flash(_("Your organiser requires two-factor sign-in. Set it up to go on."), "warning")
            return None, redirect(url_for("admin.two_factor_setup"), code=303)
    return current_user._get_current_object(), None


# The door's changes (scans, undoing a check-in) have limits of their own, sized for a
# busy door (``limits.check_door``); every other change counts as a staff action.
_OWN_LIMITS = frozenset({Permission.CHECK_IN, Permission.UNDO_CHECK_IN})


def _too_many_actions(user: User, permission: Permission | None):
    """The 429 answer when this member made too many changes lately, else None (and the
    change is counted). Asked before the view runs, so a refused change does nothing."""
    if request.method in ("GET", "HEAD", "OPTIONS") or permission in _OWN_LIMITS:
        return None
    from .. import htmx, limits
    from ..errors import TooManyRequests
    from . import throttle

    try:
        limits.check_staff_action(user.id)
    except TooManyRequests as error:
        if not htmx.wants_fragment():
            return throttle.too_many(error.retry_after)
        response = make_response(
            render_template(
                "_partials/error_message.html",
                title=_("Too many changes"),
                text=_("You made many changes in a short time. Please wait a moment, then try again."),
            ),
            429,
        )
        response.headers["Retry-After"] = str(error.retry_after)
        return htmx.show_message(response)
    return None


def signed_in(*, before_two_factor: bool = False) -> Callable[[Callable], Callable]:
    rule = Rule(Scope.SIGNED_IN, before_two_factor=before_two_factor)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            user, answer = _signed_in_user(rule)
            if answer is None:
                answer = _too_many_actions(user, None)
            if answer is not None:
                return answer
            return view(*args, **kwargs)

        return _with_rule(wrapper, rule)

    return decorate


def requires(permission: Permission, *, event: bool = False) -> Callable[[Callable], Callable]:
    """The view is called as ``view(access, **the other URL values)``."""
    rule = Rule(Scope.EVENT if event else Scope.ORGANISER, permission)

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, organiser: str, **kwargs):
            from .. import teams

            user, answer = _signed_in_user(rule)
            if answer is not None:
                return answer
            membership = teams.membership_in(user.id, organiser)
            if membership is None:
                abort(404)
            found_event = None
            if event:
                found_event = teams.visible_event(membership, kwargs.pop("event"))
                if found_event is None:
                    abort(404)
            if not allows(membership.role, permission):
                abort(404)
            if (answer := _too_many_actions(user, permission)) is not None:
                return answer
            return view(Access(user, membership, found_event), *args, **kwargs)

        return _with_rule(wrapper, rule)

    return decorate


def rule_of(view: Callable) -> Rule | None:
    return getattr(view, "access_rule", None)
