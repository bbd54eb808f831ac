"""QR codes as pictures for the door's tests: segno makes the code, and these turn it into
the grey pixels a camera would see (a PNG-free 8-bit image) and into a Y4M video that
Chromium's fake camera plays (``--use-file-for-fake-video-capture``)."""

from __future__ import annotations

from pathlib import Path

import segno

WIDTH, HEIGHT = 640, 480


def qr_pixels(data: str, *, width: int = WIDTH, height: int = HEIGHT, scale: int = 8) -> bytes:
    """``data`` as a QR code, black on white, centred in a ``width`` × ``height`` grey
    image (one byte a pixel, rows top to bottom), with its quiet zone around it."""
    qr = segno.make(data, error="m", micro=False)
    matrix = [list(row) for row in qr.matrix]
    size = len(matrix) * scale
    if size > min(width, height) - 8 * scale:
        raise ValueError("the QR code does not fit: use a smaller scale")
    left, top = (width - size) // 2, (height - size) // 2
    image = bytearray(b"\xff" * (width * height))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + y * scale + dy) * width + left + x * scale
                    image[start : start + scale] = b"\x00" * scale
    return bytes(image)


def write_y4m(path: Path, data: str, frames: int = 10) -> Path:
    """A short grey video of the QR code of ``data`` (4:2:0, chroma neutral), as Chromium's
    fake camera reads it; it plays the file in a loop."""
    luma = qr_pixels(data)
    chroma = b"\x80" * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path
