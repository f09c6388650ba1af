"""The faces every model of the comparison is scored on, and the AU rows it trains on.

Two real sources, vendored so that ``make compare`` runs on a fresh clone:
``data/fer2013_openface/`` (OpenFace 2.2.0 AUs for every FER2013 image, and the images
where it found no face) and ``data/fer2013/fer2013_privatetest.csv.gz`` (the PrivateTest
pixels). Six classes: fear is left out everywhere.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    ESTIMATED_AU_TABLE,
    FER2013_AU_TABLE,
    FER2013_CONCEPTS,
    LABEL,
    one_face_per_image,
    read_au_table,
    six_class_rows,
)
from analysis.concepts import CONCEPT_COLUMNS
from analysis.labels import EMOTIONS, name_for
from analysis.quality import repeats_training_face
from cnn_baseline.data import load_fer2013

ROOT = Path(__file__).resolve().parent.parent
NO_FACE = ROOT / "data" / "fer2013_openface" / "fer2013_openface_no_face.csv.gz"
PRIVATETEST = ROOT / "data" / "fer2013" / "fer2013_privatetest.csv.gz"
ESTIMATED = ESTIMATED_AU_TABLE
CONCEPTS = FER2013_CONCEPTS


class CompareError(ValueError):
    """Inputs of the comparison that do not fit together; the message says which file."""


@dataclass
class CompareData:
    """Training AU rows and the six-class PrivateTest faces.

    ``train``: one row per Training image with a face (the most confident face where
    OpenFace found two), six classes: ``image``, ``label``, ``confidence``, AU columns.
    ``test``: every six-class PrivateTest face (3,061 with the shipped data), in the pixel
    file's order: ``image``, ``label``, ``has_face``, ``confidence`` and AU columns (NaN
    where OpenFace found no face). ``pixels``: (len(test), 48, 48, 1) uint8, 0-255, aligned
    with ``test``. ``groups``: the subject of each test face (another dataset with
    ``SUBJECT=``; None for FER2013, whose faces are resampled one by one).

    The AU estimator's estimates (``cnn_baseline.au_estimator``), where its table is there
    (else None): ``estimated_train``, every six-class Training face (those OpenFace missed
    too): ``image``, ``label`` and the 17 ``AU*_r``; ``estimated_test``, the 17 ``AU*_r`` of
    every test face, aligned with ``test``; ``estimated_source``: the table's ``source``.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    pixels: np.ndarray
    groups: np.ndarray | None = None  # (len(test),) subject of each face: bootstrap over subjects
    estimated_train: pd.DataFrame | None = None
    estimated_test: pd.DataFrame | None = None
    estimated_source: str = ""

    @property
    def paired(self) -> np.ndarray:
        """Boolean mask over ``test``: faces where OpenFace found a face (the paired set)."""
        return self.test["has_face"].to_numpy()

    @property
    def unseen(self) -> np.ndarray:
        """Boolean mask over ``test``: paired faces whose AUs equal no Training face's.

        See ``analysis.quality.repeats_training_face``: FER2013 repeats images across splits.
        """
        columns = [c for c in (*AU_R_COLUMNS, *AU_C_COLUMNS) if c in self.train]
        return self.paired & ~repeats_training_face(self.train, self.test, columns)


def load_compare_data(
    au_table: str | Path = FER2013_AU_TABLE,
    no_face: str | Path = NO_FACE,
    privatetest: str | Path = PRIVATETEST,
    estimated: str | Path | None = ESTIMATED,
    concepts: str | Path | None = CONCEPTS,
) -> CompareData:
    """Read and join the AU table, the no-face list and the PrivateTest pixels (and the
    estimated AUs, ``read_estimated``, when the ``estimated`` table exists; None: leave them out;
    and the geometric concepts, ``with_concepts``, when the ``concepts`` table exists).

    Every six-class PrivateTest image of the pixel file must be accounted for: either it
    has an AU row or it is in the no-face list, with the same label in both files.

    Raises:
        CompareError: a file lacks ``Usage``/``image``, an image is in neither list or in
            both, or labels disagree between the files.
            The estimated table lacks a test face (``read_estimated``).
        AUTableError, FER2013Error: unreadable or invalid inputs (from the readers).
    """
    aus = read_au_table(au_table, label_column="emotion", label_coding="name")
    for column in ("image", "Usage", "confidence"):
        if column not in aus:
            raise CompareError(f"{au_table}: no {column!r} column (FER2013 file stem / Usage split)")
    aus = with_concepts(one_face_per_image(six_class_rows(aus)), concepts)
    train = aus[aus["Usage"] == "Training"].reset_index(drop=True)

    pixels = load_fer2013(privatetest)
    pixels = pixels[pixels["Usage"] == "PrivateTest"].copy()
    pixels[LABEL] = [name_for(code, "fer2013") for code in pixels["emotion"]]
    pixels = pixels[pixels[LABEL].isin(EMOTIONS)].reset_index(drop=True)
    if pixels.empty or (pixels["image"] == "").any():
        raise CompareError(f"{privatetest}: needs PrivateTest rows with an 'image' column (file stems)")

    missing = _read_no_face(no_face)
    missing = missing[missing["Usage"] == "PrivateTest"]
    found = aus[aus["Usage"] == "PrivateTest"].set_index("image")
    both = set(found.index) & set(missing["image"])
    if both:
        raise CompareError(f"{no_face}: {len(both)} image(s) both with and without a face, e.g. {min(both)}")
    unaccounted = sorted(set(pixels["image"]) - set(found.index) - set(missing["image"]))
    if unaccounted:
        raise CompareError(
            f"{len(unaccounted)} PrivateTest image(s) of {privatetest} are neither in {au_table} nor in "
            f"{no_face}, e.g. {unaccounted[0]}"
        )
    test = pixels[["image", LABEL]].join(found.drop(columns=[LABEL, "Usage"]), on="image")
    test.insert(2, "has_face", test["image"].isin(found.index))
    au_labels = found[LABEL].reindex(test["image"]).to_numpy()
    clash = test["has_face"].to_numpy() & (au_labels != test[LABEL].to_numpy())
    if clash.any():
        example = test["image"][clash].iloc[0]
        raise CompareError(f"labels differ between {au_table} and {privatetest}, e.g. {example}")
    data = CompareData(train, test, np.stack(pixels["pixels"].to_list())[..., None])
    if estimated is not None and Path(estimated).is_file():
        data.estimated_train, data.estimated_test, data.estimated_source = read_estimated(estimated, test)
    return data


def read_estimated(path: str | Path, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The AU estimator's table (``image, label, Usage``, 17 ``AU*_r``, the six concepts when its
    estimator has a concept head, ``source``) for the comparison.

    Joined on image *and* label (FER2013 reuses two Training stems with different labels).

    Returns:
        ``(train, test_aus, source)``: every six-class Training row (``image``, ``label``, the
        17 ``AU*_r`` and concepts); the same columns of each row of ``test``, same index; the
        ``source``.

    Raises:
        CompareError: no ``image``/``Usage``/``source`` column, an image twice, or a test face
            the table does not cover.
        AUTableError: an unreadable or invalid table.
    """
    table = _estimated_table(path)
    keyed = table.set_index(["image", LABEL])
    wanted = pd.MultiIndex.from_frame(test[["image", LABEL]])
    uncovered = wanted.difference(keyed.index)
    if len(uncovered):
        raise CompareError(
            f"{path}: {len(uncovered)} test face(s) have no estimated AUs, e.g. {uncovered[0][0]} "
            f"({uncovered[0][1]}); regenerate the table with the AU estimator"
        )
    values = _estimated_columns(table)
    test_aus = keyed.loc[wanted, values].set_axis(test.index).astype(float)
    return _estimated_training(table), test_aus, _estimated_source(table)


def _estimated_table(path: str | Path) -> pd.DataFrame:
    table = read_au_table(path, label_coding="name")
    for column in ("image", "Usage", "source"):
        if column not in table:
            raise CompareError(f"{path}: no {column!r} column in the estimated AU table")
    missing_aus = [c for c in AU_R_COLUMNS if c not in table]
    if missing_aus:
        raise CompareError(f"{path}: no {', '.join(missing_aus)} in the estimated AU table")
    twice = table.duplicated(["image", LABEL])
    if twice.any():
        raise CompareError(f"{path}: an image is estimated twice, e.g. {table['image'][twice].iloc[0]}")
    return table


def _estimated_columns(table: pd.DataFrame) -> list[str]:
    return [*AU_R_COLUMNS, *(c for c in (*AU_C_COLUMNS, *CONCEPT_COLUMNS) if c in table)]


def _estimated_training(table: pd.DataFrame) -> pd.DataFrame:
    """Every six-class Training row of the estimator's table: ``image``, ``label``, the estimates."""
    rows = six_class_rows(table[table["Usage"] == "Training"])
    return rows[["image", LABEL, *_estimated_columns(table)]].reset_index(drop=True)


def _estimated_source(table: pd.DataFrame) -> str:
    return "; ".join(str(s) for s in table["source"].dropna().unique())


def estimate_dataset(data: CompareData, path: str | Path = ESTIMATED) -> str | None:
    """Another dataset's estimated-AU rows: the committed AU estimator on the dataset's 48x48 crops
    (``data.pixels``) gives ``data.estimated_test``; the vendored table's rows of the Training faces
    the OpenFace-AU models were fitted on (``data.train``, by image and label), made by the same
    estimator, give ``data.estimated_train``: both kinds of model learn from the same faces. So
    ``make compare IN=`` scores the estimated-AU models and the estimator against OpenFace on
    every dataset it runs.

    Returns:
        None when done; else why not (said on the page): no vendored table, no TensorFlow, or a
        table made by another estimator than the committed one (its SHA-256 prefix differs).

    Raises:
        CompareError, AUTableError: an unusable vendored table.
    """
    from analysis.results import file_sha256

    if not Path(path).is_file():
        return f"no estimated AU table {path} (make evaluate-au-cnn writes it)"
    try:
        import cnn_baseline  # noqa: F401  (TensorFlow's settings before it loads)
        from cnn_baseline.au_estimator import DEFAULT_AU_MODEL, estimate, load_au_estimator
    except ImportError:
        return "TensorFlow is not installed (the cnn extra)"
    table = _estimated_table(path)
    source = _estimated_source(table)
    sha = file_sha256(DEFAULT_AU_MODEL)[:12]
    if sha not in source:
        model = f"{DEFAULT_AU_MODEL.name} (sha256 {sha})"
        return f"{Path(path).name} was made by another estimator ({source}) than {model}"
    aus, concepts, presences = estimate(load_au_estimator(DEFAULT_AU_MODEL), data.pixels)
    test = pd.DataFrame(aus, columns=list(AU_R_COLUMNS), index=data.test.index)
    if presences is not None and set(AU_C_COLUMNS) <= set(table):
        test[list(AU_C_COLUMNS)] = presences
    if concepts is not None and set(CONCEPT_COLUMNS) <= set(table):
        test[list(CONCEPT_COLUMNS)] = concepts
    same = _estimated_training(table).merge(data.train[["image", LABEL]], on=["image", LABEL], how="inner")
    data.estimated_train, data.estimated_test, data.estimated_source = same, test, source
    return None


def _read_no_face(path: str | Path) -> pd.DataFrame:
    """The runner's list of images without a face (``image``, ``Usage`` ...), as strings.

    Raises:
        CompareError: the file cannot be read or lacks ``image`` or ``Usage``.
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, EOFError, ValueError, zlib.error) as error:  # pandas' parser errors are ValueErrors
        raise CompareError(f"{path}: cannot read the no-face list ({' '.join(str(error).split())})") from None
    missing = [c for c in ("image", "Usage") if c not in table]
    if missing:
        raise CompareError(f"{path}: no {', '.join(missing)} column in the no-face list")
    return table


def with_concepts(aus: pd.DataFrame, concepts: str | Path | None = CONCEPTS) -> pd.DataFrame:
    """``aus`` with the geometric concepts (``CONCEPT_COLUMNS``) of each ``image`` joined from the
    ``concepts`` table (``image`` and the six columns); NaN for an image the table lacks; ``aus``
    unchanged when there is no such table.

    Raises:
        CompareError: the table lacks a column, or names an image twice.
    """
    if concepts is None or not Path(concepts).is_file():
        return aus
    table = pd.read_csv(concepts)
    missing = [c for c in ("image", *CONCEPT_COLUMNS) if c not in table]
    if missing:
        raise CompareError(f"{concepts}: no {', '.join(missing)} column(s)")
    if table["image"].duplicated().any():
        twice = table["image"][table["image"].duplicated()].iloc[0]
        raise CompareError(f"{concepts}: an image twice, e.g. {twice}")
    return aus.drop(columns=[c for c in CONCEPT_COLUMNS if c in aus]).merge(
        table[["image", *CONCEPT_COLUMNS]], on="image", how="left"
    )


def load_training(au_table: str | Path = FER2013_AU_TABLE) -> pd.DataFrame:
    """The FER2013 Training AU rows every AU model is fitted on (as ``load_compare_data``'s ``train``),
    with their geometric concepts (``with_concepts``).

    Raises:
        CompareError: the table lacks ``image``, ``Usage`` or ``confidence``.
        AUTableError: an unreadable or invalid table.
    """
    aus = read_au_table(au_table, label_column="emotion", label_coding="name")
    for column in ("image", "Usage", "confidence"):
        if column not in aus:
            raise CompareError(f"{au_table}: no {column!r} column (FER2013 file stem / Usage split)")
    aus = with_concepts(one_face_per_image(six_class_rows(aus)))
    return aus[aus["Usage"] == "Training"].reset_index(drop=True)
