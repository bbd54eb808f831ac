"""The QR path without a browser: a ticket's QR code (segno), read back by a real decoder
(zxing-cpp) to the ticket's secret, and that secret admits the ticket at the door."""

from __future__ import annotations

import numpy
import pytest
import zxingcpp

from storefront.staff_models import Role

from .admin_support import add_member, make_event_of, make_organiser, make_user, sign_in_as
from .factories import make_order
from .qr_images import HEIGHT, WIDTH, qr_pixels


def decode(pixels: bytes) -> list[str]:
    image = numpy.frombuffer(pixels, dtype=numpy.uint8).reshape(HEIGHT, WIDTH)
    return [found.text for found in zxingcpp.read_barcodes(image)]


def test_a_decoder_reads_a_tickets_qr_code_back_to_its_secret(app):
    event = make_event_of(make_organiser("qr-hall"), "QR Night")
    order = make_order(event)
    secret = order.tickets[0].secret
    assert decode(qr_pixels(secret)) == [secret]


@pytest.mark.parametrize("scale", [4, 8])
def test_what_the_camera_reads_admits_the_ticket(app, client, scale):
    organiser = make_organiser("qr-door")
    event = make_event_of(organiser, "QR Night", slug="qr-night")
    door = make_user("door@qr.example")
    add_member(door, organiser, Role.DOOR)
    order = make_order(event, [("Quincy", "Read")])
    (read,) = decode(qr_pixels(order.tickets[0].secret, scale=scale))
    sign_in_as(client, door)
    answer = client.post(
        "/admin/o/qr-door/events/qr-night/door/scan",
        data={"secret": read, "nonce": f"qr-scan-{scale}"},
        headers={"HX-Request": "true"},
    )
    body = answer.get_data(as_text=True)
    assert 'data-verdict="admitted"' in body and "Quincy Read" in body
