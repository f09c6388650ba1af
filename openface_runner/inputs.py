"""Find the images of a run and stage them (upscaled) for OpenFace.

FER2013 faces are 48x48 px, below what OpenFace's detector finds (MTCNN's smallest face
is about 60 px; OpenFace issues #549 and #744: 48-50 px images fail, 100 px work). Each
image is therefore upscaled with OpenCV (bicubic) so that its short side reaches about
200 px, and given a replicated border so the face is not cut at the frame's edge. On the
FER2013 test images this took detection from 0% to 82% (see ``data/`` READMEs).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from analysis.labels import name_for

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
TARGET_SIDE = 200  # px: the face size OpenFace handles well
BORDER_SHARE = 0.25  # border as a share of the upscaled short side


class InputError(ValueError):
    """The input folder cannot be used (missing, not a folder, no files)."""


class StageError(ValueError):
    """One image cannot be staged (unreadable or not decodable)."""


@dataclass(frozen=True)
class InputImage:
    """One input file: where it is, its name in the table, its label and its staging key."""

    path: Path
    relative: str  # posix path below the input folder, the AU table's ``image``
    label: str  # workbench emotion from the first-level folder, or "" for a flat folder
    key: str  # stable ASCII name for OpenFace's folders (handles non-ASCII and duplicates)


def discover(root: str | os.PathLike[str]) -> tuple[list[InputImage], list[tuple[str, str, str]]]:
    """List a folder's images (recursively, sorted) and its non-image files.

    An image's label is its first-level folder's name when that names an emotion
    (``happy/``, ``Angry/``, ``nutral/``), else empty.

    Returns:
        ``(images, skipped)``: skipped is ``(relative path, label, reason)`` per non-image file.

    Raises:
        InputError: the folder is missing, is not a folder, or holds no files.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{root}: the folder holds no files")
    images, skipped = [], []
    for path in files:
        relative = path.relative_to(root).as_posix()
        parts = path.relative_to(root).parts
        label = (name_for(parts[0], "name") or "") if len(parts) > 1 else ""
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((relative, label, f"not an image file ({path.suffix or 'no suffix'})"))
            continue
        key = "img_" + hashlib.sha1(relative.encode("utf-8")).hexdigest()[:16]
        images.append(InputImage(path, relative, label, key))
    return images, skipped


def upscale_factor(short_side: int, upscale: float | None) -> float:
    """The factor used: ``upscale`` when given, else round(200 / short side), at least 1."""
    if upscale is not None:
        if upscale < 1:
            raise ValueError(f"upscale factor must be >= 1, got {upscale}")
        return float(upscale)
    return float(max(1, round(TARGET_SIDE / short_side)))


def stage(
    image: InputImage, staged_dir: Path, upscale: float | None = None, border: int | None = None
) -> Path:
    """Write ``staged_dir/<key>.png``: the image upscaled (bicubic) with a replicated border.

    Args:
        image: the input.
        staged_dir: destination folder.
        upscale: factor (>= 1); ``None`` = automatic (48 px -> 192 px).
        border: border in px; ``None`` = 25% of the upscaled short side when upscaling, else 0.

    Returns:
        The staged PNG (lossless; pixel values 0-255 as read). An existing one is reused.

    Raises:
        StageError: the file cannot be read or decoded as an image.
    """
    import cv2

    target = staged_dir / f"{image.key}.png"
    if target.exists():
        return target
    pixels = cv2.imread(str(image.path), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise StageError(f"unreadable or corrupt image ({image.path.suffix})")
    height, width = pixels.shape[:2]
    factor = upscale_factor(min(height, width), upscale)
    if factor != 1:
        pixels = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    pad = border if border is not None else (round(BORDER_SHARE * min(pixels.shape[:2])) if factor > 1 else 0)
    if pad:
        pixels = cv2.copyMakeBorder(pixels, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    staged_dir.mkdir(parents=True, exist_ok=True)
    partial = staged_dir / f".{image.key}.partial.png"
    if not cv2.imwrite(str(partial), pixels):
        raise StageError(f"could not write the staged copy {partial}")
    os.replace(partial, target)
    return target
