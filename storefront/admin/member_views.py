"""An organiser's members: invite, change role, limit to events, remove (owners only)."""

from __future__ import annotations

from flask import abort, flash, render_template, url_for
from flask_babel import gettext as _

from .. import htmx, teams
from ..staff_errors import StaffError
from ..staff_models import Role
from . import bp, sessions
from .forms import EventAccessForm, InviteForm, RoleForm, attach, event_choices
from .labels import ROLE_LABELS
from .permissions import Permission, requires


def _members_page(access, status: int = 200, invite_form=None, error: str | None = None):
    organiser = access.organiser
    return render_template(
        "admin/members.html",
        access=access,
        members=teams.members(organiser.id),
        invitations=teams.pending_invitations(organiser.id),
        invite_form=invite_form or InviteForm(formdata=None),
        error=error,
    ), status


def _members_url(access) -> str:
    return url_for("admin.members", organiser=access.organiser.slug)


def _member_or_404(access, membership_id: int):
    membership = teams.member(access.organiser.id, membership_id)
    if membership is None:
        abort(404)
    return membership


@bp.get("/o/<organiser>/members")
@requires(Permission.MANAGE_MEMBERS)
def members(access):
    return _members_page(access)


@bp.post("/o/<organiser>/members/invite")
@requires(Permission.MANAGE_MEMBERS)
def invite_member(access):
    form = InviteForm()
    if not form.validate_on_submit():
        return _members_page(access, 400, invite_form=form)
    try:
        sent = teams.invite(access.organiser.id, form.email.data, Role(form.role.data), sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _members_page(access, error.status, invite_form=form)
    if sent.mailed:
        flash(_("Invitation sent to %(email)s. The link works for 7 days.", email=sent.email), "success")
    else:
        flash(
            _(
                "The invitation is saved, but the mail to %(email)s could not be sent. Invite again to retry.",
                email=sent.email,
            ),
            "error",
        )
    return htmx.redirect(_members_url(access))


@bp.get("/o/<organiser>/members/<id:membership_id>")
@requires(Permission.MANAGE_MEMBERS)
def member(access, membership_id: int):
    membership = _member_or_404(access, membership_id)
    return _member_page(access, membership)


def _member_page(access, membership, status: int = 200, role_form=None, events_form=None, error=None):
    events = teams.organiser_events(access.organiser.id)
    if events_form is None:
        events_form = EventAccessForm(
            formdata=None, all_events=membership.all_events, events=[e.id for e in membership.events]
        )
    events_form.events.choices = event_choices(events)
    return render_template(
        "admin/member.html",
        access=access,
        membership=membership,
        role_form=role_form or RoleForm(formdata=None, role=membership.role.value),
        events_form=events_form,
        error=error,
    ), status


@bp.post("/o/<organiser>/members/<id:membership_id>/role")
@requires(Permission.MANAGE_MEMBERS)
def change_role(access, membership_id: int):
    membership = _member_or_404(access, membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _role_refused(access, membership, form, 400)
    try:
        changed = teams.change_role(access.organiser.id, membership.id, Role(form.role.data), sessions.actor())
    except StaffError as error:
        attach(form, error)
        return _role_refused(access, membership, form, error.status)
    if htmx.wants_fragment():
        return htmx.render("admin/members.html", "admin/_member_row.html", access=access, m=changed, saved=True)
    flash(_("%(email)s is now %(role)s.", email=changed.user.email, role=ROLE_LABELS[changed.role]), "success")
    return htmx.redirect(_members_url(access))


def _role_refused(access, membership, form, status: int):
    message = "; ".join(form.form_errors + form.role.errors) or _("Choose one of the roles.")
    if htmx.wants_fragment():
        return htmx.render(
            "admin/members.html", "admin/_member_row.html", status=status, access=access, m=membership, error=message
        )
    return _member_page(access, membership, status, role_form=form, error=message)


@bp.post("/o/<organiser>/members/<id:membership_id>/events")
@requires(Permission.MANAGE_MEMBERS)
def change_event_access(access, membership_id: int):
    membership = _member_or_404(access, membership_id)
    form = EventAccessForm()
    form.events.choices = event_choices(teams.organiser_events(access.organiser.id))
    if not form.validate_on_submit():
        return _member_page(access, membership, 400, events_form=form)
    try:
        teams.limit_events(
            access.organiser.id, membership.id, form.all_events.data, form.events.data or [], sessions.actor()
        )
    except StaffError as error:
        attach(form, error)
        return _member_page(access, membership, error.status, events_form=form)
    flash(_("Event access saved."), "success")
    return htmx.redirect(url_for("admin.member", organiser=access.organiser.slug, membership_id=membership.id))


@bp.post("/o/<organiser>/members/<id:membership_id>/remove")
@requires(Permission.MANAGE_MEMBERS)
def remove_member(access, membership_id: int):
    membership = _member_or_404(access, membership_id)
    try:
        teams.remove_member(access.organiser.id, membership.id, sessions.actor())
    except StaffError as error:
        return _member_page(access, membership, error.status, error=error.message())
    flash(_("%(email)s is no longer a member.", email=membership.user.email), "success")
    if membership.user_id == access.user.id:
        return htmx.redirect(url_for("admin.choose_organiser"))
    return htmx.redirect(_members_url(access))


@bp.post("/o/<organiser>/invitations/<id:invitation_id>/revoke")
@requires(Permission.MANAGE_MEMBERS)
def revoke_invitation(access, invitation_id: int):
    try:
        teams.revoke_invitation(access.organiser.id, invitation_id, sessions.actor())
    except StaffError:
        abort(404)
    flash(_("The invitation is revoked; its link no longer works."), "success")
    return htmx.redirect(_members_url(access))
