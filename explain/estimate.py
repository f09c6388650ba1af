"""AU estimates for the images OpenFace found no face in (``make explain AU_CNN=1``).

The runner writes every image it could not use to ``<table>.failures.csv`` (``image, label,
reason``); those with reason ``"no face found"`` (``openface_runner.runner.NO_FACE``) are the
images OpenFace *missed*. With ``--estimate-missed`` each missed image's face is taken as the
emotion CNN takes it (``cnn_baseline.predict.face_of``, ``faces="auto"``: a 48x48 grey crop
whole, else OpenCV's Haar cascade) and its 17 AU intensities come from the AU estimator
(``cnn_baseline.au_estimator``: a mini-XCEPTION trained on OpenFace's AU intensities only,
never on emotion labels). The rows are appended to OpenFace's rows in one AU table with a
``source`` column, so the same AU model explains every face; an image where the cascade finds
no face either stays unexplained, with that reason.

Estimated rows carry no OpenFace confidence or success (empty cells, NaN when read): OpenFace
never fitted those faces, and a made-up 1 would pass them off as good fits. Videos are out of
scope: frames OpenFace misses stay masked (``explain.video``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_C_COLUMNS, AU_R_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS
from explain.errors import ExplainError
from openface_runner.runner import NO_FACE, failures_path

OPENFACE = "OpenFace"
ESTIMATED_MISSED = "AU estimator (OpenFace found no face)"
ESTIMATED = "AU estimator"
HINT = "AU_CNN=1 (--estimate-missed) would estimate their AUs from the pixels"
CASCADE_MISSED = "OpenFace found no face, and the AU estimator had none to take: {why}"
TABLE_NAME = "au_table.with_estimates.csv"


@dataclass
class Missed:
    """The images OpenFace could not use: ``failures`` (``image, label, reason``, as the runner
    writes them); ``no_face``: those OpenFace found no face in."""

    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image", "label", "reason"]))

    @property
    def no_face(self) -> pd.DataFrame:
        return self.failures[self.failures["reason"] == NO_FACE]


def read_missed(table: str | Path) -> Missed:
    """The failures the runner recorded beside ``table`` (none when there is no such file)."""
    path = failures_path(table)
    if not path.is_file():
        return Missed()
    try:
        failures = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return Missed()
    if not {"image", "reason"} <= set(failures.columns):
        return Missed()
    if "label" not in failures:
        failures["label"] = ""
    return Missed(failures[["image", "label", "reason"]].reset_index(drop=True))


def check_estimator_available(no_cnn: bool) -> None:
    """Fail early, in one line, when the AU estimator cannot run.

    Raises:
        ExplainError: ``--no-cnn`` was given too, or TensorFlow is not installed.
    """
    if no_cnn:
        raise ExplainError(
            "AU_CNN=1 (--estimate-missed) needs TensorFlow for the AU estimator (a mini-XCEPTION), "
            "which NO_CNN=1 (--no-cnn) leaves out: drop one of them"
        )
    if importlib.util.find_spec("tensorflow") is None:
        raise ExplainError(
            "AU_CNN=1 (--estimate-missed) needs TensorFlow for the AU estimator, and it is not "
            "installed (make explain without NO_CNN=1 installs it, or pip install '.[cnn]')"
        )


def estimator_label(path: str | Path) -> str:
    """``mini-XCEPTION AU estimator <file> (sha256 <first 12 hex>)``: the ``source`` text the
    estimator's rows carry (as ``cnn_baseline.au_estimator.evaluate_au_estimator`` writes it)."""
    from analysis.results import file_sha256
    from cnn_baseline.au_estimator import SOURCE

    path = Path(path)
    return f"{SOURCE} {path.name} (sha256 {file_sha256(path)[:12]})"


def estimate_missed(
    table: Path, media: Path, missed: Missed, estimator: str | Path | None, out: Path
) -> tuple[Path, pd.DataFrame]:
    """OpenFace's rows plus the estimator's rows for the images OpenFace found no face in,
    written to ``out`` (an image AU table with a ``source`` column).

    Returns:
        (the table written, the images still unexplained: ``image, label, reason``).

    Raises:
        ExplainError: the estimator file is not usable (one line); no face anywhere.
        ModelFileError: from ``load_au_estimator``, one line.
    """
    import cnn_baseline  # noqa: F401  (TensorFlow's thread limits before it loads)
    from cnn_baseline.au_estimator import DEFAULT_AU_MODEL, estimate, load_au_estimator
    from cnn_baseline.errors import PredictError
    from cnn_baseline.predict import face_of

    path = Path(estimator or DEFAULT_AU_MODEL)
    if not path.is_file():
        raise ExplainError(f"{path}: no such AU estimator (train one with `make train-au-cnn`)")
    label = estimator_label(path)
    faces, rows, unexplained = [], [], []
    for record in missed.no_face.to_dict("records"):
        try:
            face, _how = face_of(media / record["image"], "auto")
        except PredictError as error:
            why = str(error).split(" (pass --cropped")[0]
            unexplained.append({**record, "reason": CASCADE_MISSED.format(why=why)})
            continue
        faces.append(face)
        rows.append({"image": record["image"], "label": record["label"], "face": 0, "source": label})
    others = missed.failures[missed.failures["reason"] != NO_FACE]
    unexplained_table = pd.DataFrame(
        [*unexplained, *others.to_dict("records")], columns=["image", "label", "reason"]
    )
    openface = pd.read_csv(table, dtype=str, keep_default_na=False) if table.is_file() else None
    if openface is not None:
        openface.columns = [str(c).strip() for c in openface.columns]
        openface["source"] = OPENFACE
    if not faces:
        if openface is None:
            raise ExplainError(
                f"no face to explain: OpenFace found none, and neither did the Haar cascade "
                f"({len(unexplained_table)} image(s); see {failures_path(table)})"
            )
        return _write(openface, out), unexplained_table
    aus, concepts, presences = estimate(load_au_estimator(path), np.stack(faces)[..., None])
    estimated = pd.DataFrame(rows)
    for j, column in enumerate(AU_R_COLUMNS):
        estimated[column] = [repr(float(v)) for v in aus[:, j]]  # exact: repr round-trips a float
    for j, column in enumerate(CONCEPT_COLUMNS if concepts is not None else ()):
        estimated[column] = [repr(float(v)) for v in concepts[:, j]]  # the estimator's concept units
    for j, column in enumerate(AU_C_COLUMNS if presences is not None else ()):
        estimated[column] = [str(int(v)) for v in presences[:, j]]  # the presence head's 0/1
    merged = estimated if openface is None else pd.concat([openface, estimated], ignore_index=True)
    merged = merged.fillna("")  # estimated rows: no confidence, success, box, AU presences
    return _write(merged, out), unexplained_table


def _write(table: pd.DataFrame, out: Path) -> Path:
    from analysis.files import write_csv

    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, table)
    return out


def source_labels(sources: pd.Series, estimated_missed: bool) -> pd.Series:
    """Per face, where its AUs come from: ``OpenFace``, ``AU estimator (OpenFace found no face)``
    (this run estimated the faces OpenFace missed) or ``AU estimator`` (a table made so)."""
    is_openface = sources.isin(["", OPENFACE])
    return pd.Series(
        np.where(is_openface, OPENFACE, ESTIMATED_MISSED if estimated_missed else ESTIMATED),
        index=sources.index,
    )
