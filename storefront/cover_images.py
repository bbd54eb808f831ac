"""Events' cover images: checked, re-encoded, resized and stored under a random name.

An upload is never kept as it came. Pillow opens it (reading only its header first),
and it is refused unless it is a JPEG, PNG or WebP of at most ``MAX_PIXELS`` pixels
(checked before any pixel is decoded, so a decompression bomb costs nothing), whose
pixels then decode whole. It is turned the way its EXIF orientation says, converted to
RGB and written anew as a JPEG: metadata (EXIF, GPS, comments, ICC) and anything hidden
after the image data are left behind. Two sizes are kept, at most ``LARGE`` for the
event page and ``THUMB`` for the events lists, as ``<name>.jpg`` and ``<name>-thumb.jpg``
in ``instance/covers``, where ``name`` is random (``secrets.token_urlsafe``): the
uploaded file's name is never used, nor shown.

They are served by ``serve`` as ``image/jpeg`` (with ``nosniff``, as every answer), and
cached for long: a new upload gets a new name. Anyone with the name can fetch the
image, a draft's too; names are unguessable, and a cover is meant to be public.
"""

from __future__ import annotations

import io
import secrets
import warnings
from pathlib import Path

from flask import Response, abort, current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from .event_errors import InvalidCoverImage

FORMATS = {"JPEG", "PNG", "WEBP"}
MAX_PIXELS = 40_000_000
LARGE = (1600, 900)
THUMB = (320, 180)
QUALITY = 85
FOLDER = "covers"


def folder() -> Path:
    path = Path(current_app.instance_path) / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def _decoded(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past its own pixel limit; ours is checked first.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise InvalidCoverImage(InvalidCoverImage.FORMAT)
            width, height = image.size
            if width * height > MAX_PIXELS or width < 1 or height < 1:
                raise InvalidCoverImage(InvalidCoverImage.TOO_MANY_PIXELS)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidCoverImage(InvalidCoverImage.TOO_MANY_PIXELS) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidCoverImage(InvalidCoverImage.NOT_AN_IMAGE) from None
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA")
    if image.mode != "RGB":
        # Transparent parts over white, as the page's background.
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    # The pixels alone, in a new image: nothing of the file's info (EXIF, comment, ICC) comes along.
    return Image.frombytes("RGB", image.size, image.tobytes())


def _encoded(image: Image.Image, bounds: tuple[int, int]) -> bytes:
    copy = image.copy()
    copy.thumbnail(bounds, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()


def store(data: bytes) -> str:
    """Check and store an uploaded image; its new random name (``InvalidCoverImage`` if refused)."""
    if len(data) > current_app.config["COVER_IMAGE_MAX_BYTES"]:
        raise InvalidCoverImage(InvalidCoverImage.TOO_LARGE)
    image = _decoded(data)
    name = secrets.token_urlsafe(18)
    target = folder()
    for suffix, bounds in (("", LARGE), ("-thumb", THUMB)):
        path = target / f"{name}{suffix}.jpg"
        partial = path.with_suffix(".part")
        partial.write_bytes(_encoded(image, bounds))
        partial.replace(path)  # whole or not at all
    return name


def serve(filename: str):
    """A stored cover (``<name>.jpg`` or ``<name>-thumb.jpg``), or 404."""
    if not (target := folder() / f"{filename}.jpg").is_file():
        abort(404)
    response = Response(target.read_bytes(), mimetype="image/jpeg")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["Content-Disposition"] = "inline"
    return response
