"""The signed-in person's own account: password, two-factor sign-in, recovery codes."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import accounts, audit, two_factor
from ..staff_errors import StaffError
from . import bp, sessions
from .forms import ChangePasswordForm, ConfirmTwoFactorForm, PasswordCheckForm, attach
from .permissions import signed_in


def _account_page(status: int = 200, **forms):
    user = current_user
    context = {
        "password_form": forms.get("password_form") or ChangePasswordForm(formdata=None),
        "password_check_form": forms.get("password_check_form") or PasswordCheckForm(formdata=None),
        "recovery_codes_left": two_factor.unused_recovery_codes(user.id) if user.two_factor_enabled else 0,
        "required_by": two_factor.required_by(user.id),
        "history": audit.account_history(user.id),
    }
    return render_template("admin/account.html", **context), status


@bp.get("/account")
@signed_in(before_two_factor=True)
def account():
    return _account_page()


@bp.post("/account/password")
@signed_in(before_two_factor=True)
def change_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(400, password_form=form)
    try:
        user = accounts.change_password(
            current_user.id, form.current_password.data, form.password.data, sessions.actor()
        )
    except StaffError as error:
        attach(form, error)
        return _account_page(error.status, password_form=form)
    # This session carries on under the new session version; every other one has ended.
    sessions.renew(user)
    flash(_("Your password is changed. Every other session of your account is signed out."), "success")
    return redirect(url_for("admin.account"), code=303)


@bp.post("/account/two-factor/start")
@signed_in(before_two_factor=True)
def start_two_factor():
    try:
        two_factor.start(current_user.id, sessions.actor())
    except StaffError as error:
        flash(error.message(), "error")
        return redirect(url_for("admin.account"), code=303)
    return redirect(url_for("admin.two_factor_setup"), code=303)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@signed_in(before_two_factor=True)
def two_factor_setup():
    user = current_user
    if user.two_factor_enabled:
        return redirect(url_for("admin.account"), code=303)
    form = ConfirmTwoFactorForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                codes = two_factor.confirm(user.id, form.code.data, sessions.actor())
            except StaffError as error:
                attach(form, error)
                status = error.status
            else:
                # Shown this once, never stored in the clear: the answer is not cached (no-store).
                return render_template("admin/recovery_codes.html", codes=codes, first_time=True)
        else:
            status = 400
    secret = user.totp_secret
    uri = two_factor.provisioning_uri(user) if secret else None
    return render_template(
        "admin/two_factor_setup.html",
        form=form,
        secret=secret,
        qr_svg=two_factor.qr_svg(uri) if uri else None,
        required_by=two_factor.required_by(user.id),
    ), status


@bp.post("/account/two-factor/disable")
@signed_in(before_two_factor=True)
def disable_two_factor():
    form = PasswordCheckForm()
    if not form.validate_on_submit():
        return _account_page(400, password_check_form=form)
    try:
        two_factor.disable(current_user.id, form.current_password.data, sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _account_page(error.status, password_check_form=form)
    flash(_("Two-factor sign-in is off. Your password alone now signs you in."), "success")
    return redirect(url_for("admin.account"), code=303)


@bp.post("/account/recovery-codes")
@signed_in(before_two_factor=True)
def new_recovery_codes():
    form = PasswordCheckForm()
    if not form.validate_on_submit():
        return _account_page(400, password_check_form=form)
    try:
        codes = two_factor.new_recovery_codes(current_user.id, form.current_password.data, sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _account_page(error.status, password_check_form=form)
    return render_template("admin/recovery_codes.html", codes=codes, first_time=False)
