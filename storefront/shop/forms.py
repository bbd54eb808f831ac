"""The shop's WTForms forms (Flask-WTF: each carries its CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms.validators import DataRequired, Length


class LostTicketsForm(FlaskForm):
    email = EmailField(
        _l("The email address you ordered with"),
        validators=[DataRequired(message=_l("Enter the email address you ordered with.")), Length(max=254)],
        render_kw={"autocomplete": "email", "inputmode": "email"},
    )
