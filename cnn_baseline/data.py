"""FER2013 (Goodfellow et al. 2013, "Challenges in representation learning") readers.

Two public forms are read into one table (``emotion``: FER2013 code 0-6, ``pixels``:
uint8 48x48, ``Usage``: Training / PublicTest / PrivateTest, ``image``: file stem if known):

- the Kaggle CSV ``emotion,pixels,Usage`` (plain or ``.gz``; extra columns tolerated);
- the image-folder layout ``train/<emotion>/*.jpg`` and
  ``test/<emotion>/{PublicTest,PrivateTest}_*.jpg``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.labels import FER2013_CODES, name_for
from cnn_baseline.errors import FER2013Error

__all__ = ["CLASS_NAMES", "DEFAULT_PATH", "FER2013Error", "SIDE", "arrays", "load_fer2013", "resized"]

SIDE = 48
USAGES = ("Training", "PublicTest", "PrivateTest")
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "fer2013" / "fer2013.csv.gz"
CLASS_NAMES = [FER2013_CODES[i] for i in range(7)]


def load_fer2013(path: str | os.PathLike[str] = DEFAULT_PATH) -> pd.DataFrame:
    """Read FER2013 from a CSV file or an image folder.

    Returns:
        DataFrame with ``emotion`` (int 0-6), ``Usage``, ``image`` (may be empty) and
        ``pixels`` (one ``uint8`` array of shape (48, 48) per row, values 0-255).

    Raises:
        FER2013Error: missing path, wrong columns, a pixel string that is not 2,304
            integers in 0-255, an unknown emotion code or Usage (row numbers are data rows).
    """
    path = Path(path)
    if path.is_dir():
        return _load_folder(path)
    if not path.is_file():
        raise FER2013Error(
            f"{path}: no such file or folder; the full FER2013 is not in the repository: download "
            "fer2013.csv (in fer2013.tar.gz) from Kaggle's \"Challenges in Representation Learning: Facial "
            'Expression Recognition Challenge", gzip it to data/fer2013/fer2013.csv.gz, or pass '
            "--data (make: FER2013=<csv or image folder>)"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise FER2013Error(f"{path}: not a readable CSV ({exc})") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in ("emotion", "pixels", "Usage") if c not in frame]
    if missing:
        raise FER2013Error(
            f"{path}: missing column(s) {', '.join(missing)}; FER2013 has emotion,pixels,Usage"
        )
    if frame.empty:
        raise FER2013Error(f"{path}: no data rows")
    emotion = pd.to_numeric(frame["emotion"].str.strip(), errors="coerce")
    bad = ~emotion.isin(list(range(7)))
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise FER2013Error(
            f"{path}: data row {i + 1}: emotion {frame['emotion'].iloc[i]!r} is not a code 0-6"
        )
    usage = frame["Usage"].str.strip()
    bad = ~usage.isin(USAGES)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise FER2013Error(f"{path}: data row {i + 1}: unknown Usage {usage.iloc[i]!r} ({', '.join(USAGES)})")
    pixels = [_pixels(text, i, path) for i, text in enumerate(frame["pixels"])]
    image = frame["image"] if "image" in frame else pd.Series([""] * len(frame))
    return pd.DataFrame(
        {
            "emotion": emotion.astype(int).to_numpy(),
            "Usage": usage.to_numpy(),
            "image": image.to_numpy(),
            "pixels": pixels,
        }
    )


def arrays(table: pd.DataFrame, usage: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one Usage: x (n, 48, 48, 1) uint8 pixels 0-255, y (n,) codes 0-6."""
    part = table[table["Usage"] == usage]
    if part.empty:
        return np.zeros((0, SIDE, SIDE, 1), np.uint8), np.zeros(0, int)
    return np.stack(part["pixels"].to_list())[..., None], part["emotion"].to_numpy()


def resized(pixels: np.ndarray, side: int) -> np.ndarray:
    """(n, h, w, 1) uint8 faces -> (n, side, side, 1), bilinear (OpenCV); as given when already
    ``side`` wide. The original mini-XCEPTION took the 48x48 FER2013 faces at 64x64."""
    if pixels.shape[1:3] == (side, side):
        return pixels
    import cv2

    faces = [cv2.resize(face[..., 0], (side, side), interpolation=cv2.INTER_LINEAR) for face in pixels]
    return np.asarray(faces, dtype=np.uint8).reshape(len(pixels), side, side, 1)


def _pixels(text: str, index: int, path: Path) -> np.ndarray:
    values = text.split()
    if len(values) != SIDE * SIDE:
        raise FER2013Error(
            f"{path}: data row {index + 1}: {len(values)} pixel values, expected {SIDE * SIDE}"
        )
    try:
        numbers = np.array(values, dtype=np.int64)
    except ValueError:
        raise FER2013Error(f"{path}: data row {index + 1}: pixels are not all integers") from None
    if numbers.min() < 0 or numbers.max() > 255:
        raise FER2013Error(f"{path}: data row {index + 1}: pixel values outside 0-255")
    return numbers.astype(np.uint8).reshape(SIDE, SIDE)


def _load_folder(root: Path) -> pd.DataFrame:
    import cv2

    code_of = {name: code for code, name in FER2013_CODES.items()}
    rows = []
    for path in sorted(root.glob("*/*/*")):
        split, folder = path.parts[-3], path.parts[-2]
        name = name_for(folder, "name")
        if split not in ("train", "test") or name is None or not path.is_file():
            continue
        usage = "Training" if split == "train" else path.stem.split("_")[0]
        if usage not in USAGES:
            raise FER2013Error(f"{path}: cannot tell the Usage from the file name")
        pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if pixels is None:
            raise FER2013Error(f"{path}: unreadable image")
        if pixels.shape != (SIDE, SIDE):
            pixels = cv2.resize(pixels, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        rows.append({"emotion": code_of[name], "Usage": usage, "image": path.stem, "pixels": pixels})
    if not rows:
        raise FER2013Error(f"{root}: no train/<emotion>/ or test/<emotion>/ images found")
    return pd.DataFrame(rows)
