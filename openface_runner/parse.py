"""Parse OpenFace's per-image outputs into AU-table rows.

``FaceLandmarkImg`` writes ``<stem>.csv`` with one row per detected face (columns
``face, confidence, AU*_r, AU*_c``; some builds put a space before every header name) and
``<stem>_of_details.txt``; when it finds no face it writes only the details file.
``FeatureExtraction`` (sequence mode) adds ``frame, face_id, timestamp, success``.
Format: OpenFace wiki, "Output Format"
(https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, INTENSITY_RANGE
from openface_runner.errors import OutputError

__all__ = ["SUCCESS_CONFIDENCE", "OutputError", "check_ranges", "parse_face_csv"]

CONFIDENCE_RANGE = (0.0, 1.0)

# OpenFace's sequence mode marks a frame unsuccessful below this landmark-fit confidence;
# image mode writes no ``success`` column, so the same threshold is applied here.
SUCCESS_CONFIDENCE = 0.725


def check_ranges(numbers: pd.DataFrame, path: Path) -> None:
    """Every face row within the AU table's ranges: ``confidence`` 0-1, ``AU*_r`` 0-5, ``AU*_c`` 0/1.

    Raises:
        OutputError: the first value out of range, with its column and face row.
    """
    low, high = INTENSITY_RANGE
    bounds = {"confidence": CONFIDENCE_RANGE, **{c: (low, high) for c in AU_R_COLUMNS if c in numbers}}
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


def parse_face_csv(path: Path) -> dict[str, float | int]:
    """The most confident face of one OpenFace CSV.

    Returns:
        ``confidence`` (0-1), ``face`` (OpenFace's face index), ``face_count``, ``success``
        (OpenFace's own where written, else 1 if confidence > 0.725), the 17 ``AU*_r``
        (0-5) and, where present, the 18 ``AU*_c`` (0/1).

    Raises:
        OutputError: empty file, no face rows, missing AU or confidence columns,
            non-numeric values, or values outside the AU table's ranges (``check_ranges``).
    """
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OutputError(path, f"unreadable OpenFace CSV ({_one_line(exc)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("confidence", *AU_R_COLUMNS) if c not in frame]
    if missing:
        raise OutputError(path, f"OpenFace CSV lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise OutputError(path, "OpenFace CSV has no face rows")
    wanted = ["confidence", *AU_R_COLUMNS, *[c for c in AU_C_COLUMNS if c in frame]]
    numbers = frame[wanted].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any().any():
        raise OutputError(path, "non-numeric values in OpenFace CSV")
    numbers = numbers.reset_index(drop=True)
    check_ranges(numbers, path)
    best = int(numbers["confidence"].to_numpy().argmax())
    row: dict[str, float | int] = {c: float(numbers[c].iloc[best]) for c in wanted}
    row["face"] = _integer(frame, "face" if "face" in frame else "face_id", best, path)
    row["face_count"] = len(frame)
    if "success" in frame:
        row["success"] = _integer(frame, "success", best, path)
        if row["success"] not in (0, 1):
            raise OutputError(path, f"success = {row['success']} in face row {best + 1}, not 0 or 1")
    else:
        row["success"] = int(row["confidence"] > SUCCESS_CONFIDENCE)
    return row


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
