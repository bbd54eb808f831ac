"""The back office's forms (WTForms through Flask-WTF, so each carries its CSRF token).

Forms check the shape of the input (present, not too long, one of the choices); the
domain functions decide the rest (a password's policy, the last owner) and raise typed
errors, which ``attach`` puts beside the field they concern.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    SearchField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from ..check_in import DOOR_NAME_LENGTH, NONCE_SHAPE
from ..passwords import MAX_LENGTH
from ..staff_errors import StaffError
from ..staff_models import Role
from .labels import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


def attach(form: FlaskForm, error: StaffError) -> None:
    """Show a domain error beside its field, or above the form."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message()]
    else:
        form.form_errors.append(error.message())


def _password(label, autocomplete: str):
    # The policy (length, common passwords) is the domain's; this only bounds the input.
    return PasswordField(
        label, validators=[DataRequired(), Length(max=MAX_LENGTH * 4)], render_kw={"autocomplete": autocomplete}
    )


class SignInForm(FlaskForm):
    email = EmailField(
        _l("Email"), validators=[DataRequired(), Length(max=254)], render_kw={"autocomplete": "username"}
    )
    password = _password(_l("Password"), "current-password")


class SecondFactorForm(FlaskForm):
    code = StringField(
        _l("Code from your app, or a recovery code"),
        validators=[DataRequired(), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)], render_kw={"autocomplete": "email"})


class NewPasswordForm(FlaskForm):
    password = _password(_l("New password"), "new-password")
    confirm = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )


class ChangePasswordForm(NewPasswordForm):
    current_password = _password(_l("Current password"), "current-password")


class AcceptForm(FlaskForm):
    """Accepting an invitation with an account already signed in: a button."""


class ConfirmTwoFactorForm(FlaskForm):
    code = StringField(
        _l("Six-digit code from your app"),
        validators=[DataRequired(), Length(max=12)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class PasswordCheckForm(FlaskForm):
    """A sensitive change (turning two-factor off, new recovery codes) asks for the password."""

    current_password = _password(_l("Your password"), "current-password")


class ButtonForm(FlaskForm):
    """A POST button: only the CSRF token."""


class TicketLookupForm(FlaskForm):
    """A ticket code typed to find the ticket (a GET form: it changes nothing)."""

    class Meta:
        csrf = False

    code = StringField(
        _l("Ticket code"),
        validators=[DataRequired(), Length(max=40)],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )


class InviteForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default=Role.VIEWER.value)


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def event_choices(events) -> list[SelectChoice]:
    return [SelectChoice(event.id, event.title) for event in events]


class EventAccessForm(FlaskForm):
    all_events = BooleanField(_l("All events, including future ones"))
    # Choices: the organiser's events (set by the view), so any other id is refused at the field.
    events = MultiCheckboxField(_l("Only these events"), coerce=int)


class SettingsForm(FlaskForm):
    require_two_factor = BooleanField(_l("Members must use two-factor sign-in"))
    contact_email = EmailField(
        _l("Contact email for buyers"), validators=[Optional(), Length(max=254)], render_kw={"autocomplete": "email"}
    )


class ScanForm(FlaskForm):
    """One scan at the door: the QR code's secret (put there by the camera's script) or a
    typed ticket code, the page's nonce for this scan, and the door's name."""

    secret = HiddenField(validators=[Optional(), Length(max=200)])
    code = StringField(
        _l("Ticket code"),
        validators=[Optional(), Length(max=40)],
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "enterkeyhint": "go",
            "placeholder": "ACDEF-GHJKM",
        },
    )
    nonce = HiddenField(validators=[DataRequired(), Regexp(NONCE_SHAPE)])
    door = StringField(
        _l("This door"),
        validators=[Optional(), Length(max=DOOR_NAME_LENGTH)],
        render_kw={"autocomplete": "off", "placeholder": _l("e.g. North gate")},
    )


class DoorSearchForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search

    q = SearchField(
        _l("Find by name, order code or ticket code"),
        validators=[Optional(), Length(max=100)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "enterkeyhint": "search"},
    )


class UndoCheckInForm(FlaskForm):
    check_in = HiddenField(validators=[DataRequired(), Length(max=20)])
