"""Cover images: an upload is checked, re-encoded without its metadata, resized, stored
under a random name and served as image/jpeg; not an image, another format, too many
pixels (a decompression bomb) and too large a body are refused, with nothing stored;
the upload's own body limit leaves the shop's 64 KiB as it was; 40 fast uploads from one
address are cut off at the limit. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from storefront.extensions import db
from storefront.models import Event
from storefront.staff_models import Role

from .admin_support import add_member, audit_entries, make_event_of, make_organiser, make_user, sign_in_as, snapshot


def _png(size=(3000, 2000), color=(200, 30, 90), mode="RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG", **save)
    return out.getvalue()


def _jpeg_with_gps(size=(1200, 800)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # rotated: width and height swap on display
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


@pytest.fixture
def setup(app, tmp_path):
    app.instance_path = str(tmp_path / "instance")
    organiser = make_organiser("covers")
    owner = make_user("owner@covers.example")
    add_member(owner, organiser, Role.OWNER)
    event = make_event_of(organiser, "Cover Night", slug="cover-night")
    client = app.test_client()
    sign_in_as(client, owner)
    return client, event, Path(app.instance_path) / "covers"


def upload(client, data: bytes, filename="photo.png"):
    return client.post(
        "/admin/o/covers/events/cover-night/cover",
        data={"image": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def _cover() -> str | None:
    db.session.rollback()
    return db.session.execute(db.select(Event.cover_image).where(Event.slug == "cover-night")).scalar_one()


def test_an_image_is_reencoded_resized_stripped_and_served(setup, client):
    admin, event, folder = setup
    answer = upload(admin, _jpeg_with_gps(), filename="../../etc/passwd.jpg")
    assert answer.status_code == 303, answer.get_data(as_text=True)[:1000]
    name = _cover()
    assert name and "passwd" not in name and len(name) >= 20
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.jpg", f"{name}-thumb.jpg"])
    served = client.get(f"/media/covers/{name}.jpg")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    image = Image.open(io.BytesIO(served.data))
    assert image.format == "JPEG"
    assert image.size == (600, 900)  # turned as its EXIF said (800x1200), then bounded to 1600x900
    assert not image.getexif() and "comment" not in image.info and b"SpyCam" not in served.data
    thumb = Image.open(io.BytesIO(client.get(f"/media/covers/{name}-thumb.jpg").data))
    assert thumb.size[0] <= 320 and thumb.size[1] <= 180
    (entry,) = audit_entries(action="cover_changed")
    assert name in entry.after
    page = client.get("/events/cover-night").get_data(as_text=True)
    assert f'src="/media/covers/{name}.jpg"' in page
    assert f"/media/covers/{name}-thumb.jpg" in client.get("/").get_data(as_text=True)
    assert f"/media/covers/{name}-thumb.jpg" in admin.get("/admin/o/covers/events").get_data(as_text=True)
    # A large PNG (with transparency) comes out within bounds, as a JPEG.
    assert upload(admin, _png((4000, 1000), (0, 0, 0, 0), mode="RGBA")).status_code == 303
    big = Image.open(io.BytesIO(client.get(f"/media/covers/{_cover()}.jpg").data))
    assert big.size == (1600, 400) and big.mode == "RGB"
    # Removing it.
    assert admin.post("/admin/o/covers/events/cover-night/cover/remove").status_code == 303
    assert _cover() is None


@pytest.mark.parametrize(
    "data, words",
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "not an image we can read"),
        (b"%PDF-1.4 not an image", "not an image we can read"),
        (_png((300, 200))[:45], "not an image we can read"),  # cut off
    ],
)
def test_what_is_not_a_whole_image_is_refused(setup, data, words):
    admin, _event, folder = setup
    before = snapshot()
    answer = upload(admin, data)
    assert answer.status_code == 400 and words in answer.get_data(as_text=True)
    assert snapshot() == before and not (folder.exists() and any(folder.iterdir()))


def test_other_formats_are_refused(setup):
    admin, _event, _folder = setup
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "GIF")
    answer = upload(admin, out.getvalue(), "x.gif")
    assert answer.status_code == 400 and "Upload a JPEG, PNG or WebP image" in answer.get_data(as_text=True)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(setup):
    admin, _event, _folder = setup
    # 10,000 x 10,000 one-bit pixels: a few kilobytes of PNG, 100 megapixels decoded.
    bomb = _png((10_000, 10_000), 0, mode="1", optimize=True)
    assert len(bomb) < 64 * 1024
    before = snapshot()
    answer = upload(admin, bomb)
    assert answer.status_code == 400 and "too many pixels" in answer.get_data(as_text=True)
    assert snapshot() == before


@pytest.mark.app_config(COVER_IMAGE_MAX_BYTES=200_000)
def test_a_file_over_the_limit_is_refused_and_the_shop_keeps_its_own(setup, client):
    admin, _event, _folder = setup
    noise = Image.frombytes("RGB", (250, 250), os.urandom(250 * 250 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")
    data = out.getvalue()
    assert 100_000 < len(data) < 200_000 + 64 * 1024
    before = snapshot()
    answer = upload(admin, data + b"\x00" * 250_000)
    assert answer.status_code == 413
    assert snapshot() == before
    # Between the shop's 64 KiB and the upload's limit: fine for the upload route only.
    assert upload(admin, data).status_code in (303, 400)
    form = {"email": "a@example.com", "first-1": "x" * 100_000}
    assert client.post("/checkout", data=form).status_code == 413
    assert admin.post("/admin/o/covers/settings", data={"contact_email": "x" * 100_000}).status_code == 413


def test_forty_fast_uploads_are_cut_off_at_the_limit(setup):
    admin, _event, _folder = setup
    from flask import current_app

    current_app.config["LIMIT_COVER_UPLOADS"] = "5 per hour"
    small = _png((64, 36))
    answers = [upload(admin, small).status_code for _ in range(40)]
    assert answers[:5] == [303] * 5
    assert set(answers[5:]) == {429}
    assert len(audit_entries(action="cover_changed")) == 5


def test_a_cover_name_that_is_not_stored_is_not_found(setup, client):
    assert client.get("/media/covers/nothing-here.jpg").status_code == 404
    assert client.get("/media/covers/..%2F..%2Fsecret_key.jpg").status_code == 404
