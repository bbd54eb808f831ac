"""What every admin request shares: the idle limit, the template context, error pages,
headers, and where a signed-in member lands."""

from __future__ import annotations

from flask import render_template, url_for
from flask_login import current_user

from .. import teams
from ..parsing import local_redirect_target
from ..staff_models import Membership
from . import bp, sessions
from .forms import ButtonForm
from .labels import ACTION_LABELS, ROLE_DESCRIPTIONS, ROLE_LABELS
from .permissions import Permission, allows

bp.before_request(sessions.enforce_idle_limit)


@bp.after_request
def _private(response):
    # Admin pages show personal data and one-time secrets: no cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


def _refund_failure_words(reason: str | None) -> str | None:
    from .. import refunds

    return refunds.failure_words(reason)


def status_word(kind: str, value: str | None) -> str:
    """A status as the back office says it, by its owner's words (``kind``: order, ticket,
    refund, mail, attempt); an unknown value as it is stored."""
    from .. import attempts, orders, outbox, refunds, ticket_lifecycle

    words = {
        "order": orders.status_words,
        "ticket": ticket_lifecycle.status_words,
        "refund": refunds.status_words,
        "mail": outbox.status_words,
        "attempt": attempts.status_words,
    }[kind]()
    return words.get(value, value or "")


@bp.context_processor
def _admin_context():
    return {
        "current_user": current_user,
        "role_labels": ROLE_LABELS,
        "role_descriptions": ROLE_DESCRIPTIONS,
        "action_labels": ACTION_LABELS,
        "Permission": Permission,
        "status_word": status_word,
        "refund_failure_words": _refund_failure_words,
        # Not bound to the request: rendering must not read a body (a 413 page would read it again).
        "button_form": ButtonForm(formdata=None),
    }


@bp.errorhandler(403)
def _forbidden(error):
    return render_template("admin/error.html", code=403), 403


@bp.errorhandler(404)
def _not_found(error):
    return render_template("admin/error.html", code=404), 404


def safe_next(raw: str | None) -> str | None:
    """A place inside the back office to go back to after signing in, or None: a safe
    local target (``parsing.local_redirect_target``, the one function that decides) under
    /admin/."""
    target = local_redirect_target(raw)
    return target if target is not None and target.startswith("/admin/") else None


def landing(membership: Membership) -> str:
    """A member's first page in an organiser: its home, or the door for door staff."""
    slug = membership.organiser.slug
    if allows(membership.role, Permission.VIEW_ORGANISER):
        return url_for("admin.organiser_home", organiser=slug)
    return url_for("admin.door_index", organiser=slug)


def after_sign_in(user_id: int, next_url: str | None = None) -> str:
    if safe := safe_next(next_url):
        return safe
    memberships = teams.memberships_of(user_id)
    if len(memberships) == 1:
        return landing(memberships[0])
    return url_for("admin.choose_organiser")
