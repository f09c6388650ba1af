"""Reading the AU table to explain: image tables whole, sequence tables streamed in chunks.

Two kinds of table (``analysis.au_table``; OpenFace wiki, "Output Format",
https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format):

- **images**: one row per face (``image``, optional ``label``, ``face``, ``confidence``,
  ``success``), 17 ``AU*_r`` intensities (0-5), ``AU*_c`` presences (0/1);
- **sequences**: one row per video frame and tracked face (``video``, ``frame`` from 1,
  ``face_id``, ``timestamp`` in seconds, ``confidence``, ``success``) and the same AU columns.
  A bare OpenFace ``FeatureExtraction`` CSV (no ``video`` column) is taken as one video named
  after the file.

An image table may carry a ``source`` column naming what produced each row's AUs (empty or
``OpenFace``; an estimator's rows, e.g. ``cnn_baseline.au_estimator``'s, name it): those rows
have no OpenFace confidence, success or AU presences (NaN).

Both may carry the runner's face box, ``face_x, face_y, face_w, face_h``: the bounding box of
OpenFace's 68 2D landmarks in pixels of the original image or video frame (``-2Dfp``).

The labels of an image table are never used (the stage is for faces without labels), so this
reader checks the AU columns and ranges itself rather than ``read_au_table``, which requires
two labelled classes. A sequence table is read in chunks of ``CHUNK_ROWS`` rows with only the
columns the stage needs, so memory does not grow with the raw CSV (a 1-hour video at 30 fps is
108,000 rows).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS, BOX_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS
from explain.errors import ExplainError

__all__ = ["BOX_COLUMNS", "CHUNK_ROWS", "iter_sequence_chunks", "read_image_table", "table_kind"]
CHUNK_ROWS = 20_000
IMAGE_META: tuple[str, ...] = ("image", "label", "face", "face_count", "confidence", "success")
SEQUENCE_KEYS: tuple[str, ...] = ("video", "frame", "face_id", "timestamp", "confidence", "success")


def header(path: str | os.PathLike[str]) -> list[str]:
    """The table's column names, OpenFace's leading spaces stripped.

    Raises:
        ExplainError: missing, a folder, empty or not a CSV file.
    """
    path = Path(path)
    if path.is_dir():
        raise ExplainError(f"{path}: is a folder, not an AU table (a .csv file)")
    if not path.is_file():
        raise ExplainError(f"{path}: no such AU table")
    try:
        names = pd.read_csv(path, nrows=0).columns
    except pd.errors.EmptyDataError:
        raise ExplainError(f"{path}: the file is empty, not an AU table") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError) as error:
        raise ExplainError(
            f"{path}: not a readable CSV file ({' '.join(str(error).split())[:200]})"
        ) from None
    return [str(c).strip() for c in names]


def table_kind(path: str | os.PathLike[str]) -> str:
    """``"sequences"`` (a ``frame`` column) or ``"images"``.

    Raises:
        ExplainError: no AU intensity columns (the message names the missing ones).
    """
    names = header(path)
    missing = [c for c in AU_R_COLUMNS if c not in names]
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise ExplainError(
            f"{path}: not an AU table: {len(missing)} of OpenFace's 17 AU intensity columns are missing "
            f"({shown}); give a table written by `make openface` or OpenFace with -aus"
        )
    return "sequences" if "frame" in names else "images"


def has_boxes(path: str | os.PathLike[str]) -> bool:
    """Whether the table carries the runner's face box columns (``BOX_COLUMNS``)."""
    names = header(path)
    return all(c in names for c in BOX_COLUMNS)


def _clean(chunk: pd.DataFrame, path: Path, first_row: int, columns: list[str]) -> pd.DataFrame:
    """Numeric columns as float; an empty, non-numeric or out-of-range value is one line naming it
    (an empty face box is NaN: the frame has no crop)."""
    chunk.columns = [str(c).strip() for c in chunk.columns]
    for column in columns:
        if column not in chunk:
            continue
        text = chunk[column].astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna().to_numpy()
        if column in (*BOX_COLUMNS, *CONCEPT_COLUMNS):  # no landmark fit: empty, NaN (no crop, no concept)
            bad = bad & ~text.isin(("", "nan", "NaN")).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise ExplainError(
                f"{path}: column {column}, data row {first_row + i + 1}: "
                f"{chunk[column].iloc[i]!r} is not a number"
            )
        chunk[column] = values.astype(float)
    for column, (low, high) in _ranges(columns).items():
        if column in chunk:
            values = chunk[column].to_numpy()
            bad = (values < low) | (values > high)
            if bad.any():
                i = int(np.argmax(bad))
                raise ExplainError(
                    f"{path}: column {column}, data row {first_row + i + 1}: {values[i]:g} is outside "
                    f"{low:g}-{high:g}"
                )
    return chunk


def _ranges(columns: list[str]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {c: (0.0, 5.0) for c in AU_R_COLUMNS}
    out.update({c: (0.0, 1.0) for c in (*AU_C_COLUMNS, "confidence", "success")})
    out.update({"frame": (1.0, np.inf), "face_id": (0.0, np.inf), "timestamp": (0.0, np.inf)})
    out.update({c: (-np.inf, np.inf) for c in (*BOX_COLUMNS, *CONCEPT_COLUMNS)})
    return {c: r for c, r in out.items() if c in columns}


def read_image_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """An image AU table, every row (image tables are small): AU, box, confidence and success
    columns as floats; ``image`` as text (``face_<n>`` when the table has none); ``confidence``
    1 and ``success`` 1 where the table has none.

    Raises:
        ExplainError: unreadable, no AU columns, a non-numeric cell or a value out of range.
    """
    path = Path(path)
    table_kind(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    if raw.empty:
        raise ExplainError(f"{path}: the AU table has a header but no rows")
    raw.columns = [str(c).strip() for c in raw.columns]
    numeric = [
        c
        for c in (*AU_R_COLUMNS, *AU_C_COLUMNS, "confidence", "success", *BOX_COLUMNS, *CONCEPT_COLUMNS)
        if c in raw
    ]
    estimated = estimated_rows(raw)
    blank = {  # what OpenFace alone gives, empty in an estimator's rows: NaN, never made up
        c: estimated & (raw[c].astype(str).str.strip() == "").to_numpy()
        for c in ("confidence", "success", *AU_C_COLUMNS)
        if c in raw
    }
    for column, rows in blank.items():
        raw.loc[rows, column] = "0"
    table = _clean(raw, path, 0, numeric)
    for column, rows in blank.items():
        table.loc[rows, column] = np.nan
    if "image" not in table:
        table["image"] = [f"face_{i + 1}" for i in range(len(table))]
    for column in ("confidence", "success"):
        if column not in table:
            table[column] = np.where(estimated, np.nan, 1.0)
    return table.reset_index(drop=True)


def estimated_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows whose AUs an estimator gave, not OpenFace: a ``source`` other than empty or
    ``OpenFace`` (``cnn_baseline.au_estimator`` writes ``mini-XCEPTION AU estimator ...``)."""
    if "source" not in table:
        return np.zeros(len(table), bool)
    return ~table["source"].astype(str).str.strip().isin(["", "OpenFace"]).to_numpy()


def sequence_columns(path: str | os.PathLike[str]) -> list[str]:
    """The columns of a sequence table the stage reads (keys, AU and box columns present)."""
    names = header(path)
    wanted = [*SEQUENCE_KEYS, *AU_R_COLUMNS, *AU_C_COLUMNS, *BOX_COLUMNS, *CONCEPT_COLUMNS]
    return [c for c in wanted if c in names]


def iter_sequence_chunks(
    path: str | os.PathLike[str], chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """A sequence table in chunks of ``chunk_rows`` rows, only the columns the stage needs.

    Columns: ``video`` (text; the file's stem when the table has none), ``frame``, ``face_id``
    (integers), ``timestamp`` (s), ``confidence``, ``success`` (0/1; 1 where absent), AU and box
    columns as floats.

    Raises:
        ExplainError: unreadable, no AU columns, a missing ``frame``, a non-numeric cell or a
            value out of range (the message names the column and data row).
    """
    path = Path(path)
    table_kind(path)
    names = header(path)
    raw_names = list(pd.read_csv(path, nrows=0).columns)
    keep = sequence_columns(path)
    usecols = [raw for raw in raw_names if str(raw).strip() in keep]
    numeric = [c for c in keep if c != "video"]
    first = 0
    reader = pd.read_csv(
        path, usecols=usecols, dtype=str, keep_default_na=False, chunksize=chunk_rows, skipinitialspace=True
    )
    seen = False
    for chunk in reader:
        chunk = _clean(chunk, path, first, numeric)
        if "video" not in names:
            chunk["video"] = path.stem
        if "face_id" not in names:
            chunk["face_id"] = 0.0
        if "timestamp" not in names:
            chunk["timestamp"] = 0.0
        for column in ("confidence", "success"):
            if column not in names:
                chunk[column] = 1.0
        chunk["frame"] = chunk["frame"].astype(np.int64)
        chunk["face_id"] = chunk["face_id"].astype(np.int64)
        chunk.index = pd.RangeIndex(first, first + len(chunk))
        first += len(chunk)
        seen = True
        yield chunk
    if not seen:
        raise ExplainError(f"{path}: the AU table has a header but no rows")
