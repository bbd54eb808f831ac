"""The forms of the events area: an event, a ticket type, a cover image, a move.

They check the input's shape (present, long enough, a number, one of the choices); the
domain (``storefront.events``, ``storefront.ticket_types``) decides the rest and raises
typed errors that ``forms.attach`` puts beside their field. Times are wall-clock times
in the event's timezone (``datetime-local`` inputs); the domain turns them into UTC.
"""

from __future__ import annotations

from functools import cache

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateTimeLocalField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from .. import local_time, money
from ..events import EventFields
from ..parsing import ascii_int, has_control_characters
from ..ticket_types import TicketTypeFields

FORMAT = local_time.INPUT_FORMAT
CURRENCY_CHOICES = [SelectChoice(code.upper(), code.upper()) for code in sorted(money.STRIPE_CURRENCIES)]
# Integer columns: a number past them is refused at the field, not by the database.
MAX_COUNT = 1_000_000


def _printable(form, field) -> None:
    # Line breaks and tabs are typed in a description; NUL and the rest are not (PostgreSQL refuses NUL).
    if field.data and has_control_characters(field.data.translate({10: None, 13: None, 9: None})):
        raise ValidationError(_l("Remove the control characters from this text."))


class AsciiIntegerField(IntegerField):
    """A whole number in ASCII digits only (``parsing``: ``int()`` would take "١٢")."""

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        self.data = ascii_int(valuelist[0].strip(), max_digits=9)
        if self.data is None:
            raise ValueError(self.gettext("Not a valid integer value."))


def _count(label, *, minimum: int, required: bool = True):
    validators = [InputRequired() if required else Optional(), NumberRange(min=minimum, max=MAX_COUNT)]
    return AsciiIntegerField(label, validators=validators, render_kw={"inputmode": "numeric", "min": minimum})


def _when(label, *, required: bool = False):
    return DateTimeLocalField(
        label, format=FORMAT, validators=[InputRequired() if required else Optional()], render_kw={"step": 60}
    )


@cache
def _timezone_choices() -> list[SelectChoice]:
    return [SelectChoice(name, name) for name in local_time.timezone_names()]


class EventForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200), _printable])
    slug = StringField(
        _l("Web address"),
        validators=[DataRequired(), Length(min=2, max=120)],
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    description = TextAreaField(
        _l("Description"), validators=[Optional(), Length(max=20_000), _printable], render_kw={"rows": 8}
    )
    venue = StringField(_l("Venue"), validators=[Optional(), Length(max=300), _printable])
    timezone = SelectField(_l("Timezone"), choices=[], default="Europe/Paris")
    starts_at = _when(_l("Starts"), required=True)
    ends_at = _when(_l("Ends (optional)"))
    currency = SelectField(_l("Currency"), choices=CURRENCY_CHOICES, default="EUR")
    sales_start = _when(_l("Sales open (optional)"))
    sales_end = _when(_l("Sales close (optional)"))
    capacity = _count(_l("Event-wide capacity (optional)"), minimum=0, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = _timezone_choices()

    def fields(self) -> EventFields:
        return EventFields(
            title=self.title.data or "",
            slug=self.slug.data or "",
            description=(self.description.data or "").replace("\r\n", "\n"),
            venue=self.venue.data or "",
            starts_at=self.starts_at.data,
            ends_at=self.ends_at.data,
            timezone=self.timezone.data,
            currency=self.currency.data,
            sales_start=self.sales_start.data,
            sales_end=self.sales_end.data,
            capacity=self.capacity.data,
        )

    @classmethod
    def of(cls, event) -> EventForm:
        """The form filled with the event as it is, its times on the venue's clock."""
        tz = event.timezone
        return cls(
            formdata=None,
            title=event.title,
            slug=event.slug,
            description=event.description,
            venue=event.venue,
            timezone=tz,
            starts_at=local_time.to_local(event.starts_at, tz),
            ends_at=local_time.to_local(event.ends_at, tz),
            currency=event.currency,
            sales_start=local_time.to_local(event.sales_start, tz),
            sales_end=local_time.to_local(event.sales_end, tz),
            capacity=event.capacity,
        )


class TicketTypeForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200), _printable])
    description = StringField(_l("Description (optional)"), validators=[Optional(), Length(max=500), _printable])
    price = StringField(_l("Price"), validators=[InputRequired(), Length(max=20)], render_kw={"inputmode": "decimal"})
    capacity = _count(_l("Capacity"), minimum=0)
    max_per_order = _count(_l("Most per order"), minimum=1)
    sales_start = _when(_l("Sales open (optional; else the event's)"))
    sales_end = _when(_l("Sales close (optional; else the event's)"))

    def fields(self) -> TicketTypeFields:
        return TicketTypeFields(
            name=self.name.data or "",
            description=self.description.data or "",
            price=self.price.data or "",
            capacity=self.capacity.data,
            max_per_order=self.max_per_order.data,
            sales_start=self.sales_start.data,
            sales_end=self.sales_end.data,
        )

    @classmethod
    def of(cls, tt, event) -> TicketTypeForm:
        tz = event.timezone
        return cls(
            formdata=None,
            name=tt.name,
            description=tt.description,
            price=str(money.to_major(tt.price_minor, event.currency)),
            capacity=tt.capacity,
            max_per_order=tt.max_per_order,
            sales_start=local_time.to_local(tt.sales_start, tz),
            sales_end=local_time.to_local(tt.sales_end, tz),
        )


class CoverForm(FlaskForm):
    image = FileField(
        _l("Cover image (JPEG, PNG or WebP)"),
        validators=[FileRequired(_l("Choose an image file."))],
        render_kw={"accept": "image/jpeg,image/png,image/webp"},
    )


class MoveForm(FlaskForm):
    direction = HiddenField(validators=[AnyOf(("up", "down"), message=_l("Move a ticket type up or down."))])
