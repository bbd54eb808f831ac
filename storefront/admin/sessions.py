"""Staff sessions in Flask's signed cookie: signing in and out, the second-factor step
between them, and the idle limit.

* Signing in (and out) empties the session and starts a new one: nothing that was in the
  cookie before (a planted cart, CSRF token or half-finished sign-in) survives it.
* The session names the user with ``User.get_id`` (id and session version): a password
  change elsewhere makes it name nobody.
* Between a correct password and a correct second factor the session holds only
  ``PENDING_KEY`` (which account, since when), good for ``PENDING_FOR_SECONDS``.
* Each admin request records when it came (``SEEN_KEY``); one that comes more than
  ``ADMIN_IDLE_MINUTES`` after the previous one finds itself signed out.

Only admin requests read any of this: the shop's pages never load the staff user.
"""

from __future__ import annotations

import time

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from .. import accounts
from ..audit import Actor
from ..extensions import login_manager
from ..staff_models import User

SEEN_KEY = "admin_seen"
# Requests a page makes by itself (the door's counters refreshing): they end an idle
# session like any other, but are no activity that keeps it alive.
PASSIVE_ENDPOINTS = frozenset({"admin.door_counters"})
PENDING_KEY = "admin_pending"
PENDING_FOR_SECONDS = 5 * 60


def init_app(app) -> None:
    # No app-wide context processor: it would load the staff user on every shop page.
    login_manager.init_app(app, add_context_processor=False)
    login_manager.session_protection = None  # the idle limit and session versions do this job
    login_manager.user_loader(accounts.load_session_user)


def client_address() -> str | None:
    return request.remote_addr


def actor(user: User | None = None) -> Actor:
    """Who acts in this request, for the audit log."""
    user = user or current_user
    return Actor(user.id, user.email, client_address())


def _fresh_session() -> None:
    logout_user()
    session.clear()
    # A CSRF token generated earlier in this request belonged to the old session.
    g.pop("csrf_token", None)


def sign_in(user: User, *, method: str) -> None:
    """Start a new signed-in session for ``user`` (password checked, and the second factor if on)."""
    _fresh_session()
    login_user(user)
    session[SEEN_KEY] = int(time.time())
    accounts.record_sign_in(user.id, actor(user), method=method)


def renew(user: User) -> None:
    """A new session for the same person, e.g. after their password changed (the old
    session id names the old session version)."""
    _fresh_session()
    login_user(user)
    session[SEEN_KEY] = int(time.time())


def sign_out() -> None:
    if current_user.is_authenticated:
        accounts.record_sign_out(current_user.id, actor())
    _fresh_session()


def await_second_factor(user: User) -> None:
    """The password was right and the account uses two-factor sign-in: a new session that
    only remembers that, for a few minutes."""
    _fresh_session()
    session[PENDING_KEY] = {"user": user.id, "version": user.session_version, "at": int(time.time())}
    session[SEEN_KEY] = int(time.time())


def pending_user() -> User | None:
    """The account waiting for its second factor in this session, while it still may."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if int(time.time()) - int(pending.get("at", 0)) > PENDING_FOR_SECONDS:
        return None
    user = accounts.load_session_user(f"{pending.get('user')}:{pending.get('version')}")
    return user


def enforce_idle_limit():
    """Blueprint ``before_request``: end a session idle for too long; note this request."""
    if SEEN_KEY not in session:
        return None
    now = int(time.time())
    idle = now - int(session.get(SEEN_KEY) or 0)
    if idle > current_app.config["ADMIN_IDLE_MINUTES"] * 60:
        was_signed_in = "_user_id" in session
        _fresh_session()
        if was_signed_in:
            flash(_("You were signed out after a while without activity. Please sign in again."), "warning")
            if request.method == "GET":
                return redirect(url_for("admin.sign_in", next=request.full_path), code=303)
            return redirect(url_for("admin.sign_in"), code=303)
        return None
    if request.endpoint not in PASSIVE_ENDPOINTS:
        session[SEEN_KEY] = now
    return None
