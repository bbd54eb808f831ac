"""An order's tickets as a PDF (fpdf2): one A4 page per ticket, to print or to keep on a phone.

Each page names the organiser, the event, its date and time in the event's timezone with
the zone named, the venue, the attendee, the ticket type, the order code, the ticket code
and the ticket's QR code (its secret, ``storefront.ticket_qr``). A void ticket's page says
so in place of the QR code.

Fonts: PDF's built-in fonts know Latin-1 only, so a TrueType font is embedded (subset to
the characters used): DejaVu Sans from Debian's ``fonts-dejavu-core`` (Latin, Greek,
Cyrillic, …), with Droid Sans Fallback from ``fonts-droid-fallback`` as the fallback for
what DejaVu lacks (Chinese, Japanese, Korean). ``TICKET_PDF_FONT``,
``TICKET_PDF_FONT_BOLD`` and ``TICKET_PDF_FALLBACK_FONTS`` (comma-separated) name other
files. Scripts that need shaping (Arabic, Devanagari) are not shaped.

Rendering takes about a fifth of a second, mostly reading the font's tables (half a
second more when a name needs the fallback font, which is read only then): it happens
when a buyer downloads the PDF and when the confirmation mail is built, never on the
event page or in the cart.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from fpdf import FPDF

from .formatting import event_time, money
from .models import Order, TicketStatus
from .ticket_qr import qr_png
from .tickets import format_ticket_code

log = logging.getLogger(__name__)

FONT = "TicketSans"
FALLBACK = "TicketFallback"
INK = (27, 27, 27)
MUTED = (96, 96, 96)
ACCENT = (59, 37, 135)


def filename(order: Order) -> str:
    return f"tickets-{order.code}.pdf"


def _fonts(pdf: FPDF, texts: list[str]) -> None:
    """The main font, and the fallbacks only if ``texts`` need them: reading a CJK font's
    tables costs half a second, ten times the main font's, and most orders need none."""
    config = current_app.config
    pdf.add_font(FONT, "", config["TICKET_PDF_FONT"])
    pdf.add_font(FONT, "B", config["TICKET_PDF_FONT_BOLD"])
    known = pdf.fonts[FONT.lower()].cmap
    if all(ord(ch) in known for text in texts for ch in text if not ch.isspace()):
        return
    fallbacks = []
    for n, path in enumerate(config["TICKET_PDF_FALLBACK_FONTS"]):
        if not Path(path).is_file():
            log.warning("ticket PDF: fallback font %s is missing; characters only it has will not show", path)
            continue
        name = f"{FALLBACK}{n}"
        pdf.add_font(name, "", path)
        fallbacks.append(name)
    if fallbacks:
        # exact_match=False: bold text falls back to the regular face of a fallback font.
        pdf.set_fallback_fonts(fallbacks, exact_match=False)


def _texts(order: Order) -> list[str]:
    """What the pages print that does not come from our own words: names, places, dates."""
    event = order.event
    texts = [event.organiser.name, event.title, event.venue, event_time(event.starts_at, event.timezone)]
    for ticket in order.tickets:
        texts += [ticket.attendee_first_name, ticket.attendee_last_name, ticket.ticket_type.name]
    return texts


def order_pdf(order: Order) -> bytes:
    """The PDF of ``order`` (its tickets, their types, its event and organiser loaded),
    in the order's language (kept from its checkout), whoever downloads it."""
    with force_locale(order.locale):
        return _order_pdf(order)


def _order_pdf(order: Order) -> bytes:
    event = order.event
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(_("Tickets for %(title)s (order %(code)s)", title=event.title, code=order.code))
    pdf.set_author(event.organiser.name)
    pdf.set_creator("Storefront")
    pdf.set_auto_page_break(False)
    pdf.set_margins(20, 20, 20)
    _fonts(pdf, _texts(order))
    count = len(order.tickets)
    for number, ticket in enumerate(order.tickets, start=1):
        _ticket_page(pdf, order, ticket, number, count)
    return bytes(pdf.output())


def _line(pdf: FPDF, text: str, size: float, *, bold: bool = False, color=INK, height: float | None = None) -> None:
    pdf.set_font(FONT, "B" if bold else "", size)
    pdf.set_text_color(*color)
    pdf.multi_cell(w=0, h=height or size * 0.5, text=text, new_x="LMARGIN", new_y="NEXT")


def _ticket_page(pdf: FPDF, order: Order, ticket, number: int, count: int) -> None:
    event = order.event
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    _line(pdf, event.organiser.name, 11, color=MUTED)
    pdf.ln(2)
    _line(pdf, event.title, 24, bold=True, height=11)
    pdf.ln(2)
    _line(pdf, event_time(event.starts_at, event.timezone), 12)
    if event.venue:
        _line(pdf, event.venue, 12)
    pdf.ln(6)
    pdf.set_draw_color(*MUTED)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
    pdf.ln(8)

    top = pdf.get_y()
    qr_size = 70
    text_width = width - qr_size - 10
    pdf.set_x(pdf.l_margin)

    def field(label: str, value: str, size: float = 14, bold: bool = False) -> None:
        pdf.set_font(FONT, "", 9)
        pdf.set_text_color(*MUTED)
        pdf.multi_cell(w=text_width, h=5, text=label, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "B" if bold else "", size)
        pdf.set_text_color(*INK)
        pdf.multi_cell(w=text_width, h=size * 0.5, text=value, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    field(_("Attendee"), f"{ticket.attendee_first_name} {ticket.attendee_last_name}", 18, bold=True)
    field(_("Ticket"), ticket.ticket_type.name)
    field(_("Ticket code"), format_ticket_code(ticket.code), 16, bold=True)
    field(_("Order"), order.code, 12)
    field(_("Price"), money(ticket.price_minor, order.currency), 12)
    bottom = pdf.get_y()

    qr_x = pdf.l_margin + width - qr_size
    if ticket.status == TicketStatus.VALID.value:
        pdf.image(io.BytesIO(qr_png(ticket.secret)), x=qr_x, y=top, w=qr_size, h=qr_size)
        pdf.set_xy(qr_x, top + qr_size + 1)
        pdf.set_font(FONT, "", 9)
        pdf.set_text_color(*MUTED)
        pdf.multi_cell(w=qr_size, h=4.5, text=_("Show this code at the door."), align="C")
    else:
        pdf.set_xy(qr_x, top)
        pdf.set_font(FONT, "B", 14)
        pdf.set_text_color(160, 30, 30)
        words = (
            _("VOID: this ticket was refunded and is not valid.")
            if ticket.status == TicketStatus.VOID.value
            else _("This ticket was used at the door.")
        )
        pdf.multi_cell(w=qr_size, h=7, text=words, border=1, align="C", padding=4)
    pdf.set_y(max(bottom, top + qr_size + 12) + 6)

    pdf.set_draw_color(*MUTED)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
    pdf.ln(6)
    _line(pdf, _("What to bring"), 12, bold=True, color=ACCENT)
    pdf.ln(1)
    _line(
        pdf,
        _(
            "This page, printed or on your phone: one QR code for each person. The code works once, "
            "so keep it to yourself and do not post it online. If it will not scan, the door can type the ticket code."
        ),
        10,
        height=5,
    )
    pdf.set_y(pdf.h - 20)
    _line(
        pdf,
        _("Ticket %(number)d of %(count)d · order %(code)s", number=number, count=count, code=order.code),
        9,
        color=MUTED,
    )
