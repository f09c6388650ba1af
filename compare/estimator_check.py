"""How well do AU estimators follow OpenFace on any folder of face images, labelled or not?

The live mode reads every face's AUs from the AU estimator, so its quality away from FER2013
(another camera, light, crop) matters as much as on it. ``python -m compare estimator-check --in
<folder>`` runs OpenFace over the images (the runner, cached as ``make compare IN=`` caches it),
crops each face OpenFace found as ``make compare IN=`` crops it for the CNNs
(``compare.dataset.face_crop``: the square around OpenFace's landmark box, 48x48 grey), and
scores each estimator's AUs (and concepts) against OpenFace's on those faces: per AU R², mean
absolute error, Pearson r and bias (``cnn_baseline.au_estimator.au_scores``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import AU_R_COLUMNS
from analysis.concepts import CONCEPT_COLUMNS


def openface_faces(table: Path, media: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The runner's rows with a face box and their (n, 48, 48) grey crops (0-255)."""
    from compare.dataset import face_crop

    rows = pd.read_csv(table)
    rows = rows.dropna(subset=["face_w"]).reset_index(drop=True)
    crops, kept = [], []
    for i, row in rows.iterrows():
        face, _kind = face_crop(media / str(row["image"]), row.to_dict(), True)
        if face is not None:
            crops.append(face)
            kept.append(i)
    return rows.loc[kept].reset_index(drop=True), np.stack(crops) if crops else np.zeros(
        (0, 48, 48), np.uint8
    )


def check_estimators(rows: pd.DataFrame, crops: np.ndarray, estimators: list[Path]) -> pd.DataFrame:
    """Per estimator and per AU (and concept, where both sides have it): ``au_scores`` of its
    estimates on ``crops`` against OpenFace's values in ``rows``.

    Returns:
        ``estimator`` (file name), ``au``, ``r2``, ``mae``, ``pearson_r``, ``bias``, ``usable``.

    Raises:
        ModelFileError: an estimator file that cannot be used.
    """
    from cnn_baseline.au_estimator import au_scores, estimate, load_au_estimator

    parts = []
    for path in estimators:
        aus, concepts, _presences = estimate(load_au_estimator(path), crops[..., None])
        table = au_scores(rows[list(AU_R_COLUMNS)].to_numpy(float), aus)
        if concepts is not None and set(CONCEPT_COLUMNS) <= set(rows):
            measured = rows[list(CONCEPT_COLUMNS)].to_numpy(float)
            kept = np.isfinite(measured).all(axis=1)
            table = pd.concat([table, au_scores(measured[kept], concepts[kept], CONCEPT_COLUMNS)])
        parts.append(table.assign(estimator=Path(path).name))
    out = pd.concat(parts, ignore_index=True)
    return out[["estimator", *(c for c in out.columns if c != "estimator")]]


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per estimator: mean R², mean Pearson r, mean |bias| over the 17 AUs, and mean R² of the concepts."""
    aus = scores[scores["au"].isin(AU_R_COLUMNS)]
    concepts = scores[scores["au"].isin(CONCEPT_COLUMNS)]
    out = aus.groupby("estimator", sort=False).agg(
        au_mean_r2=("r2", "mean"),
        au_mean_r=("pearson_r", "mean"),
        au_mean_abs_bias=("bias", lambda b: b.abs().mean()),
    )
    out["concepts_mean_r2"] = concepts.groupby("estimator", sort=False)["r2"].mean()
    return out.reset_index()
