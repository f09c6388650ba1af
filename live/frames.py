"""Checking what a client sends before any of it is decoded: sizes, kinds, dimensions.

Every check raises :class:`InputError` with one line for the client; nothing is written to disk.
Dimensions are read from the image header by Pillow (no pixels decoded), so a 1x10,000 or a
60,000x60,000 image is refused before OpenCV would allocate it.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np

JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


class InputError(ValueError):
    """An input the server refuses; the message is one line for the client."""


@dataclass(frozen=True)
class Limits:
    """What one client may send (the README and ``GET /health`` state them).

    ``frame_bytes``: one WebSocket frame (JPEG); ``transport_bytes``: the largest WebSocket message
    the server reads at all (a larger one closes the connection, code 1009); ``upload_bytes``: one
    ``POST /api/explain`` file; ``min_side``/``max_side``: image sides in pixels; ``fps``: frames a
    client may send per second; ``clients``: WebSocket connections at once; ``video_frames``: frames
    of an uploaded video explained (the first ones); ``record_rows``: rows one recording keeps.
    """

    frame_bytes: int = 2 * 1024 * 1024
    transport_bytes: int = 64 * 1024 * 1024
    upload_bytes: int = 20 * 1024 * 1024
    min_side: int = 32
    max_side: int = 4096
    fps: int = 60
    clients: int = 8
    video_frames: int = 900
    record_rows: int = 200_000

    def as_dict(self) -> dict:
        return asdict(self)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def check_frame(data: bytes, limits: Limits) -> None:
    """A WebSocket frame must be a whole JPEG within the size limit.

    Raises:
        InputError: empty, over ``limits.frame_bytes``, not a JPEG, or truncated (no end marker).
    """
    if not data:
        raise InputError("empty message: send one JPEG image per binary message")
    if len(data) > limits.frame_bytes:
        raise InputError(f"frame of {_size(len(data))} is over the limit of {_size(limits.frame_bytes)}")
    if not data.startswith(JPEG_START):
        raise InputError(f"not a JPEG image ({len(data):,} bytes that do not start with a JPEG marker)")
    # A browser's or OpenCV's JPEG ends with the end-of-image marker; a cut one does not, and
    # OpenCV would decode it anyway, grey below the cut.
    if JPEG_END not in data[-16:]:
        raise InputError(f"truncated JPEG ({len(data):,} bytes, no end-of-image marker)")


def check_dimensions(data: bytes, limits: Limits) -> tuple[int, int]:
    """(width, height) from the image header, within ``min_side``-``max_side``.

    Raises:
        InputError: no image Pillow can identify, or a side out of bounds.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"not an image ({' '.join(str(error).split())[:120]})") from None
    if max(width, height) > limits.max_side:
        raise InputError(f"{width}x{height} pixels: a side is over the limit of {limits.max_side} px")
    if min(width, height) < limits.min_side:
        raise InputError(
            f"{width}x{height} pixels: a side is under {limits.min_side} px, too small for a face"
        )
    return width, height


def decode(data: bytes) -> np.ndarray:
    """BGR pixels (h, w, 3) uint8 of checked image bytes.

    Raises:
        InputError: OpenCV cannot decode them.
    """
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InputError(f"an image header but no pixels OpenCV can decode ({len(data):,} bytes)")
    return image
