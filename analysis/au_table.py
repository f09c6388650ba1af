"""The AU table: the contract between the OpenFace runner and the analysis.

One row per face (image tables; sequence tables, one row per video frame,
are at the end of this module). Columns (names as OpenFace 2.x writes them, see the OpenFace wiki
page "Output Format", https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format):

- ``image``: file stem of the source image (optional for the seed data, which has none)
- ``label``: emotion name (``analysis.labels.KNOWN_LABELS``)
- ``face``/``face_count``, ``confidence`` (0-1), ``success`` (0/1): optional
- ``AU01_r`` ... ``AU45_r``: the 17 AU intensities, 0-5 (required)
- ``AU01_c`` ... ``AU45_c``: the 18 AU presences, 0/1 (optional; AU28 has only ``_c``)
- ``face_x, face_y, face_w, face_h`` (``BOX_COLUMNS``, optional, all four or none; image and
  sequence tables): the face's box in pixels of the original image or video frame, the bounding
  box of OpenFace's 68 2D landmarks (``-2Dfp``): left, top, width, height. ``x`` runs right and
  ``y`` down from the top-left pixel, whose centre is (0, 0) (OpenCV's convention). An empty
  cell (all four empty) means no box (a frame whose landmark fit failed); a box has numbers,
  ``face_w`` and ``face_h`` > 0. Tables written before the runner recorded boxes (the bundled
  data) have none; readers accept them.
- ``mouth_open, mouth_width, lip_corner_raise, brow_raise, eye_open, nose_lip_gap``
  (``analysis.concepts.CONCEPT_COLUMNS``, optional, after the AU columns): geometric concepts
  measured on the same 68 landmarks, in inter-ocular distances; empty where no face was fitted.
  Written by the runner since it records them; older tables have none.

Readers accept OpenFace's header names with leading spaces and CRLF line ends.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.concepts import CONCEPT_COLUMNS, CONCEPT_NAMES
from analysis.files import atomic_path, write_csv
from analysis.labels import EMOTIONS, name_for

_AU_R = ("01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23", "25", "26", "45")
_AU_C = (
    "01",
    "02",
    "04",
    "05",
    "06",
    "07",
    "09",
    "10",
    "12",
    "14",
    "15",
    "17",
    "20",
    "23",
    "25",
    "26",
    "28",
    "45",
)
AU_R_COLUMNS: tuple[str, ...] = tuple(f"AU{n}_r" for n in _AU_R)
AU_C_COLUMNS: tuple[str, ...] = tuple(f"AU{n}_c" for n in _AU_C)

# FACS names (Ekman, Friesen & Hager 2002, FACS manual) of the AUs OpenFace estimates.
AU_NAMES: dict[str, str] = {
    "AU01": "inner brow raiser",
    "AU02": "outer brow raiser",
    "AU04": "brow lowerer",
    "AU05": "upper lid raiser",
    "AU06": "cheek raiser",
    "AU07": "lid tightener",
    "AU09": "nose wrinkler",
    "AU10": "upper lip raiser",
    "AU12": "lip corner puller",
    "AU14": "dimpler",
    "AU15": "lip corner depressor",
    "AU17": "chin raiser",
    "AU20": "lip stretcher",
    "AU23": "lip tightener",
    "AU25": "lips part",
    "AU26": "jaw drop",
    "AU28": "lip suck",
    "AU45": "blink",
}

# The two real AU tables bundled with the workbench (data/*/README.md says where they come from).
_DATA = Path(__file__).resolve().parent.parent / "data"
SEED_AU_TABLE = _DATA / "seed_au" / "emotion_all.csv"
"""The bundled seed AU data: 4,473 faces, 17 AU intensities, labels coded 0-5 (``"seed"``)."""
FER2013_AU_TABLE = _DATA / "fer2013_openface" / "fer2013_openface.csv.gz"
"""OpenFace 2.2.0 AUs of every FER2013 image with a face (``emotion`` names, ``Usage`` split)."""
ESTIMATED_AU_TABLE = _DATA / "fer2013_au_cnn" / "fer2013_au_cnn.csv.gz"
FER2013_CONCEPTS = _DATA / "fer2013_openface" / "fer2013_concepts.csv.gz"
"""The geometric concepts (``analysis.concepts``) of the FER2013 faces, by ``image``."""
"""The AU estimator's AUs of every FER2013 image (``label`` names, ``Usage``, ``source``; no ``AU*_c``)."""

INTENSITY_RANGE = (0.0, 5.0)
LABEL = "label"
_LABEL_CANDIDATES = ("label", "emotion")
_META_FIRST = ("image", LABEL, "face", "face_count", "confidence", "success")
BOX_COLUMNS: tuple[str, ...] = ("face_x", "face_y", "face_w", "face_h")
"""The face's box (optional): left, top, width, height in pixels of the original image or frame."""


class AUTableError(ValueError):
    """An AU table that cannot be used; the message names the file, column and row."""


def au_code(column: str) -> str:
    """``"AU12_r"`` -> ``"AU12"``; a geometric concept keeps its column name (``"mouth_open"``)."""
    return column if column in CONCEPT_NAMES else column.split("_")[0]


def au_label(column: str) -> str:
    """``"AU12_r"`` -> ``"AU12 lip corner puller"``; a geometric concept by its name
    (``"lip_corner_raise"`` -> ``"lip-corner height"``, ``analysis.concepts``); other names are
    returned unchanged."""
    if column in CONCEPT_NAMES:
        return CONCEPT_NAMES[column]
    code = au_code(column)
    return f"{code} {AU_NAMES[code]}" if code in AU_NAMES else column


def read_au_table(
    path: str | os.PathLike[str],
    label_column: str | None = None,
    label_coding: str = "auto",
) -> pd.DataFrame:
    """Read and validate an AU table from CSV (plain or ``.gz``).

    Args:
        path: the CSV file.
        label_column: the column holding emotions; default ``label``, else ``emotion``.
        label_coding: ``"name"`` (text), ``"seed"`` (0-5: angry, disgust, happy, neutral,
            sad, surprise), ``"fer2013"`` (0-6, FER2013's codes) or ``"auto"`` (text labels
            only; integer codes are ambiguous and must be named).

    Returns:
        A DataFrame of n rows: the label column renamed ``label`` and holding workbench
        names (fear kept), AU columns as floats, all other columns as read.

    Raises:
        AUTableError: missing, unreadable (a folder, no permission, a corrupt or truncated
            ``.gz``) or empty file, two columns of the same name (also once OpenFace's header
            spaces are stripped), missing AU or label column, a non-numeric,
            empty or NaN cell, an AU intensity outside 0-5, a presence not 0/1, a
            confidence outside 0-1, an unknown label, fewer than two classes, or a face box
            that is not valid (``BOX_COLUMNS``: some of the four missing, a non-numeric
            value, a row with some of the four empty, a width or height not > 0).
    """
    path = Path(path)
    raw = _read_raw(path)
    if raw.empty:
        raise AUTableError(f"{path}: the file has a header but no data rows")

    missing = [c for c in AU_R_COLUMNS if c not in raw.columns]
    if missing:
        raise AUTableError(f"{path}: missing AU column(s) {', '.join(missing)}")
    label_column = _find_label_column(raw, label_column, path)

    table = raw.copy()
    for column in [c for c in (*AU_R_COLUMNS, *AU_C_COLUMNS, "confidence", "success") if c in raw]:
        table[column] = _numeric(raw[column], column, path)
    _check_range(table, AU_R_COLUMNS, INTENSITY_RANGE, path)
    _check_range(table, [c for c in ("confidence",) if c in table], (0.0, 1.0), path)
    for column in [c for c in (*AU_C_COLUMNS, "success") if c in table]:
        _check_binary(table[column], column, path)
    _read_boxes(raw, table, path)
    _read_concepts(raw, table, path)

    table[LABEL] = _labels(raw[label_column], label_column, label_coding, path)
    if label_column != LABEL:
        table = table.drop(columns=label_column)
    if table[LABEL].nunique() < 2:
        raise AUTableError(f"{path}: column {label_column!r} holds fewer than two classes")
    return table


FEATURE_SETS = ("aus", "concepts", "both")
"""What an AU model reads: the 17 ``AU*_r``, the six geometric concepts, or both."""


def feature_columns(features: str, table: pd.DataFrame, path: str | os.PathLike[str]) -> list[str]:
    """The model inputs ``features`` (one of ``FEATURE_SETS``) names, as columns of ``table``.

    Raises:
        AUTableError: an unknown set, or concepts asked of a table without them (e.g. one written
            before the runner measured them, or the seed AU data, which has no landmarks).
    """
    if features not in FEATURE_SETS:
        raise AUTableError(f"features {features!r}: one of {', '.join(FEATURE_SETS)}")
    columns = [c for c in AU_R_COLUMNS if c in table] if features != "concepts" else []
    if features != "aus":
        missing = [c for c in CONCEPT_COLUMNS if c not in table]
        if missing:
            raise AUTableError(
                f"{path}: no geometric concept columns ({', '.join(missing[:3])} ...): run the table "
                "again with `make openface` (it measures them on OpenFace's landmarks) or use --features aus"
            )
        columns += list(CONCEPT_COLUMNS)
    return columns


def six_class_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose label is one of the six analysed emotions (drops fear)."""
    return table[table[LABEL].isin(EMOTIONS)]


def one_face_per_image(table: pd.DataFrame) -> pd.DataFrame:
    """Keep the most confident face of each image (OpenFace may find several), as the runner does.

    Images are told apart by ``image`` and ``label`` (FER2013 reuses a few file stems).
    """
    ordered = table.sort_values(["image", "confidence"], ascending=[True, False], kind="stable")
    return ordered.drop_duplicates(["image", LABEL]).sort_index()


def write_au_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write an AU table atomically in the canonical column order.

    Order: ``image, label, face, face_count, confidence, success`` (those present), the face
    box ``face_x, face_y, face_w, face_h`` (when present), the ``AU*_r`` columns, the
    ``AU*_c`` columns, then any other column.

    Raises:
        AUTableError: an invalid face box (see ``check_boxes``).
    """
    check_boxes(table, path)
    first = [c for c in (*_META_FIRST, *BOX_COLUMNS) if c in table]
    aus = [c for c in (*AU_R_COLUMNS, *AU_C_COLUMNS) if c in table]
    rest = [c for c in table.columns if c not in first and c not in aus]
    write_csv(path, table[first + aus + rest])  # a .gz path gzipped reproducibly (no time, no name)


def check_boxes(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """The face box columns of a numeric table, when present: all four, each row four numbers
    (finite, ``face_w`` and ``face_h`` > 0) or four NaN (no box).

    Raises:
        AUTableError: some of the four columns missing, non-numeric values, a row with only
            some of the four, a value not finite, a width or height not > 0.
    """
    present = [c for c in BOX_COLUMNS if c in table]
    if not present:
        return
    missing = [c for c in BOX_COLUMNS if c not in table]
    if missing:
        raise AUTableError(
            f"{path}: the face box needs all of {', '.join(BOX_COLUMNS)}; {', '.join(missing)} missing"
        )
    try:
        values = table[list(BOX_COLUMNS)].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise AUTableError(f"{path}: the face box columns hold non-numeric values") from None
    empty = np.isnan(values)
    partial = empty.any(axis=1) & ~empty.all(axis=1)
    if partial.any():
        i = int(np.argmax(partial))
        gaps = ", ".join(c for c, e in zip(BOX_COLUMNS, empty[i], strict=True) if e)
        raise AUTableError(
            f"{path}: {_row(i)}: face box without {gaps}; a row has all four of "
            f"{', '.join(BOX_COLUMNS)} or none"
        )
    boxed = ~empty.all(axis=1)
    infinite = boxed[:, None] & ~np.isfinite(np.where(empty, 0.0, values))
    if infinite.any():
        i, j = (int(k) for k in np.argwhere(infinite)[0])
        raise AUTableError(f"{path}: column {BOX_COLUMNS[j]}, {_row(i)}: {values[i, j]:g} is not finite")
    for j in (2, 3):
        bad = boxed & ~(values[:, j] > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise AUTableError(
                f"{path}: column {BOX_COLUMNS[j]}, {_row(i)}: {values[i, j]:g} is not > 0 (a box has a size)"
            )


def _read_boxes(raw: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """The face box columns of ``raw`` (text) into ``table`` as floats (empty: NaN), checked."""
    present = [c for c in BOX_COLUMNS if c in raw]
    for column in present:
        text = raw[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        bad = (numbers.isna() & (text != "")).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise AUTableError(f"{path}: column {column}, {_row(i)}: {raw[column].iloc[i]!r} is not a number")
        table[column] = numbers.astype(float)
    check_boxes(table, path)


def _read_concepts(raw: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """The concept columns of ``raw`` (text) into ``table`` as floats; empty: NaN (no face fitted).

    Raises:
        AUTableError: a cell that is neither empty nor a finite number (column and row named).
    """
    for column in [c for c in CONCEPT_COLUMNS if c in raw]:
        text = raw[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        bad = ((numbers.isna() & (text != "")) | np.isinf(numbers)).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise AUTableError(f"{path}: column {column}, {_row(i)}: {raw[column].iloc[i]!r} is not a number")
        table[column] = numbers.astype(float)


def _read_raw(path: Path) -> pd.DataFrame:
    """The table as strings, header names stripped; every way it cannot be read is one line."""
    if path.is_dir():
        raise AUTableError(f"{path}: is a folder, not an AU table file")
    if not path.exists():
        raise AUTableError(f"{path}: no such file")
    options = {"dtype": str, "keep_default_na": False, "skipinitialspace": True}
    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        raw = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise AUTableError(f"{path}: the file is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise AUTableError(f"{path}: not a readable CSV file ({_one_line(exc)})") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise AUTableError(f"{path}: corrupt or truncated gzip file ({_one_line(exc)})") from None
    except OSError as exc:
        raise AUTableError(f"{path}: cannot read the file ({exc.strerror or _one_line(exc)})") from None
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took the first column as the index
        raise AUTableError(
            f"{path}: the data lines have more fields than the header ({len(header)}); "
            "a trailing comma or a missing column name?"
        )
    names = [str(c).strip() for c in header]
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen:
            first = seen[name]
            raise AUTableError(
                f"{path}: columns {first + 1} ({header[first]!r}) and {position + 1} ({header[position]!r}) "
                f"are both named {name!r}"
            )
        seen[name] = position
    raw.columns = names
    return raw


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _find_label_column(raw: pd.DataFrame, label_column: str | None, path: Path) -> str:
    if label_column is not None:
        if label_column not in raw.columns:
            raise AUTableError(
                f"{path}: label column {label_column!r} not found; columns are {', '.join(raw.columns)}"
            )
        return label_column
    for candidate in _LABEL_CANDIDATES:
        if candidate in raw.columns:
            return candidate
    raise AUTableError(f"{path}: no label column (looked for {', '.join(_LABEL_CANDIDATES)})")


def _row(index: int) -> str:
    return f"data row {index + 1} (line {index + 2})"


def _numeric(values: pd.Series, column: str, path: Path) -> pd.Series:
    text = values.str.strip()
    empty = text == ""
    if empty.any():
        i = int(np.argmax(empty.to_numpy()))
        fields = _fields_on_line(path, i + 2)
        if fields is not None and fields[0] < fields[1]:
            raise AUTableError(
                f"{path}: column {column}, {_row(i)}: no value; the line has {fields[0]} of the header's "
                f"{fields[1]} fields (a truncated file?)"
            )
        raise AUTableError(f"{path}: column {column}, {_row(i)}: empty cell")
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise AUTableError(f"{path}: column {column}, {_row(i)}: {values.iloc[i]!r} is not a number")
    return numbers.astype(float)


def _fields_on_line(path: Path, line: int) -> tuple[int, int] | None:
    """(fields on ``line`` (1 = the header), fields of the header); None if it cannot be read.

    pandas fills the missing fields of a short line with empty cells; this tells them apart."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle)
            header = next(rows)
            for _ in range(line - 2):
                next(rows)
            return len(next(rows)), len(header)
    except (OSError, EOFError, StopIteration, UnicodeDecodeError, csv.Error):
        return None


def _check_range(table: pd.DataFrame, columns, bounds: tuple[float, float], path: Path) -> None:
    low, high = bounds
    for column in columns:
        values = table[column].to_numpy()
        bad = (values < low) | (values > high)
        if bad.any():
            i = int(np.argmax(bad))
            raise AUTableError(
                f"{path}: column {column}, {_row(i)}: {values[i]:g} is outside {low:g}-{high:g}"
            )


def _check_binary(values: pd.Series, column: str, path: Path) -> None:
    bad = ~values.isin((0.0, 1.0)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise AUTableError(f"{path}: column {column}, {_row(i)}: {values.iloc[i]:g} is not 0 or 1")


def _labels(values: pd.Series, column: str, coding: str, path: Path) -> pd.Series:
    text = values.str.strip()
    if coding == "auto":
        numeric = pd.to_numeric(text, errors="coerce").notna()
        if numeric.all():
            raise AUTableError(
                f"{path}: column {column} holds integer codes; say which coding they use: "
                "label_coding 'seed' (0 angry, 1 disgust, 2 happy, 3 neutral, 4 sad, 5 surprise) "
                "or 'fer2013' (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral)"
            )
        coding = "name"
    names = text.map(lambda v: name_for(v, coding))
    unknown = names.isna().to_numpy()
    if unknown.any():
        i = int(np.argmax(unknown))
        raise AUTableError(
            f"{path}: column {column}, {_row(i)}: unknown label {values.iloc[i]!r} for coding {coding!r}"
        )
    return names.astype(str)


# --- Sequence tables: one row per video frame and tracked face -------------------------------
# OpenFace's ``FeatureExtraction`` (one face) and ``FaceLandmarkVidMulti`` (several) write, per
# video or image sequence, ``frame`` (1-based), ``face_id`` (the tracker's id, from 0),
# ``timestamp`` (seconds from the video's start; 0 for an image sequence without ``-fps``),
# ``confidence`` (0-1), ``success`` (0/1: OpenFace's own verdict on the frame's landmark fit;
# AUs of a frame with success 0 are 0) and the AU columns (OpenFace wiki, "Output Format",
# https://github.com/TadasBaltrusaitis/OpenFace/wiki/Output-Format). The runner adds ``video``.
SEQUENCE_META: tuple[str, ...] = ("video", "frame", "face_id", "timestamp", "confidence", "success")
"""The leading columns of a sequence AU table, in order."""


def write_sequence_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a sequence AU table atomically: ``SEQUENCE_META``, the face box (``BOX_COLUMNS``,
    when present), ``AU*_r``, ``AU*_c``, any other column.

    Raises:
        AUTableError: a column of ``SEQUENCE_META`` or an ``AU*_r`` column is missing, or an
            invalid face box (``check_boxes``).
    """
    missing = [c for c in (*SEQUENCE_META, *AU_R_COLUMNS) if c not in table]
    if missing:
        raise AUTableError(f"{path}: sequence table lacks column(s) {', '.join(missing)}")
    check_boxes(table, path)
    first = [*SEQUENCE_META, *(c for c in BOX_COLUMNS if c in table)]
    aus = [c for c in (*AU_R_COLUMNS, *AU_C_COLUMNS) if c in table]
    rest = [c for c in table.columns if c not in first and c not in aus]
    with atomic_path(path) as tmp:
        table[[*first, *aus, *rest]].to_csv(tmp, index=False)


def read_sequence_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a sequence AU table (``write_sequence_table``'s format).

    Returns:
        A DataFrame: ``video`` as text, ``frame`` and ``face_id`` as integers, ``timestamp``
        (s), ``confidence``, ``success``, AU columns and the face box (``BOX_COLUMNS``, when
        present; NaN where a frame has no box) as floats, other columns as read.

    Raises:
        AUTableError: unreadable or empty file, a missing column, a non-numeric or empty
            cell, ``frame`` not a whole number >= 1, ``face_id`` not a whole number >= 0, a
            negative ``timestamp``, ``confidence`` outside 0-1, ``success`` or a presence
            not 0/1, an AU intensity outside 0-5, an invalid face box (``check_boxes``).
    """
    path = Path(path)
    raw = _read_raw(path)
    if raw.empty:
        raise AUTableError(f"{path}: the file has a header but no data rows")
    missing = [c for c in (*SEQUENCE_META, *AU_R_COLUMNS) if c not in raw.columns]
    if missing:
        raise AUTableError(f"{path}: missing column(s) {', '.join(missing)}")
    table = raw.copy()
    numeric = [c for c in (*SEQUENCE_META[1:], *AU_R_COLUMNS, *AU_C_COLUMNS) if c in raw]
    for column in numeric:
        table[column] = _numeric(raw[column], column, path)
    for column, low in (("frame", 1), ("face_id", 0)):
        values = table[column].to_numpy()
        bad = (values < low) | (values != np.floor(values))
        if bad.any():
            i = int(np.argmax(bad))
            raise AUTableError(
                f"{path}: column {column}, {_row(i)}: {values[i]:g} is not a whole number >= {low}"
            )
        table[column] = table[column].astype(int)
    _check_range(table, ["timestamp"], (0.0, np.inf), path)
    _check_range(table, ["confidence"], (0.0, 1.0), path)
    _check_range(table, AU_R_COLUMNS, INTENSITY_RANGE, path)
    for column in [c for c in (*AU_C_COLUMNS, "success") if c in table]:
        _check_binary(table[column], column, path)
    _read_boxes(raw, table, path)
    return table
