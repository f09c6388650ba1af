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

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS

# OpenFace's sequence mode marks a frame unsuccessful below this landmark-fit confidence;
# image mode writes no ``success`` column, so the same threshold is applied here.
SUCCESS_CONFIDENCE = 0.725


class OutputError(ValueError):
    """An OpenFace output file that cannot be used."""


def parse_face_csv(path: Path) -> dict[str, float | int]:
    """The most confident face of one OpenFace CSV.

    Returns:
        ``confidence`` (0-1), ``face`` (OpenFace's face index), ``face_count``, ``success``
        (OpenFace's own where written, else 1 if confidence > 0.725), the 17 ``AU*_r``
        (0-5) and, where present, the 18 ``AU*_c`` (0/1).

    Raises:
        OutputError: empty file, no face rows, missing AU or confidence columns, or
            non-numeric values.
    """
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: unreadable OpenFace CSV ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("confidence", *AU_R_COLUMNS) if c not in frame]
    if missing:
        raise OutputError(f"{path}: OpenFace CSV lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise OutputError(f"{path}: OpenFace CSV has no face rows")
    wanted = ["confidence", *AU_R_COLUMNS, *[c for c in AU_C_COLUMNS if c in frame]]
    numbers = frame[wanted].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any().any():
        raise OutputError(f"{path}: non-numeric values in OpenFace CSV")
    best = int(numbers["confidence"].to_numpy().argmax())
    row: dict[str, float | int] = {c: float(numbers[c].iloc[best]) for c in wanted}
    row["face"] = int(frame["face"].iloc[best]) if "face" in frame else int(frame.get("face_id", [0])[best])
    row["face_count"] = len(frame)
    if "success" in frame:
        row["success"] = int(frame["success"].iloc[best])
    else:
        row["success"] = int(row["confidence"] > SUCCESS_CONFIDENCE)
    return row
