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
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    ESTIMATED_AU_TABLE,
    FER2013_AU_TABLE,
    FER2013_CONCEPTS,
    INTENSITY_RANGE,
    one_face_per_image,
    read_au_table,
)
from analysis.concepts import CONCEPT_COLUMNS
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
CONCEPT_DIGITS = 4  # as the vendored concept table (compare/concepts.py)
USABLE_R2 = 0.3
"""An AU estimate is called usable when it explains at least 30% of the variance of
OpenFace's values on PrivateTest faces (R² >= 0.3)."""


def au_faces(
    fer2013: str | Path,
    au_table: str | Path = FER2013_AU_TABLE,
    concepts: str | Path | None = None,
    presences: bool = False,
) -> pd.DataFrame:
    """FER2013 faces with OpenFace's AU intensities, one row per face OpenFace found.

    Args:
        concepts: a table of ``image`` and the six ``CONCEPT_COLUMNS`` (e.g. ``FER2013_CONCEPTS``):
            joined by ``image``, faces it lacks left out; None: no concept columns.
        presences: also OpenFace's 18 ``AU*_c`` (0/1) of the face.

    Returns:
        ``image``, ``label`` (emotion name), ``Usage``, ``pixels`` (48x48 uint8, 0-255), the
        17 ``AU*_r`` (0-5) of the most confident face and, with ``concepts``, the six concepts
        (inter-ocular distances), in the pixel file's order.

    Raises:
        FER2013Error, AUTableError: unreadable inputs.
        CNNError: the FER2013 file has no ``image`` column (file stems are needed to join).
    """
    faces = load_fer2013(fer2013)
    if (faces["image"] == "").all():
        raise CNNError(f"{fer2013}: no 'image' column (FER2013 file stems) to join with {au_table}")
    faces["label"] = [name_for(code, "fer2013") for code in faces["emotion"]]
    aus = one_face_per_image(read_au_table(au_table, label_column="emotion", label_coding="name"))
    measured = [*AU_R_COLUMNS, *(AU_C_COLUMNS if presences else ())]
    joined = faces.merge(aus[["image", "label", *measured]], on=["image", "label"], how="inner")
    columns = ["image", "label", "Usage", "pixels", *measured]
    if concepts is not None:
        table = pd.read_csv(concepts)[["image", *CONCEPT_COLUMNS]].drop_duplicates("image")
        joined = joined.merge(table, on="image", how="inner").dropna(subset=list(CONCEPT_COLUMNS))
        columns += CONCEPT_COLUMNS
    return joined[columns].reset_index(drop=True)


N_AUS, N_CONCEPTS, N_PRESENCES = len(AU_R_COLUMNS), len(CONCEPT_COLUMNS), len(AU_C_COLUMNS)
HEADS = (N_AUS, N_AUS + N_CONCEPTS, N_AUS + N_CONCEPTS + N_PRESENCES)
"""The estimator's output widths: AUs; AUs and concepts; AUs, concepts and presences."""


class Estimates(NamedTuple):
    """``estimate``'s result for n faces: ``aus`` (n, 17) intensities 0-5; ``concepts`` (n, 6) in
    inter-ocular distances or None; ``presences`` (n, 18) 0/1 in ``AU_C_COLUMNS`` order or None."""

    aus: np.ndarray
    concepts: np.ndarray | None
    presences: np.ndarray | None


def au_estimator_model(side: int = 48, concepts: bool = False, presences: bool = False):
    """A fresh estimator: the mini-XCEPTION body and a linear head of 17 units (one per
    ``AU*_r``), followed by 6 more (one per ``CONCEPT_COLUMNS``) with ``concepts`` and by 18 more
    (one logit per ``AU*_c`` presence; needs ``concepts``) with ``presences``."""
    outputs = HEADS[int(concepts) + int(concepts and presences)]
    return mini_xception((side, side, 1), num_classes=outputs, head="linear", name="au_estimator")


def au_loss(y_true, y_pred):
    """Mean squared error on the 17 AUs and 6 standardised concepts, plus binary cross-entropy on
    the presence logits (units 24-41) when the head has them; a (batch,) loss."""
    import keras

    ops = keras.ops
    squared = ops.mean(ops.square(y_true[:, : HEADS[1]] - y_pred[:, : HEADS[1]]), axis=-1)
    if y_pred.shape[-1] == HEADS[1]:
        return squared
    presence = keras.losses.binary_crossentropy(
        y_true[:, HEADS[1] :], y_pred[:, HEADS[1] :], from_logits=True
    )
    return squared + presence


def registered_loss():
    """``au_loss`` registered with Keras (once), so that a saved training state names it and
    ``load_au_estimator(..., compile=True)`` finds it when a run resumes."""
    import keras

    if keras.saving.get_registered_object("au_workbench>au_loss") is None:
        keras.saving.register_keras_serializable(package="au_workbench", name="au_loss")(au_loss)
    return au_loss


def load_au_estimator(path: str | Path = DEFAULT_AU_MODEL, compile: bool = False):
    """The estimator saved at ``path`` (``load_model``'s checks, then its output: 17 AU
    intensities; or also the 6 geometric concepts; or also the 18 AU presences' logits).

    Raises:
        ModelFileError: not a loadable ``.keras`` model, or an output other than (None, 17),
            (None, 23) or (None, 41).
    """
    if compile:
        registered_loss()
    model = load_model(path, num_classes=None, compile=compile)
    if tuple(model.output_shape) not in {(None, width) for width in HEADS} or len(model.input_shape) != 4:
        raise ModelFileError(
            f"{path}: not an AU estimator: output {tuple(model.output_shape)}, expected (None, "
            f"{len(AU_R_COLUMNS)}) AU intensities (train one with `make train-au-cnn`)"
        )
    return model


def estimates_concepts(model) -> bool:
    """Whether the estimator's head also gives the six geometric concepts."""
    return model.output_shape[-1] >= HEADS[1]


def estimates_presences(model) -> bool:
    """Whether the estimator's head also gives the 18 AU presences."""
    return model.output_shape[-1] == HEADS[2]


def estimate(model, pixels: np.ndarray, batch_size: int = 1024) -> Estimates:
    """AU intensities, geometric concepts and AU presences of faces: the mean of the face's and
    its mirror's outputs (every target is bilateral, so a mirrored face has the same values).

    Args:
        pixels: (n, h, w, 1) grey faces, 0-255 (resized to the model's side when needed).

    Returns:
        ``Estimates``: (n, 17) float64 in ``AU_R_COLUMNS`` order, clipped to 0-5 (OpenFace's
        scale); (n, 6) float64 in ``CONCEPT_COLUMNS`` order (inter-ocular distances), or None
        for an estimator without a concept head; (n, 18) 0/1 in ``AU_C_COLUMNS`` order (the
        mean presence logit above 0: probability above 1/2, as OpenFace's classifiers decide),
        or None without a presence head.
    """
    width = model.output_shape[-1]
    if len(pixels) == 0:
        values = np.zeros((0, width))
    else:
        values, _ = mirrored_and_one_pass(model, model_inputs(pixels, model.input_shape[1]), batch_size)
    aus = np.clip(values[:, :N_AUS], *INTENSITY_RANGE)
    concepts = values[:, N_AUS : HEADS[1]] if estimates_concepts(model) else None
    presences = (values[:, HEADS[1] :] > 0).astype(float) if estimates_presences(model) else None
    return Estimates(aus, concepts, presences)


def estimate_aus(model, pixels: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The AU intensities of ``estimate``: (n, 17) float64, 0-5, for (n, h, w, 1) faces 0-255."""
    return estimate(model, pixels, batch_size)[0]


def estimated_au_table(model, faces: pd.DataFrame, model_name: str) -> pd.DataFrame:
    """An AU table of estimated intensities: one row per face of ``faces`` (``image``, ``label``,
    ``Usage`` kept when present, ``pixels`` (48x48 uint8) required), the 17 ``AU*_r`` rounded to
    2 decimals as OpenFace writes them, the 18 ``AU*_c`` (0/1) when the estimator has a presence
    head, the six concepts (``CONCEPT_DIGITS`` decimals) when it has a concept head, and
    ``source`` naming the estimator (``model_name``)."""
    aus, concepts, presences = estimate(model, np.stack(faces["pixels"].to_list())[..., None])
    kept = [c for c in ("image", "label", "Usage") if c in faces]
    table = faces[kept].reset_index(drop=True).copy()
    table[list(AU_R_COLUMNS)] = np.round(aus, 2)
    if presences is not None:
        table[list(AU_C_COLUMNS)] = presences.astype(int)
    if concepts is not None:
        table[list(CONCEPT_COLUMNS)] = np.round(concepts, CONCEPT_DIGITS)
    table["source"] = f"{SOURCE} {model_name}"
    return table


def au_scores(openface: np.ndarray, estimated: np.ndarray, columns=AU_R_COLUMNS) -> pd.DataFrame:
    """Per column (an AU, or a concept), how well the estimates follow OpenFace: R², mean absolute
    error (the column's units: intensity 0-5, or inter-ocular distances), Pearson r, ``bias`` (mean
    estimate minus mean OpenFace value: a shift in level, e.g. another camera or crop) and
    ``usable`` (R² >= ``USABLE_R2``).

    Args:
        openface, estimated: (n, len(columns)) values on the same faces.

    Returns:
        One row per column, ``au`` naming it.
    """
    from sklearn.metrics import mean_absolute_error, r2_score

    rows = []
    for j, column in enumerate(columns):
        truth, guess = openface[:, j], estimated[:, j]
        r = float(np.corrcoef(truth, guess)[0, 1]) if truth.std() > 0 and guess.std() > 0 else float("nan")
        r2 = float(r2_score(truth, guess))
        rows.append(
            {
                "au": column,
                "r2": r2,
                "mae": float(mean_absolute_error(truth, guess)),
                "pearson_r": r,
                "bias": float(guess.mean() - truth.mean()),
                "usable": r2 >= USABLE_R2,
            }
        )
    return pd.DataFrame(rows)


AUGMENTATIONS = ("flip", "travel")


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
    concepts: str | Path | None = None,
    presences: bool = False,
    init_from: str | Path | None = None,
    schedule: str = "plateau",
    learning_rate: float = 1e-3,
    augment: str = "flip",
    average_last: int = 5,
) -> dict:
    """Train the estimator on Training faces' OpenFace AUs (and concepts); PrivateTest is not read.

    Mean squared error on the 17 intensities (and the six concepts, standardised on the Training
    faces so that each weighs like an AU), Adam, batch 64. Writes ``history.csv``, ``last.keras``
    (every epoch, with the optimiser: ``resume`` continues from it) and ``training.json`` into
    ``run_dir``, and the kept model to ``model_path``.

    ``schedule``: ``"plateau"`` (rate ``learning_rate``, divided by 10 after ``patience // 2``
    epochs without a better PublicTest loss, early stopping after ``patience``; the best epoch on
    PublicTest is kept) or ``"cosine"`` (the rate falls from ``learning_rate`` to 0 over
    ``epochs`` along a half cosine, Loshchilov & Hutter 2017, arXiv 1608.03983; the kept model is
    the mean of the weights of the last ``average_last`` epochs, stochastic weight averaging,
    Izmailov et al. 2018, arXiv 1803.05407, with its BatchNorm statistics recomputed on the
    un-augmented Training faces, ``averaging.recalibrate_batchnorm``).
    ``concepts``: the concept table (``FER2013_CONCEPTS``); the head gets six more units and the
    saved model gives concepts in inter-ocular distances (the standardisation is folded into the
    last convolution, which is linear). ``init_from``: an estimator whose body (and AU units)
    start the run. ``augment``: ``"flip"`` (horizontal flips) or ``"travel"`` (the emotion CNN's
    rotation, shift, zoom and flip, plus contrast, brightness and Gaussian blur, so that the
    estimates shift less with another camera and crop).

    Returns:
        The training record (``epochs``, ``train_seconds``, ``params``, ``faces`` per split,
        ``publictest_loss``, ``device`` and the settings), also in ``training.json``.

    Raises:
        FER2013Error, AUTableError, CNNError: unusable inputs; CNNError: an unknown schedule or
            augmentation.
    """
    import keras

    from cnn_baseline.train import SCHEDULES

    if schedule not in SCHEDULES or augment not in AUGMENTATIONS:
        raise CNNError(
            f"schedule {schedule!r}, augmentation {augment!r}: one of {SCHEDULES}, {AUGMENTATIONS}"
        )
    if concepts is not None and schedule != "cosine":
        raise CNNError(
            "a concept head is trained with the cosine schedule (its model is written once, at the end)"
        )
    keras.utils.set_random_seed(seed)
    if presences and concepts is None:
        raise CNNError("a presence head comes after the concept head: give the concept table too")
    faces = au_faces(data_path, au_table, concepts, presences)
    targets = [
        *AU_R_COLUMNS,
        *(CONCEPT_COLUMNS if concepts is not None else ()),
        *(AU_C_COLUMNS if presences else ()),
    ]
    split = {usage: faces[faces["Usage"] == usage] for usage in USAGES}
    train_values = split["Training"][targets].to_numpy("float64")
    # AUs and presences as they are; concepts standardised on the Training faces (undone in the
    # saved model, so that it gives inter-ocular distances).
    mean, std = np.zeros(len(targets)), np.ones(len(targets))
    if concepts is not None:
        mean[N_AUS : HEADS[1]] = train_values[:, N_AUS : HEADS[1]].mean(0)
        std[N_AUS : HEADS[1]] = train_values[:, N_AUS : HEADS[1]].std(0)
    x_train = np.stack(split["Training"]["pixels"].to_list())[..., None]
    y_train = ((train_values - mean) / std).astype("float32")
    x_val = model_inputs(np.stack(split["PublicTest"]["pixels"].to_list())[..., None])
    y_val = ((split["PublicTest"][targets].to_numpy("float64") - mean) / std).astype("float32")
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
        model = au_estimator_model(concepts=concepts is not None, presences=presences)
        if init_from is not None:
            _start_from(model, load_au_estimator(init_from))
        rate = learning_rate
        if schedule == "cosine":
            steps = epochs * -(-len(x_train) // batch_size)
            rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
        model.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss=registered_loss() if presences else "mean_squared_error",
        )
    previous = json.loads(record_path.read_text()) if initial_epoch and record_path.exists() else {}
    record = {
        **previous,
        "target": f"OpenFace 2.2.0 {', '.join(AU_R_COLUMNS)} (0-5) of {Path(au_table).name}"
        + (
            f"; {', '.join(CONCEPT_COLUMNS)} (inter-ocular distances) of {Path(concepts).name}"
            if concepts
            else ""
        ),
        "faces": {usage: int(len(part)) for usage, part in split.items()},
        "epochs": initial_epoch,
        "train_seconds": float(previous.get("train_seconds", 0.0)),
        "params": int(model.count_params()),
        "batch_size": batch_size,
        "seed": seed,
        "schedule": schedule,
        "learning_rate": learning_rate,
        "augment": augment,
        "device": f"{'GPU' if gpu_available() else 'CPU'}, Keras {keras.backend.backend()} backend",
    }
    if init_from is not None and not initial_epoch:
        from analysis.results import file_sha256

        record["initialised_from"] = {"model": Path(init_from).name, "sha256": file_sha256(init_from)}

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
    ]
    averager = _WeightAverager(first_epoch=epochs - average_last)
    if schedule == "plateau":
        callbacks += [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=max(1, patience // 2)),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, min_delta=1e-4),
            keras.callbacks.ModelCheckpoint(
                model_path, monitor="val_loss", save_best_only=True, initial_value_threshold=best_so_far
            ),
        ]
    else:
        callbacks.append(averager)
    batches = _flipped_batches if augment == "flip" else _travel_batches
    with _InterruptWatch() as watch:
        model.fit(
            batches(x_train, y_train, batch_size, seed),
            validation_data=(x_val, y_val),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[*callbacks, watch],
            verbose=verbose,
        )
    if schedule == "cosine":
        from cnn_baseline.averaging import recalibrate_batchnorm

        model.set_weights(averager.mean())
        recalibrate_batchnorm(model, x_train)
        record["kept_model"] = (
            f"mean of the weights of epochs {averager.first_epoch}-{epochs - 1} (0-based), BatchNorm "
            "statistics recomputed on the un-augmented Training faces in file order"
        )
        record["publictest_loss_kept"] = float(
            model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
        )
        _unstandardise(model, mean, std)
        staging = model_path.with_name(f".{model_path.name}.partial.keras")
        model.save(staging)
        staging.replace(model_path)
    if concepts is not None:
        record["concept_standardisation"] = {
            c: {"mean": float(m), "std": float(d)}
            for c, m, d in zip(CONCEPT_COLUMNS, mean[N_AUS : HEADS[1]], std[N_AUS : HEADS[1]], strict=True)
        }
    write_json(record_path, record)
    return record


def _start_from(model, trained) -> None:
    """Copy ``trained``'s weights into ``model``; where the heads differ in width (concepts,
    presences), the units both have are copied and the others keep their fresh initialisation."""
    for layer, source in zip(model.layers, trained.layers, strict=True):
        weights, given = layer.get_weights(), source.get_weights()
        if all(w.shape == g.shape for w, g in zip(weights, given, strict=True)):
            layer.set_weights(given)
        else:
            for w, g in zip(weights, given, strict=True):
                shared = min(w.shape[-1], g.shape[-1])
                w[..., :shared] = g[..., :shared]
            layer.set_weights(weights)


def _unstandardise(model, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``y = mean + std * z`` into the head: ``class_maps`` is a convolution followed by a
    global average, both linear, so scaling its kernel and bias scales the output exactly."""
    head = model.get_layer("class_maps")
    kernel, bias = head.get_weights()
    head.set_weights([(kernel * std).astype(kernel.dtype), (bias * std + mean).astype(bias.dtype)])


def _WeightAverager(first_epoch: int):
    """A Keras callback keeping the running mean of the model's weights at the end of every epoch
    from ``first_epoch`` (0-based) on; ``mean()`` gives it (the current weights if none)."""
    import keras

    class WeightAverager(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.first_epoch, self.count, self.sum = max(0, first_epoch), 0, None

        def on_epoch_end(self, epoch, logs=None):
            if epoch >= self.first_epoch:
                weights = [w.astype("float64") for w in self.model.get_weights()]
                self.sum = (
                    weights if self.sum is None else [a + w for a, w in zip(self.sum, weights, strict=True)]
                )
                self.count += 1

        def mean(self):
            if self.sum is None:
                return self.model.get_weights()
            return [(a / self.count).astype("float32") for a in self.sum]

    return WeightAverager()


def _flipped_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Shuffled batches of scaled faces, each face mirrored with probability 1/2 (``tf.data``)."""
    import keras
    import tensorflow as tf

    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    data = tf.data.Dataset.from_tensor_slices((scale(x), y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    data = data.map(lambda a, b: (flip(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _travel_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Shuffled batches of scaled faces augmented for another camera and crop: the emotion CNN's
    geometry (rotation 10°, shift and zoom 0.1, flip; none changes an AU or a concept, which are
    in inter-ocular distances and roll-free) plus contrast, brightness and Gaussian blur; in
    chunks of ``AUGMENT_CHUNK`` faces as ``train.train_dataset``."""
    import math

    import keras
    import tensorflow as tf

    from cnn_baseline.train import AUGMENT_CHUNK, augmenter

    layers = keras.layers
    photometric = keras.Sequential(
        [
            layers.RandomContrast(0.3, value_range=(-1, 1), seed=seed + 10),
            layers.RandomBrightness(0.2, value_range=(-1, 1), seed=seed + 11),
            layers.RandomGaussianBlur(
                factor=0.5, kernel_size=3, sigma=1.0, value_range=(-1, 1), seed=seed + 12
            ),
        ],
        name="photometric",
    )
    geometry = augmenter(seed)
    data = tf.data.Dataset.from_tensor_slices((scale(x), y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(AUGMENT_CHUNK)
    data = data.map(lambda a, b: (photometric(geometry(a, training=True), training=True), b))
    data = data.unbatch().batch(batch_size)
    data = data.apply(tf.data.experimental.assert_cardinality(math.ceil(len(x) / batch_size)))
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
    concepts: str | Path = FER2013_CONCEPTS,
) -> dict:
    """Score the estimator once on PrivateTest faces against OpenFace, and write its AU table.

    Writes ``au_scores.csv`` (``au_scores`` per AU, then per concept for an estimator with a
    concept head, scored against ``concepts``) and ``metrics.json`` (mean R², mean MAE, usable
    AUs, the threshold, faces scored, the model's SHA-256, ``concepts_mean_r2``) into
    ``out_dir`` as one results unit (``analysis.results``), and ``table_path``: the estimates of
    *every* FER2013 face (those OpenFace missed included), columns ``image, label, Usage``, 17
    ``AU*_r``, the six concepts (concept head) and ``source``: the AU table the AU models fit on
    instead of OpenFace's.

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
    per_concept = None
    if estimates_concepts(model) and Path(concepts).is_file():
        with_concepts = au_faces(data_path, au_table, concepts)
        with_concepts = with_concepts[with_concepts["Usage"] == "PrivateTest"]
        keys = list(zip(with_concepts["image"], with_concepts["label"], strict=True))
        per_concept = au_scores(
            with_concepts[list(CONCEPT_COLUMNS)].to_numpy(float),
            table.set_index(["image", "label"]).loc[keys, list(CONCEPT_COLUMNS)].to_numpy(float),
            CONCEPT_COLUMNS,
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
    if estimates_presences(model):
        from sklearn.metrics import accuracy_score, f1_score

        with_presences = au_faces(data_path, au_table, presences=True)
        with_presences = with_presences[with_presences["Usage"] == "PrivateTest"]
        keys = list(zip(with_presences["image"], with_presences["label"], strict=True))
        guessed = table.set_index(["image", "label"]).loc[keys, list(AU_C_COLUMNS)]
        f1 = {c: float(f1_score(with_presences[c], guessed[c], zero_division=0)) for c in AU_C_COLUMNS}
        metrics["presences_mean_f1"] = float(np.mean(list(f1.values())))
        metrics["presences_f1"] = f1
        metrics["presences_mean_accuracy"] = float(
            np.mean([accuracy_score(with_presences[c], guessed[c]) for c in AU_C_COLUMNS])
        )
    if per_concept is not None:
        metrics["concepts_mean_r2"] = float(per_concept["r2"].mean())
        metrics["concepts_faces_scored"] = int(len(with_concepts))
        per_au = pd.concat([per_au, per_concept], ignore_index=True)
    with results_unit(out_dir, "evaluate-au-cnn") as staging:
        per_au.to_csv(staging / "au_scores.csv", index=False, float_format="%.4f")
        write_json(staging / "metrics.json", metrics)
    write_au_table(table, table_path)
    return metrics
