"""Signing in (password, then the second factor if it is on), signing out, password
reset by mail, and accepting an invitation."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import accounts, teams, two_factor
from ..staff_errors import InvalidLink, StaffError
from . import bp, sessions, throttle
from .forms import AcceptForm, ForgotPasswordForm, NewPasswordForm, SecondFactorForm, SignInForm, attach
from .permissions import public, signed_in
from .shared import after_sign_in, safe_next

# The one answer to a wrong email or password, whichever it was.
WRONG_CREDENTIALS = 400


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    form = SignInForm()
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(after_sign_in(current_user.id, next_url), code=303)
    status = 200
    if form.validate_on_submit():
        account = throttle.sign_in_key(form.email.data)
        if wait := throttle.retry_after(throttle.SIGN_IN, account):
            return throttle.too_many(wait)
        user = accounts.check_password(form.email.data, form.password.data, sessions.client_address())
        if user is None:
            throttle.count(throttle.SIGN_IN, account)
            form.form_errors.append(_("Wrong email or password."))
            status = WRONG_CREDENTIALS
        elif user.two_factor_enabled:
            sessions.await_second_factor(user)
            return redirect(url_for("admin.second_factor", next=next_url), code=303)
        else:
            sessions.sign_in(user, method="password")
            return redirect(after_sign_in(user.id, next_url), code=303)
    elif request.method == "POST":
        status = 400
    return render_template("admin/sign_in.html", form=form, next_url=next_url), status


@bp.route("/sign-in/second-factor", methods=["GET", "POST"])
@public
def second_factor():
    user = sessions.pending_user()
    next_url = safe_next(request.values.get("next"))
    if user is None:
        flash(_("Please sign in again."), "warning")
        return redirect(url_for("admin.sign_in", next=next_url), code=303)
    form = SecondFactorForm()
    status = 200
    if form.validate_on_submit():
        if wait := throttle.retry_after(throttle.CODES, user.email):
            return throttle.too_many(wait)
        method = two_factor.verify_second_factor(user.id, form.code.data, sessions.actor(user))
        if method is not None:
            sessions.sign_in(user, method=f"password+{method}")
            if method == "recovery_code":
                flash(_("You used a recovery code. Each works once; make new ones on your account page."), "warning")
            return redirect(after_sign_in(user.id, next_url), code=303)
        throttle.count(throttle.CODES, user.email)
        form.code.errors = [_("That code is not right, or it was used already. Enter the current code from your app.")]
        status = 400
    elif request.method == "POST":
        status = 400
    return render_template("admin/second_factor.html", form=form, next_url=next_url), status


@bp.post("/sign-out")
@signed_in(before_two_factor=True)
def sign_out():
    sessions.sign_out()
    return redirect(url_for("admin.signed_out"), code=303)


@bp.get("/signed-out")
@public
def signed_out():
    return render_template("admin/signed_out.html")


@bp.route("/forgot-password", methods=["GET", "POST"])
@public
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        account = throttle.sign_in_key(form.email.data)
        if wait := throttle.retry_after(throttle.RESET, account):
            return throttle.too_many(wait)
        throttle.count(throttle.RESET, account)
        accounts.send_password_reset(form.email.data, sessions.client_address())
        # The same answer whether or not an account has this address.
        return render_template("admin/forgot_password_sent.html", valid_minutes=60)
    return render_template("admin/forgot_password.html", form=form), 400 if request.method == "POST" else 200


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str):
    if accounts.valid_reset(token) is None:
        return render_template("admin/link_invalid.html"), 404
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data, sessions.client_address())
        except InvalidLink:
            return render_template("admin/link_invalid.html"), 404
        except StaffError as error:
            attach(form, error)
            return render_template("admin/reset_password.html", form=form, token=token), error.status
        sessions.sign_out()
        flash(_("Your password is changed. Sign in with it now."), "success")
        return redirect(url_for("admin.sign_in"), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/reset_password.html", form=form, token=token), status


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str):
    invitation = teams.valid_invitation(token)
    if invitation is None:
        return render_template("admin/link_invalid.html"), 404
    has_account = accounts.find_by_email(invitation.email) is not None
    signed_in_as = current_user if current_user.is_authenticated else None
    form = AcceptForm() if has_account else NewPasswordForm()
    context = {"invitation": invitation, "form": form, "has_account": has_account, "signed_in_as": signed_in_as}
    if request.method == "GET":
        return render_template("admin/accept_invitation.html", **context)
    if has_account and signed_in_as is None:
        # An account exists: its owner signs in first (and comes back here).
        abort(403)
    if not form.validate_on_submit():
        return render_template("admin/accept_invitation.html", **context), 400
    try:
        user = teams.accept_invitation(
            token,
            user_id=signed_in_as.id if signed_in_as is not None else None,
            password=None if has_account else form.password.data,
            client_address=sessions.client_address(),
        )
    except InvalidLink:
        return render_template("admin/link_invalid.html"), 404
    except StaffError as error:
        attach(form, error)
        return render_template("admin/accept_invitation.html", **context), error.status
    if signed_in_as is None:
        sessions.sign_in(user, method="invitation")
    flash(_("Welcome to %(name)s.", name=invitation.organiser.name), "success")
    membership = teams.membership_in(user.id, invitation.organiser.slug)
    from .shared import landing

    return redirect(landing(membership), code=303)
