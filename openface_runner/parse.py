"""Parse OpenFace's per-image outputs into AU-table rows.

``FaceLandmarkImg`` writes ``<stem>.csv`` with one row per detected face (columns
``face, confidence, AU*_r, AU*_c``; some builds put a space before every header name) and
``<stem>_of_details.txt``; when it finds no face it writes only the details file.
``FeatureExtraction`` (sequence mode) adds ``frame, face_id, timestamp, success``.
With ``-2Dfp`` (which the runner always passes) each row also has the 68 2D landmarks
``x_0..x_67, y_0..y_67`` in pixels of the image OpenFace read (pixel centres at whole
numbers); the runner keeps their bounding box (``landmark_measures``), as ``face_x,
face_y, face_w, face_h`` (``analysis.au_table.BOX_COLUMNS``), and the geometric concepts
measured on them (``analysis.concepts.CONCEPT_COLUMNS``, in inter-ocular distances).
Format: OpenFace wiki, "Output Format"
(https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS, INTENSITY_RANGE
from analysis.concepts import CONCEPT_COLUMNS, concepts_from_landmarks
from openface_runner.errors import OutputError
from openface_runner.staging import Geometry

__all__ = [
    "LANDMARKS",
    "SUCCESS_CONFIDENCE",
    "OutputError",
    "check_ranges",
    "landmark_arrays",
    "landmark_measures",
    "numeric",
    "parse_face_csv",
]

LANDMARKS = 68  # OpenFace's 2D landmarks: x_0..x_67, y_0..y_67
X_COLUMNS = tuple(f"x_{i}" for i in range(LANDMARKS))
Y_COLUMNS = tuple(f"y_{i}" for i in range(LANDMARKS))

CONFIDENCE_RANGE = (0.0, 1.0)
# the columns of an image CSV the table uses (read_csv skips the other ~600: 3D landmarks, pose...)
USED = frozenset(
    ("confidence", "face", "face_id", "success", *AU_R_COLUMNS, *AU_C_COLUMNS, *X_COLUMNS, *Y_COLUMNS)
)

# OpenFace's sequence mode marks a frame unsuccessful below this landmark-fit confidence;
# image mode writes no ``success`` column, so the same threshold is applied here.
SUCCESS_CONFIDENCE = 0.725


def numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame[columns]`` as numbers, non-numeric cells NaN (``pd.to_numeric(errors="coerce")``).

    Columns ``read_csv`` already parsed as numbers are taken as they are (the usual case, and
    much faster than converting each column: the client parses every output of a run).
    """
    part = frame[columns]
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in part.dtypes):
        return part
    return part.apply(pd.to_numeric, errors="coerce")


def check_ranges(numbers: pd.DataFrame, path: Path) -> None:
    """Every face row within the AU table's ranges: ``confidence`` 0-1, ``AU*_r`` 0-5, ``AU*_c`` 0/1.

    Raises:
        OutputError: the first value out of range, with its column and face row.
    """
    low, high = INTENSITY_RANGE
    bounds = {"confidence": CONFIDENCE_RANGE, **{c: (low, high) for c in AU_R_COLUMNS if c in numbers}}
    flags = [c for c in AU_C_COLUMNS if c in numbers]
    ranged = numbers[list(bounds)].to_numpy(dtype=float)
    lows = np.array([lo for lo, _ in bounds.values()])
    highs = np.array([hi for _, hi in bounds.values()])
    binary = numbers[flags].to_numpy(dtype=float)
    if not (((ranged < lows) | (ranged > highs)).any() or ~np.isin(binary, (0, 1)).all()):
        return  # all within range: the loops below only name the first value that is not
    for column, (lo, hi) in bounds.items():
        bad = numbers.index[(numbers[column] < lo) | (numbers[column] > hi)]
        if len(bad):
            value = numbers.at[bad[0], column]
            raise OutputError(path, f"{column} = {value:g} in face row {bad[0] + 1}, outside {lo:g}-{hi:g}")
    for column in (c for c in AU_C_COLUMNS if c in numbers):
        bad = numbers.index[~numbers[column].isin((0, 1))]
        if len(bad):
            value = numbers.at[bad[0], column]
            raise OutputError(path, f"{column} = {value:g} in face row {bad[0] + 1}, not 0 or 1")


def landmark_arrays(frame: pd.DataFrame, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(xs, ys)``: each row's 68 2D landmarks, (n, 68) pixels each; None when ``frame`` has no
    landmark columns (OpenFace run without ``-2Dfp``).

    Raises:
        OutputError: some landmark columns present but not all, or non-numeric landmarks.
    """
    present = [c for c in (*X_COLUMNS, *Y_COLUMNS) if c in frame]
    if not present:
        return None
    if len(present) != 2 * LANDMARKS:
        missing = [c for c in (*X_COLUMNS, *Y_COLUMNS) if c not in frame]
        raise OutputError(path, f"OpenFace CSV has 2D landmarks without {', '.join(missing[:4])}...")
    xs = numeric(frame, list(X_COLUMNS)).to_numpy(dtype=float)
    ys = numeric(frame, list(Y_COLUMNS)).to_numpy(dtype=float)
    if np.isnan(xs).any() or np.isnan(ys).any():
        raise OutputError(path, "non-numeric 2D landmarks in OpenFace CSV")
    return xs, ys


def landmark_measures(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``(boxes, concepts)`` of each row's 68 2D landmarks (same index as ``frame``).

    ``boxes``: ``face_x`` = min of ``x_0..x_67``, ``face_w`` = max - min (``y`` alike), in the
    pixels of the image OpenFace read; NaN where the landmarks span no area (OpenFace writes zeros
    where it found no face). ``concepts``: ``analysis.concepts.concepts_from_landmarks``
    (``CONCEPT_COLUMNS``, in inter-ocular distances, NaN where no face was fitted), ratios of
    distances: the same on a staged (upscaled) copy as on the image.

    Returns:
        None when ``frame`` has no landmark columns (OpenFace run without ``-2Dfp``).

    Raises:
        OutputError: some landmark columns present but not all, or non-numeric landmarks.
    """
    arrays = landmark_arrays(frame, path)
    if arrays is None:
        return None
    xs, ys = arrays
    left, top = xs.min(axis=1), ys.min(axis=1)
    width, height = xs.max(axis=1) - left, ys.max(axis=1) - top
    boxes = pd.DataFrame(
        {"face_x": left, "face_y": top, "face_w": width, "face_h": height}, index=frame.index
    )
    boxes.loc[~((width > 0) & (height > 0)), list(BOX_COLUMNS)] = np.nan
    concepts = pd.DataFrame(concepts_from_landmarks(xs, ys), columns=list(CONCEPT_COLUMNS), index=frame.index)
    return boxes, concepts


def to_original(box: dict[str, float], geometry: Geometry) -> dict[str, float]:
    """A box of the staged copy in pixels of the original image (``Geometry.to_original``,
    corners clipped to the image); NaN (no box) when nothing of it lies inside."""
    x0, y0 = geometry.to_original(box["face_x"], box["face_y"])
    x1, y1 = geometry.to_original(box["face_x"] + box["face_w"], box["face_y"] + box["face_h"])
    if not (x1 > x0 and y1 > y0):
        return dict.fromkeys(BOX_COLUMNS, float("nan"))
    return {"face_x": x0, "face_y": y0, "face_w": x1 - x0, "face_h": y1 - y0}


def parse_face_csv(path: Path, geometry: Geometry | None = None) -> dict[str, float | int]:
    """The most confident face of one OpenFace CSV.

    Args:
        path: the CSV.
        geometry: how the image was staged; the face box is mapped back to the original
            image with it. None: the box stays in pixels of the image OpenFace read.

    Returns:
        ``confidence`` (0-1), ``face`` (OpenFace's face index), ``face_count``, ``success``
        (OpenFace's own where written, else 1 if confidence > 0.725), the 17 ``AU*_r``
        (0-5), where present the 18 ``AU*_c`` (0/1) and, where the CSV has 2D landmarks,
        the face box ``face_x, face_y, face_w, face_h`` (NaN when the landmarks span no area).

    Raises:
        OutputError: empty file, no face rows, missing AU or confidence columns,
            non-numeric values (landmarks included), or values outside the AU table's
            ranges (``check_ranges``).
    """
    try:
        frame = pd.read_csv(
            path,
            skipinitialspace=True,
            usecols=lambda name: str(name).strip() in USED,
            low_memory=False,  # one file of a few rows: no chunks to type and join (~0.5 ms less)
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OutputError(path, f"unreadable OpenFace CSV ({_one_line(exc)})") from None
    names = [str(c).strip() for c in frame.columns]
    frame.columns = names
    missing = [c for c in ("confidence", *AU_R_COLUMNS) if c not in frame]
    if missing:
        raise OutputError(path, f"OpenFace CSV lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise OutputError(path, "OpenFace CSV has no face rows")
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes):
        return _parse_frame(frame, path, geometry)  # a non-numeric cell somewhere: the general path
    # Every column numeric (the usual case): one array, no per-column pandas work (the time of
    # a run's parsing is mostly this function's; each output CSV is parsed once per image).
    values = frame.to_numpy(dtype=float)
    at = {name: i for i, name in enumerate(names)}
    wanted = ["confidence", *AU_R_COLUMNS, *[c for c in AU_C_COLUMNS if c in at]]
    numbers = values[:, [at[c] for c in wanted]]
    if np.isnan(numbers).any():
        raise OutputError(path, "non-numeric values in OpenFace CSV")
    _check_ranges(numbers, wanted, path)
    best = int(numbers[:, 0].argmax())
    row: dict[str, float | int] = {c: float(v) for c, v in zip(wanted, numbers[best], strict=True)}
    row.update(_face_fields(frame, best, row["confidence"], path))
    present = [c for c in (*X_COLUMNS, *Y_COLUMNS) if c in at]
    if present and len(present) != 2 * LANDMARKS:
        landmark_arrays(frame, path)  # raises with the missing columns named
    if present:
        xs = values[best, [at[c] for c in X_COLUMNS]]
        ys = values[best, [at[c] for c in Y_COLUMNS]]
        if np.isnan(values[:, [at[c] for c in present]]).any():
            raise OutputError(path, "non-numeric 2D landmarks in OpenFace CSV")
        left, top = float(xs.min()), float(ys.min())
        width, height = float(xs.max()) - left, float(ys.max()) - top
        if width > 0 and height > 0:
            box = {"face_x": left, "face_y": top, "face_w": width, "face_h": height}
        else:
            box = dict.fromkeys(BOX_COLUMNS, float("nan"))
        row.update(to_original(box, geometry) if geometry and not np.isnan(box["face_w"]) else box)
        concepts = concepts_from_landmarks(xs[None], ys[None])[0]
        row.update({c: float(v) for c, v in zip(CONCEPT_COLUMNS, concepts, strict=True)})
    return row


def _check_ranges(numbers: np.ndarray, columns: list[str], path: Path) -> None:
    """``check_ranges`` on an array whose columns are ``columns`` (fast when all is well)."""
    low, high = INTENSITY_RANGE
    bounds = [CONFIDENCE_RANGE if c == "confidence" else (low, high) for c in columns if not c.endswith("_c")]
    ranged = numbers[:, : len(bounds)]
    lows, highs = np.array([lo for lo, _ in bounds]), np.array([hi for _, hi in bounds])
    binary = numbers[:, len(bounds) :]
    if not (((ranged < lows) | (ranged > highs)).any() or ~np.isin(binary, (0, 1)).all()):
        return
    check_ranges(pd.DataFrame(numbers, columns=columns), path)  # names the first value out of range


def _parse_frame(frame: pd.DataFrame, path: Path, geometry: Geometry | None) -> dict[str, float | int]:
    """``parse_face_csv`` on a frame with a non-numeric column (checked column by column)."""
    wanted = ["confidence", *AU_R_COLUMNS, *[c for c in AU_C_COLUMNS if c in frame]]
    numbers = numeric(frame, wanted)
    if numbers.isna().any().any():
        raise OutputError(path, "non-numeric values in OpenFace CSV")
    numbers = numbers.reset_index(drop=True)
    check_ranges(numbers, path)
    best = int(numbers["confidence"].to_numpy().argmax())
    row: dict[str, float | int] = {c: float(numbers[c].iloc[best]) for c in wanted}
    row.update(_face_fields(frame, best, row["confidence"], path))
    measures = landmark_measures(frame.reset_index(drop=True), path)
    if measures is not None:
        boxes, concepts = measures
        box = {c: float(boxes[c].iloc[best]) for c in BOX_COLUMNS}
        row.update(to_original(box, geometry) if geometry and not np.isnan(box["face_w"]) else box)
        row.update({c: float(concepts[c].iloc[best]) for c in CONCEPT_COLUMNS})
    return row


def _face_fields(frame: pd.DataFrame, best: int, confidence: float, path: Path) -> dict[str, int]:
    """``face`` (or ``face_id``), ``face_count`` and ``success`` of face row ``best`` (OpenFace's
    own ``success`` where written, else 1 above ``SUCCESS_CONFIDENCE``).

    Raises:
        OutputError: a face index or ``success`` that is not an integer, a ``success`` not 0 or 1.
    """
    fields = {
        "face": _integer(frame, "face" if "face" in frame else "face_id", best, path),
        "face_count": len(frame),
    }
    if "success" not in frame:
        return {**fields, "success": int(confidence > SUCCESS_CONFIDENCE)}
    success = _integer(frame, "success", best, path)
    if success not in (0, 1):
        raise OutputError(path, f"success = {success} in face row {best + 1}, not 0 or 1")
    return {**fields, "success": success}


def _integer(frame: pd.DataFrame, column: str, index: int, path: Path) -> int:
    """``frame[column]`` at row ``index`` as an int (0 when the column is absent)."""
    if column not in frame:
        return 0
    value = pd.to_numeric(frame[column].iloc[index], errors="coerce")
    if pd.isna(value) or value != int(value):
        shown = frame[column].iloc[index]
        raise OutputError(path, f"{column} = {shown!r} in face row {index + 1}, not an integer")
    return int(value)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
