"""Reading tickets back as a person's tools would: a QR code decoded from pixels (zxing-cpp),
a PDF's text and images (pypdf), a calendar file (icalendar)."""

from __future__ import annotations

import io

import zxingcpp
from icalendar import Calendar
from PIL import Image
from pypdf import PdfReader

# Names in three scripts: Latin with diacritics, Chinese, polytonic Greek.
NAMES = [("Zoë", "Ødegård"), ("李", "小龍"), ("Ἀριστοτέλης", "Σταγειρίτης")]


def decode_qr(image: Image.Image) -> list[str]:
    """The text of every QR code zxing-cpp finds in the picture."""
    return [barcode.text for barcode in zxingcpp.read_barcodes(image.convert("L"))]


def decode_qr_png(png: bytes) -> list[str]:
    return decode_qr(Image.open(io.BytesIO(png)))


def pdf_pages(data: bytes) -> list[tuple[str, list[str]]]:
    """(text, decoded QR codes of its images) of each page of a PDF."""
    reader = PdfReader(io.BytesIO(data))
    pages = []
    for page in reader.pages:
        codes = [text for picture in page.images for text in decode_qr(picture.image)]
        pages.append((page.extract_text(), codes))
    return pages


def calendar_event(data: bytes):
    calendar = Calendar.from_ical(data)
    [event] = calendar.walk("VEVENT")
    return calendar, event
