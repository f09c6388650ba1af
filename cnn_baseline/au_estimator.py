"""The AU estimator: mini-XCEPTION with a linear 17-unit head that predicts OpenFace's AU
intensities from pixels, for every face (OpenFace misses 17% of FER2013's).

A concept-bottleneck model trained sequentially (Koh et al. 2020, "Concept Bottleneck
Models", ICML): the estimator learns only OpenFace's ``AU*_r`` values (0-5) of FER2013
``Training`` faces, never an emotion label, so an AU model fitted on its estimates decides
through the 17 AUs alone and the estimator cannot pass emotion information around them.
Protocol as the emotion CNN's: fit on ``Training``, the learning-rate drops, early stopping
and the kept checkpoint look at ``PublicTest`` AU loss only, ``PrivateTest`` is scored once.

Training faces are joined to the vendored OpenFace table (``analysis.au_table.FER2013_AU_TABLE``)
on file stem *and* label: FER2013 reuses two stems with different labels (``Training_52789098``,
``Training_8475486``). Augmentation: random horizontal flips only (OpenFace's AUs are
bilateral, so a mirrored face has the same AUs); prediction averages a face and its mirror.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_table import (
    AU_R_COLUMNS,
    ESTIMATED_AU_TABLE,
    FER2013_AU_TABLE,
    INTENSITY_RANGE,
    one_face_per_image,
    read_au_table,
)
from analysis.files import write_json
from analysis.labels import name_for
from cnn_baseline.data import USAGES, load_fer2013
from cnn_baseline.errors import CNNError, ModelFileError
from cnn_baseline.evaluate import mirrored_and_one_pass
from cnn_baseline.model import MODELS, load_model, mini_xception
from cnn_baseline.preprocess import model_inputs, scale
from cnn_baseline.train import _EpochTimer, _InterruptWatch, gpu_available

DEFAULT_AU_MODEL = MODELS / "au_estimator.keras"
DEFAULT_AU_RUN = MODELS / "au_run"
SOURCE = "mini-XCEPTION AU estimator"
"""The ``source`` of an AU table the estimator wrote (OpenFace's tables have none or ``OpenFace``)."""
USABLE_R2 = 0.3
"""An AU estimate is called usable when it explains at least 30% of the variance of
OpenFace's values on PrivateTest faces (R² >= 0.3)."""


def au_faces(fer2013: str | Path, au_table: str | Path = FER2013_AU_TABLE) -> pd.DataFrame:
    """FER2013 faces with OpenFace's AU intensities, one row per face OpenFace found.

    Returns:
        ``image``, ``label`` (emotion name), ``Usage``, ``pixels`` (48x48 uint8, 0-255) and the
        17 ``AU*_r`` (0-5) of the most confident face, in the pixel file's order.

    Raises:
        FER2013Error, AUTableError: unreadable inputs.
        CNNError: the FER2013 file has no ``image`` column (file stems are needed to join).
    """
    faces = load_fer2013(fer2013)
    if (faces["image"] == "").all():
        raise CNNError(f"{fer2013}: no 'image' column (FER2013 file stems) to join with {au_table}")
    faces["label"] = [name_for(code, "fer2013") for code in faces["emotion"]]
    aus = one_face_per_image(read_au_table(au_table, label_column="emotion", label_coding="name"))
    joined = faces.merge(aus[["image", "label", *AU_R_COLUMNS]], on=["image", "label"], how="inner")
    return joined[["image", "label", "Usage", "pixels", *AU_R_COLUMNS]]


def au_estimator_model(side: int = 48):
    """A fresh estimator: the mini-XCEPTION body, a linear head of 17 units (one per ``AU*_r``)."""
    return mini_xception((side, side, 1), num_classes=len(AU_R_COLUMNS), head="linear", name="au_estimator")


def load_au_estimator(path: str | Path = DEFAULT_AU_MODEL, compile: bool = False):
    """The estimator saved at ``path`` (``load_model``'s checks, then the 17-AU output).

    Raises:
        ModelFileError: not a loadable ``.keras`` model, or not (None, 17) AU estimates.
    """
    model = load_model(path, num_classes=None, compile=compile)
    if tuple(model.output_shape) != (None, len(AU_R_COLUMNS)) or len(model.input_shape) != 4:
        raise ModelFileError(
            f"{path}: not an AU estimator: output {tuple(model.output_shape)}, expected (None, "
            f"{len(AU_R_COLUMNS)}) AU intensities (train one with `make train-au-cnn`)"
        )
    return model


def estimate_aus(model, pixels: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """AU intensities of faces: the mean of the face's and its mirror's estimates, clipped to 0-5.

    Args:
        pixels: (n, h, w, 1) grey faces, 0-255 (resized to the model's side when needed).

    Returns:
        (n, 17) float64 in ``AU_R_COLUMNS`` order, intensities 0-5 (OpenFace's scale).
    """
    if len(pixels) == 0:
        return np.zeros((0, len(AU_R_COLUMNS)))
    estimates, _ = mirrored_and_one_pass(model, model_inputs(pixels, model.input_shape[1]), batch_size)
    return np.clip(estimates, *INTENSITY_RANGE)


def estimated_au_table(model, faces: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """An AU table of estimated intensities: one row per face of ``faces`` (``image``, ``label``,
    ``Usage`` kept when present, ``pixels`` (48x48 uint8) required), the 17 ``AU*_r`` rounded to
    2 decimals as OpenFace writes them, and ``source`` naming the estimator (``model_name``)."""
    aus = estimate_aus(model, np.stack(faces["pixels"].to_list())[..., None])
    kept = [c for c in ("image", "label", "Usage") if c in faces]
    table = faces[kept].reset_index(drop=True).copy()
    table[list(AU_R_COLUMNS)] = np.round(aus, 2)
    table["source"] = f"{SOURCE} {model_name}"
    return table


def au_scores(openface: np.ndarray, estimated: np.ndarray) -> pd.DataFrame:
    """Per AU, how well the estimates follow OpenFace: R², mean absolute error (intensity
    units), Pearson r, and ``usable`` (R² >= ``USABLE_R2``). One row per ``AU*_r``."""
    from sklearn.metrics import mean_absolute_error, r2_score

    rows = []
    for j, column in enumerate(AU_R_COLUMNS):
        truth, guess = openface[:, j], estimated[:, j]
        r = float(np.corrcoef(truth, guess)[0, 1]) if truth.std() > 0 and guess.std() > 0 else float("nan")
        r2 = float(r2_score(truth, guess))
        rows.append(
            {
                "au": column,
                "r2": r2,
                "mae": float(mean_absolute_error(truth, guess)),
                "pearson_r": r,
                "usable": r2 >= USABLE_R2,
            }
        )
    return pd.DataFrame(rows)


def train_au_estimator(
    data_path: str | Path,
    run_dir: str | Path = DEFAULT_AU_RUN,
    model_path: str | Path = DEFAULT_AU_MODEL,
    au_table: str | Path = FER2013_AU_TABLE,
    epochs: int = 60,
    batch_size: int = 64,
    patience: int = 10,
    seed: int = 0,
    verbose: int = 2,
    resume: bool = False,
) -> dict:
    """Train the estimator on Training faces' OpenFace AUs; keep the best on PublicTest AU loss.

    Mean squared error on the 17 intensities, Adam (1e-3), batch 64, random horizontal flips,
    the learning rate divided by 10 after ``patience // 2`` epochs without a better PublicTest
    loss and early stopping after ``patience`` (improvements under 1e-4 do not count). Writes
    ``history.csv``, ``last.keras`` (every epoch, with the optimiser: ``resume`` continues from
    it) and ``training.json`` into
    ``run_dir``; the best model to ``model_path``. PrivateTest is not read here.

    Returns:
        The training record (``epochs``, ``train_seconds``, ``params``, ``faces`` per split,
        ``publictest_loss`` of the kept model, ``device``), also in ``training.json``.

    Raises:
        FER2013Error, AUTableError, CNNError: unusable inputs.
    """
    import keras

    keras.utils.set_random_seed(seed)
    faces = au_faces(data_path, au_table)
    split = {usage: faces[faces["Usage"] == usage] for usage in USAGES}
    x_train = np.stack(split["Training"]["pixels"].to_list())[..., None]
    y_train = split["Training"][list(AU_R_COLUMNS)].to_numpy("float32")
    x_val = model_inputs(np.stack(split["PublicTest"]["pixels"].to_list())[..., None])
    y_val = split["PublicTest"][list(AU_R_COLUMNS)].to_numpy("float32")
    run_dir, model_path = Path(run_dir), Path(model_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    last, history_csv, record_path = (
        run_dir / "last.keras",
        run_dir / "history.csv",
        run_dir / "training.json",
    )

    initial_epoch, best_so_far = 0, None
    if resume and last.exists() and history_csv.exists():
        model = load_au_estimator(last, compile=True)
        initial_epoch = max(0, len(history_csv.read_text().splitlines()) - 1)
        best_so_far = _best_loss(history_csv) if model_path.exists() else None
    else:
        model = au_estimator_model()
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error", metrics=["mean_absolute_error"]
        )
    previous = json.loads(record_path.read_text()) if initial_epoch and record_path.exists() else {}
    record = {
        **previous,
        "target": f"OpenFace 2.2.0 {', '.join(AU_R_COLUMNS)} (0-5) of {Path(au_table).name}",
        "faces": {usage: int(len(part)) for usage, part in split.items()},
        "epochs": initial_epoch,
        "train_seconds": float(previous.get("train_seconds", 0.0)),
        "params": int(model.count_params()),
        "batch_size": batch_size,
        "seed": seed,
        "device": f"{'GPU' if gpu_available() else 'CPU'}, Keras {keras.backend.backend()} backend",
    }

    def save_record(epoch: int, seconds: float) -> None:
        record.update(
            epochs=epoch + 1,
            train_seconds=record["train_seconds"] + seconds,
            publictest_loss=_best_loss(history_csv),
        )
        write_json(record_path, record)

    callbacks = [
        keras.callbacks.CSVLogger(history_csv, append=initial_epoch > 0),
        _EpochTimer(save_record),
        keras.callbacks.ModelCheckpoint(last),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=max(1, patience // 2)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, min_delta=1e-4),
        keras.callbacks.ModelCheckpoint(
            model_path, monitor="val_loss", save_best_only=True, initial_value_threshold=best_so_far
        ),
    ]
    with _InterruptWatch() as watch:
        model.fit(
            _flipped_batches(x_train, y_train, batch_size, seed),
            validation_data=(x_val, y_val),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[*callbacks, watch],
            verbose=verbose,
        )
    return record


def _flipped_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Shuffled batches of scaled faces, each face mirrored with probability 1/2 (``tf.data``)."""
    import keras
    import tensorflow as tf

    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    data = tf.data.Dataset.from_tensor_slices((scale(x), y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    data = data.map(lambda a, b: (flip(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _best_loss(history_csv: Path) -> float:
    """The lowest PublicTest AU loss (mean squared error) of the epochs so far."""
    return float(pd.read_csv(history_csv)["val_loss"].min())


ESTIMATED_TABLE = ESTIMATED_AU_TABLE


def evaluate_au_estimator(
    data_path: str | Path,
    model_path: str | Path = DEFAULT_AU_MODEL,
    out_dir: str | Path = "reports/au_cnn",
    table_path: str | Path = ESTIMATED_TABLE,
    au_table: str | Path = FER2013_AU_TABLE,
) -> dict:
    """Score the estimator once on PrivateTest faces against OpenFace, and write its AU table.

    Writes ``au_scores.csv`` (``au_scores`` per AU) and ``metrics.json`` (mean R², mean MAE,
    usable AUs, the threshold, faces scored, the model's SHA-256) into ``out_dir`` as one
    results unit (``analysis.results``), and ``table_path``: the estimated AUs of *every*
    FER2013 face (those OpenFace missed included), columns ``image, label, Usage``, 17
    ``AU*_r`` and ``source``: the AU table the AU models fit on instead of OpenFace's.

    Returns:
        The metrics.

    Raises:
        FER2013Error, AUTableError, ModelFileError, CNNError: unusable inputs.
    """
    from analysis.au_table import write_au_table
    from analysis.results import file_sha256, results_unit

    model_path = Path(model_path)
    model = load_au_estimator(model_path)
    faces = load_fer2013(data_path)
    faces["label"] = [name_for(code, "fer2013") for code in faces["emotion"]]
    sha = file_sha256(model_path)
    table = estimated_au_table(model, faces, f"{model_path.name} (sha256 {sha[:12]})")
    scored = au_faces(data_path, au_table)
    scored = scored[scored["Usage"] == "PrivateTest"]
    estimated = table.set_index(["image", "label"]).loc[
        list(zip(scored["image"], scored["label"], strict=True))
    ]
    per_au = au_scores(
        scored[list(AU_R_COLUMNS)].to_numpy(float), estimated[list(AU_R_COLUMNS)].to_numpy(float)
    )
    metrics = {
        "faces_scored": int(len(scored)),
        "split": "PrivateTest faces OpenFace found (its AUs are the reference)",
        "mean_r2": float(per_au["r2"].mean()),
        "mean_mae": float(per_au["mae"].mean()),
        "usable_threshold_r2": USABLE_R2,
        "usable": [c for c, ok in zip(per_au["au"], per_au["usable"], strict=True) if ok],
        "model": model_path.name,
        "model_sha256": sha,
        "faces_estimated": int(len(table)),
        "note": "estimates are the mean of each face and its mirror, clipped to 0-5, rounded to 2 decimals",
    }
    with results_unit(out_dir, "evaluate-au-cnn") as staging:
        per_au.to_csv(staging / "au_scores.csv", index=False, float_format="%.4f")
        write_json(staging / "metrics.json", metrics)
    write_au_table(table, table_path)
    return metrics
