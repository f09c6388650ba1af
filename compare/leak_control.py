"""The leak control: AUs regressed on the *emotion* CNN's features, then the AU logit on them.

The AU estimator (``cnn_baseline.au_estimator``) never sees an emotion label, so an AU model on
its estimates decides through 17 AUs alone. This control shows what happens when that rule is
broken: the 128 features the emotion-trained mini-XCEPTION computes before its ``class_maps``
convolution (the last residual block, global-average-pooled, mean of the face and its mirror)
are mapped to OpenFace's 17 ``AU*_r`` by a ridge regression, and the same AU logit is fitted on
the predicted AUs. The features were learned from emotion labels, so these "AUs" can carry
emotion information that OpenFace's AUs do not: its score is an upper bound of a leaky
bottleneck, not an AU explanation.

The Training pixels are not in the repository (only PrivateTest's are), so the Training side
is computed once where the full FER2013 is (``python -m compare leak-control --data
fer2013.csv.gz``) and vendored small, in readable JSON: the ridge (``LEAK_RIDGE``: 17 x 128
coefficients, intercepts, alpha) and the logit fitted on the Training faces' predicted AUs
(``LEAK_LOGIT``, ``analysis.logit`` format), both tied to the CNN by its SHA-256. ``make compare``
computes the test faces' features from the committed CNN and the vendored PrivateTest pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_models import ModelFileError
from analysis.au_table import (
    AU_R_COLUMNS,
    ESTIMATED_AU_TABLE,
    FER2013_AU_TABLE,
    INTENSITY_RANGE,
    LABEL,
    read_au_table,
)
from analysis.files import write_json
from analysis.labels import EMOTIONS, name_for
from analysis.logit import AULogitModel

ROOT = Path(__file__).resolve().parent.parent
LEAK_DIR = ESTIMATED_AU_TABLE.parent
LEAK_RIDGE = LEAK_DIR / "leak_control_ridge.json"
LEAK_LOGIT = LEAK_DIR / "leak_control_logit.json"
RIDGE_FORMAT = "au-workbench/leak-control-ridge/1"
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
FEATURE_LAYER = "class_maps"  # the features are this layer's input


def feature_model(model):
    """A Keras model from the emotion CNN's input to the input of its ``class_maps`` convolution."""
    import keras

    return keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).input)


def cnn_features(model, pixels: np.ndarray, batch_size: int = 256, body=None) -> np.ndarray:
    """(n, 128) features of the emotion CNN: the input of its ``class_maps`` convolution (the
    last residual block), averaged over space, mean of each face and its mirror.

    Args:
        pixels: (n, 48, 48, 1) uint8 faces 0-255 (resized to the model's input side).
        body: ``feature_model(model)`` when already built (one face at a time: no retracing).
    """
    from cnn_baseline.preprocess import model_inputs

    body = body if body is not None else feature_model(model)
    x = model_inputs(pixels, model.input_shape[1])
    out = []
    for start in range(0, len(x), 2048):
        chunk = x[start : start + 2048]
        both = np.concatenate([chunk, chunk[:, :, ::-1]])
        if len(both) <= batch_size:
            maps = body.predict_on_batch(both)
        else:
            maps = body.predict(both, batch_size=batch_size, verbose=0)
        pooled = np.asarray(maps, dtype=float).mean(axis=(1, 2))
        out.append((pooled[: len(chunk)] + pooled[len(chunk) :]) / 2)
    return np.concatenate(out) if out else np.zeros((0, int(body.output.shape[-1])))


@dataclass
class LeakRidge:
    """Ridge regression from the CNN's features to the 17 ``AU*_r``, and what it was made from."""

    coef: np.ndarray  # (17, n_features)
    intercept: np.ndarray  # (17,)
    alpha: float
    cnn_model: str
    cnn_sha256: str
    metadata: dict

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, 17) predicted AU intensities, clipped to OpenFace's 0-5."""
        return np.clip(features @ self.coef.T + self.intercept, *INTENSITY_RANGE)

    def to_json(self, path: str | Path) -> None:
        write_json(
            path,
            {
                "format": RIDGE_FORMAT,
                "targets": list(AU_R_COLUMNS),
                "alpha": self.alpha,
                "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(),
                "cnn_model": self.cnn_model,
                "cnn_sha256": self.cnn_sha256,
                "metadata": self.metadata,
            },
        )

    @classmethod
    def from_json(cls, path: str | Path) -> LeakRidge:
        """Raises ModelFileError: not a ridge of this format (targets, shapes, numbers)."""
        from analysis.au_models import read_model_json

        data = read_model_json(path, (RIDGE_FORMAT,))
        try:
            coef = np.asarray(data["coef"], dtype=float)
            intercept = np.asarray(data["intercept"], dtype=float)
            alpha = float(data["alpha"])
            ok = (
                data["targets"] == list(AU_R_COLUMNS)
                and coef.ndim == 2
                and coef.shape[0] == len(AU_R_COLUMNS)
                and intercept.shape == (len(AU_R_COLUMNS),)
                and np.isfinite(coef).all()
                and np.isfinite(intercept).all()
            )
            sha, name = str(data["cnn_sha256"]), str(data["cnn_model"])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelFileError(
                f"{path}: not a leak-control ridge (17 AU targets, coefficients and intercepts)"
            )
        return cls(coef, intercept, alpha, name, sha, dict(data.get("metadata") or {}))


def build_leak_control(
    fer2013: str | Path,
    cnn_path: str | Path | None = None,
    au_table: str | Path = FER2013_AU_TABLE,
    ridge_path: str | Path = LEAK_RIDGE,
    logit_path: str | Path = LEAK_LOGIT,
) -> dict:
    """Compute the leak control's Training side from the full FER2013 and write its two JSON files.

    The ridge (``RidgeCV`` over ``RIDGE_ALPHAS``, efficient leave-one-out) is fitted on the
    Training faces OpenFace found (seven emotions, the most confident face, joined on image
    and label), the targets OpenFace's 17 ``AU*_r``; the AU logit (``AULogitModel``, neutral
    reference, 17 ``AU*_r``) on the clipped predicted AUs of *every* six-class Training face.

    Returns:
        What was written (faces, alpha, training R² per AU, seconds).

    Raises:
        FER2013Error, AUTableError, ModelFileError: unusable inputs.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    from analysis.au_table import one_face_per_image
    from analysis.results import file_sha256
    from cnn_baseline.data import load_fer2013
    from cnn_baseline.model import DEFAULT_MODEL, load_model

    start = time.perf_counter()
    cnn_path = Path(cnn_path or DEFAULT_MODEL)
    faces = load_fer2013(fer2013)
    faces = faces[faces["Usage"] == "Training"].reset_index(drop=True)
    faces[LABEL] = [name_for(code, "fer2013") for code in faces["emotion"]]
    features = cnn_features(load_model(cnn_path), np.stack(faces["pixels"].to_list())[..., None])

    aus = one_face_per_image(read_au_table(au_table, label_column="emotion", label_coding="name"))
    aus = aus[aus["Usage"] == "Training"][["image", LABEL, *AU_R_COLUMNS]]
    keyed = faces[["image", LABEL]].reset_index().merge(aus, on=["image", LABEL], how="inner")
    x, y = features[keyed["index"].to_numpy()], keyed[list(AU_R_COLUMNS)].to_numpy(float)
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
    fitted = np.clip(ridge.predict(x), *INTENSITY_RANGE)
    r2 = {c: float(r2_score(y[:, j], fitted[:, j])) for j, c in enumerate(AU_R_COLUMNS)}

    sha = file_sha256(cnn_path)
    leak = LeakRidge(
        np.asarray(ridge.coef_, float),
        np.asarray(ridge.intercept_, float),
        float(ridge.alpha_),
        cnn_path.name,
        sha,
        {
            "features": f"input of {FEATURE_LAYER}, global average, mean of face and mirror ({x.shape[1]})",
            "n_train": int(len(x)),
            "train_r2": r2,
            "alphas_tried": list(RIDGE_ALPHAS),
            "made_by": "python -m compare leak-control --data <full FER2013 csv>",
        },
    )
    six = faces[LABEL].isin(EMOTIONS).to_numpy()
    rows = pd.DataFrame(leak.predict(features[six]), columns=list(AU_R_COLUMNS))
    labels = faces.loc[six, LABEL].to_numpy()
    logit = AULogitModel(list(AU_R_COLUMNS)).fit(rows, labels)
    logit.metadata.update(
        input="AUs regressed on the emotion CNN's features (leak control)",
        cnn_model=cnn_path.name,
        cnn_sha256=sha,
        fit_seconds=float(logit.fit_seconds_),
    )
    leak.to_json(ridge_path)
    logit.to_json(logit_path)
    return {
        "n_ridge": int(len(x)),
        "n_logit": int(six.sum()),
        "alpha": leak.alpha,
        "mean_train_r2": float(np.mean(list(r2.values()))),
        "seconds": time.perf_counter() - start,
    }


@dataclass
class LeakControl:
    """The vendored control, loaded and checked against the CNN it was made with."""

    ridge: LeakRidge
    logit: AULogitModel


def load_leak_control(
    cnn_path: str | Path, ridge_path: str | Path = LEAK_RIDGE, logit_path: str | Path = LEAK_LOGIT
) -> tuple[LeakControl | None, str]:
    """The vendored control, or None and the reason it cannot be used with ``cnn_path``.

    Raises:
        ModelFileError: a vendored file exists but is not usable.
    """
    from analysis.results import file_sha256

    ridge_path, logit_path = Path(ridge_path), Path(logit_path)
    if not ridge_path.is_file() or not logit_path.is_file():
        return None, f"no {ridge_path.name} / {logit_path.name}: run python -m compare leak-control"
    ridge = LeakRidge.from_json(ridge_path)
    logit = AULogitModel.from_json(logit_path)
    if ridge.cnn_sha256 != file_sha256(cnn_path) or logit.metadata.get("cnn_sha256") != ridge.cnn_sha256:
        return None, (
            f"{ridge_path.name} was made with another CNN ({ridge.cnn_model}, "
            f"sha256 {ridge.cnn_sha256[:12]}) than {Path(cnn_path).name}: run python -m compare leak-control"
        )
    if logit.features != list(AU_R_COLUMNS):
        raise ModelFileError(f"{logit_path}: the leak-control logit must use the 17 AU_r columns")
    return LeakControl(ridge, logit), ""
