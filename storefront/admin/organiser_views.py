"""Choosing an organiser, its home and its settings (the door is ``door_views``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from .. import teams
from ..staff_errors import StaffError
from . import bp, sessions
from .forms import SettingsForm, attach
from .permissions import Permission, requires, signed_in
from .shared import landing


@bp.get("/")
@signed_in()
def choose_organiser():
    memberships = teams.memberships_of(current_user.id)
    if len(memberships) == 1:
        return redirect(landing(memberships[0]), code=303)
    return render_template(
        "admin/choose_organiser.html", memberships=memberships, landings={m.id: landing(m) for m in memberships}
    )


@bp.get("/o/<organiser>/")
@requires(Permission.VIEW_ORGANISER)
def organiser_home(access):
    from .. import events

    return render_template("admin/organiser_home.html", access=access, summaries=events.summaries(access.membership))


@bp.route("/o/<organiser>/settings", methods=["GET", "POST"])
@requires(Permission.EDIT_SETTINGS)
def organiser_settings(access):
    organiser = access.organiser
    if request.method == "GET":
        form = SettingsForm(obj=organiser)
        return render_template("admin/settings.html", access=access, form=form)
    form = SettingsForm()
    if not form.validate_on_submit():
        return render_template("admin/settings.html", access=access, form=form), 400
    try:
        teams.update_settings(
            organiser.id,
            require_two_factor=form.require_two_factor.data,
            contact_email=form.contact_email.data,
            actor=sessions.actor(),
        )
    except StaffError as error:
        attach(form, error)
        return render_template("admin/settings.html", access=access, form=form), error.status
    flash(_("Settings saved."), "success")
    return redirect(url_for("admin.organiser_settings", organiser=organiser.slug), code=303)
