"""Stage images for OpenFace: decode, upscale (bicubic) and add a replicated border.

FER2013 faces are 48x48 px, below what OpenFace's detector finds (MTCNN's smallest face
is about 60 px; OpenFace issues #549 and #744: 48-50 px images fail, 100 px work). Each
image is therefore upscaled with OpenCV (bicubic) so that its short side reaches about
200 px, and given a replicated border so the face is not cut at the frame's edge. On the
FER2013 test images this took detection from 0% to 82% (see ``data/`` READMEs).

Limits keep one odd file from taking the machine: an image above ``MAX_INPUT_PIXELS`` is
rejected from its header before it is decoded (Pillow reads only the header), upscaling
never takes the long side beyond ``MAX_STAGED_SIDE`` (a 1x10000 px PNG is not blown up
200 times to 3 GB), and the border is at most ``MAX_BORDER`` px.

Beside each staged ``<key>.png`` the staging is recorded in ``<key>.geometry.json``
(``Geometry``: the decoded image's size, the factor and the border), so that coordinates
OpenFace reports in the staged copy (its 2D landmarks) can be mapped back to the original
image (``Geometry.to_original``).
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from openface_runner.errors import StageError

if TYPE_CHECKING:
    import numpy as np

    from openface_runner.inputs import InputImage

TARGET_SIDE = 200  # px: the face size OpenFace handles well
BORDER_SHARE = 0.25  # border as a share of the upscaled short side
MAX_STAGED_SIDE = 4096  # px: upscaling stops where the long side would pass this
MAX_BORDER = MAX_STAGED_SIDE // 4  # px
MAX_INPUT_PIXELS = 64_000_000  # width x height of an input image (an 8000x8000 photo)
CORRUPT = "unreadable or corrupt image"


class Geometry(NamedTuple):
    """How one image was staged: its decoded size (px, EXIF orientation applied), the
    upscaling factor and the replicated border (px) of the staged copy."""

    width: int
    height: int
    factor: float
    border: int

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """A point of the staged copy in pixels of the original image, clipped to it.

        OpenCV's resize puts the centre of original pixel ``i`` at ``(i + 0.5) * factor - 0.5``
        in the upscaled image (pixel centres at whole numbers); the border shifts it by
        ``border``. Inverted: ``x_orig = (x_staged - border + 0.5) / factor - 0.5``, then clipped
        to ``0..width`` (``0..height`` for ``y``).
        """
        ox = (x - self.border + 0.5) / self.factor - 0.5
        oy = (y - self.border + 0.5) / self.factor - 0.5
        return min(max(ox, 0.0), float(self.width)), min(max(oy, 0.0), float(self.height))

    @classmethod
    def read(cls, path: Path) -> Geometry | None:
        """The geometry recorded in ``path``; None when missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(int(data["width"]), int(data["height"]), float(data["factor"]), int(data["border"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def geometry_path(staged: Path) -> Path:
    """``<key>.png`` -> ``<key>.geometry.json`` beside it."""
    return staged.with_name(staged.stem + ".geometry.json")


def upscale_factor(short_side: int, upscale: float | None, long_side: int | None = None) -> float:
    """The factor used: ``upscale`` when given, else round(200 / short side); at least 1.

    Args:
        short_side, long_side: the image's sides in px; with ``long_side`` the factor is
            capped so that the long side stays within ``MAX_STAGED_SIDE`` (never below 1).
        upscale: the requested factor (>= 1, finite), or None for automatic.

    Raises:
        ValueError: ``upscale`` is below 1 or not finite.
    """
    if upscale is not None:
        if not math.isfinite(upscale) or upscale < 1:
            raise ValueError(f"upscale factor must be a finite number >= 1, got {upscale}")
        factor = float(upscale)
    else:
        factor = float(max(1, round(TARGET_SIDE / short_side)))
    if long_side:
        factor = min(factor, max(1.0, MAX_STAGED_SIDE / long_side))
    return factor


def check_size(data: bytes, suffix: str) -> None:
    """Reject an image whose header declares more than ``MAX_INPUT_PIXELS``, before decoding.

    Formats Pillow does not know are left to OpenCV (which has its own limit, 2^30 px).

    Raises:
        StageError: the image is too large.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise StageError(f"image too large to stage ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not for Pillow to judge; OpenCV decides below
    if width * height > MAX_INPUT_PIXELS:
        raise StageError(
            f"image too large to stage ({width}x{height} px, above the limit of {MAX_INPUT_PIXELS:,} px)"
        )


def decode_pixels(data: bytes, suffix: str) -> np.ndarray:
    """Decode image bytes with OpenCV (BGR, 8 bit, EXIF orientation applied).

    Raises:
        StageError: empty, not decodable, or refused by OpenCV (e.g. over its pixel limit).
    """
    import cv2
    import numpy as np

    if not data:
        raise StageError(f"{CORRUPT} ({suffix}: empty file)")
    check_size(data, suffix)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        detail = getattr(exc, "err", "") or str(exc).strip().splitlines()[-1]
        if "MAX_IMAGE_PIXELS" in detail:
            detail = "over OpenCV's pixel limit of 2^30 px"
        raise StageError(f"{CORRUPT} ({suffix}: OpenCV refused it, {detail})") from None
    if pixels is None or pixels.size == 0:
        raise StageError(f"{CORRUPT} ({suffix})")
    return pixels


def stage(
    image: InputImage, staged_dir: Path, upscale: float | None = None, border: int | None = None
) -> Path:
    """Write ``staged_dir/<key>.png``: the image upscaled (bicubic) with a replicated border.

    Args:
        image: the input.
        staged_dir: destination folder.
        upscale: factor (>= 1); ``None`` = automatic (48 px -> 192 px); capped so that the
            long side stays within ``MAX_STAGED_SIDE`` px.
        border: border in px (0 to ``MAX_BORDER``); ``None`` = 25% of the upscaled short
            side when upscaling, else 0.

    Returns:
        The staged PNG (lossless; pixel values 0-255 as read), with its ``Geometry`` in
        ``<key>.geometry.json`` beside it. An existing pair is reused.

    Raises:
        StageError: the file cannot be read, decoded or written (the image's failure reason).
        ValueError: ``upscale`` or ``border`` out of range.
    """
    import cv2

    if border is not None and not 0 <= border <= MAX_BORDER:
        raise ValueError(f"border must be 0 to {MAX_BORDER} px, got {border}")
    target = staged_dir / f"{image.key}.png"
    if target.exists() and geometry_path(target).exists():
        return target
    suffix = image.path.suffix.lower()
    try:
        data = image.path.read_bytes()
    except OSError as exc:
        raise StageError(f"unreadable file ({exc.strerror})") from None
    pixels = decode_pixels(data, suffix)
    height, width = pixels.shape[:2]
    factor = upscale_factor(min(height, width), upscale, max(height, width))
    if factor != 1:
        pixels = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    auto_border = min(MAX_BORDER, round(BORDER_SHARE * min(pixels.shape[:2]))) if factor > 1 else 0
    pad = border if border is not None else auto_border
    if pad:
        pixels = cv2.copyMakeBorder(pixels, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    staged_dir.mkdir(parents=True, exist_ok=True)
    geometry = Geometry(width, height, factor, pad)._asdict()
    partial_geometry = staged_dir / f".{image.key}.partial.json"
    try:
        partial_geometry.write_text(json.dumps(geometry) + "\n", encoding="utf-8")
    except OSError as exc:
        raise StageError(f"could not write the staged copy's geometry ({exc.strerror})") from None
    os.replace(partial_geometry, geometry_path(target))  # before the PNG: a PNG always has its geometry
    partial = staged_dir / f".{image.key}.partial.png"
    try:
        written = cv2.imwrite(str(partial), pixels)
    except cv2.error as exc:
        raise StageError(f"could not write the staged copy ({str(exc).strip().splitlines()[-1]})") from None
    if not written:
        raise StageError(f"could not write the staged copy {partial}")
    os.replace(partial, target)
    return target
