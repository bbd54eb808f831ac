"""A ticket's QR code: it carries the ticket's secret, exactly as stored, and nothing else.

The door scans it and looks the ticket up by its secret; whoever can read the code holds
the ticket, so it is drawn only where the ticket's holder is: the order page (reached by
the order's token), the success page (the browser that paid) and the PDF. SVG inline for
pages (no image request: the CSP stays ``'self'``), PNG for the PDF. Error correction
"Q" (a quarter of the code can be lost: a cracked phone screen, a folded print).
"""

from __future__ import annotations

import io

import segno
from flask import Flask
from markupsafe import Markup

ERROR_CORRECTION = "q"


def _qr(secret: str) -> segno.QRCode:
    return segno.make(secret, error=ERROR_CORRECTION, micro=False, boost_error=False)


def qr_svg(secret: str) -> Markup:
    """The QR code as an inline ``<svg>`` element that scales with its box (the
    template filter ``qr_svg``)."""
    return Markup(_qr(secret).svg_inline(scale=1, border=4, dark="#000000", light="#ffffff", omitsize=True))


def qr_png(secret: str, *, scale: int = 10) -> bytes:
    """The QR code as a PNG (black on white, a quiet zone of 4 modules)."""
    out = io.BytesIO()
    _qr(secret).save(out, kind="png", scale=scale, border=4, dark="#000000", light="#ffffff")
    return out.getvalue()


def init_app(app: Flask) -> None:
    app.add_template_filter(qr_svg, "qr_svg")
