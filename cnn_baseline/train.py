"""Train mini-XCEPTION on FER2013 under a clean protocol and evaluate it once on PrivateTest.

Protocol: fit on ``Training``; the learning-rate schedule, early stopping and the kept
checkpoint look at ``PublicTest`` only; ``PrivateTest`` is scored once, at the end. (The
original work selected on the test images.) Augmentation follows the original: rotation
10°, shifts 0.1, zoom 0.1, horizontal flip, as Keras preprocessing layers in a
``tf.data`` pipeline with prefetch. Adam, ReduceLROnPlateau, EarlyStopping, fixed seeds.

The TensorFlow backend is the default. Other Keras 3 backends (``KERAS_BACKEND=jax``) train
the same model from the same data without TensorFlow installed, the augmentation layers then
running in a ``keras.utils.PyDataset``: that is how a GPU machine without TensorFlow trains.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from analysis.files import write_json
from analysis.results import file_sha256
from cnn_baseline.data import CLASS_NAMES, arrays, load_fer2013, resized
from cnn_baseline.errors import CNNError
from cnn_baseline.model import DEFAULT_MODEL, DEFAULT_RUN, as_float32, load_model, mini_xception
from cnn_baseline.preprocess import model_inputs, scale

AUGMENT_CHUNK = 1024  # faces augmented per call of the augmentation layers


def gpu_available() -> bool:
    """Whether the Keras backend (TensorFlow, JAX) sees a GPU."""
    import keras

    # "gpu:0" on TensorFlow and JAX; list_devices("gpu") raises on JAX when there is none.
    return any(name.startswith(("gpu", "cuda")) for name in keras.distribution.list_devices())


def augmenter(seed: int):
    """The original's augmentation as Keras preprocessing layers."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 2),
            layers.RandomFlip("horizontal", seed=seed + 3),
        ],
        name="augmentation",
    )


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Shuffled, augmented, batched, prefetched ``tf.data`` pipeline of scaled faces.

    ``y``: (n,) class codes, or (n, classes) one-hot rows (label smoothing).

    On a backend other than TensorFlow, a ``keras.utils.PyDataset`` of the same batches.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return _augmented_batches(x, y, batch_size, seed)
    import tensorflow as tf

    augment = augmenter(seed)
    data = tf.data.Dataset.from_tensor_slices((scale(x), y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(AUGMENT_CHUNK)
    # Augmented in chunks, then re-batched: mapped per batch of 32 or 64, the layers' per-call
    # cost halved training speed (310 img/s against 740 without augmentation, profiled here).
    data = data.map(lambda a, b: (augment(a, training=True), b)).unbatch().batch(batch_size)
    # unbatch() hides the length, and Keras would warn at each epoch's end that data ran out.
    data = data.apply(tf.data.experimental.assert_cardinality(math.ceil(len(x) / batch_size)))
    return data.prefetch(tf.data.AUTOTUNE)


def _augmented_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """Shuffled, augmented batches of scaled faces for backends without ``tf.data``.

    Each epoch is augmented ahead in chunks of 1,024 faces (the layers draw a transform per
    face): called once per batch of 32, the layers cost far more in dispatch than in
    arithmetic on a GPU.
    """
    import keras

    augment = augmenter(seed)
    rng = np.random.default_rng(seed)
    chunk = AUGMENT_CHUNK

    class AugmentedBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, index: int):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            return self.x[rows], self.y[rows]

        def on_epoch_end(self) -> None:
            order = rng.permutation(len(x))
            parts = [augment(scale(x[order[i : i + chunk]]), training=True) for i in range(0, len(x), chunk)]
            self.x, self.y = keras.ops.concatenate(parts), y[order]

    return AugmentedBatches()


def train(
    data_path: str | Path,
    run_dir: str | Path = DEFAULT_RUN,
    model_path: str | Path = DEFAULT_MODEL,
    epochs: int = 200,
    batch_size: int = 64,
    patience: int = 50,
    seed: int = 0,
    verbose: int = 2,
    resume: bool = False,
    learning_rate: float | None = None,
    input_size: int = 48,
    init_from: str | Path | None = None,
    schedule: str = "plateau",
    label_smoothing: float = 0.0,
) -> dict:
    """Train and save the best-on-PublicTest model; return the training record.

    Writes ``history.csv`` (one row per epoch) and ``last.keras`` (every epoch) into
    ``run_dir`` and the best model (``.keras``) to ``model_path``. With ``resume``, training
    continues from ``last.keras`` at the next epoch (the optimiser state, learning rate
    included, is restored; the plateau and early-stopping counters start afresh).
    ``learning_rate`` sets Adam's rate (default 1e-3 for a new model, the restored one on
    resume); a resumed run that sets it is a warm restart, kept in ``training.json`` under
    ``restarts``. ``input_size``: 48 (FER2013's faces) or 64 (the original's, faces resized
    bilinearly); a resumed run keeps its model's. ``init_from``: a trained mini-XCEPTION
    (.keras) whose weights start a new run instead of random ones; the network is fully
    convolutional, so a 48x48 model can start a 64x64 one (training at a small image size,
    then a larger one: "progressive learning", Tan & Le 2021, EfficientNetV2, arXiv
    2104.00298). Uses a GPU with mixed precision when the Keras backend sees one; the kept
    model is then rewritten in float32 at the end (same weights), and a GPU run's state
    resumed on a CPU goes on in float32 with a fresh Adam.

    ``schedule``: ``"plateau"`` (the original's: Adam, rate ÷10 after ``patience // 4`` epochs
    without a better PublicTest loss) or ``"cosine"`` (SGD with Nesterov momentum 0.9, the rate
    decaying from ``learning_rate``, default 0.01, to 0 over ``epochs`` along a half cosine:
    Loshchilov & Hutter 2017, SGDR, arXiv 1608.03983; Khaireddin & Chen 2021, arXiv 2105.03588,
    found SGD with Nesterov momentum best on FER2013). ``label_smoothing``: the targets become
    ``(1 - s) * one_hot + s / 7`` (Szegedy et al. 2016, arXiv 1512.00567). A resumed run keeps
    its schedule and smoothing.

    Raises:
        CNNError: an unknown schedule, smoothing outside [0, 1), or a new rate for a resumed
            cosine run (its rate follows the schedule).

    Returns:
        ``epochs`` run in all, ``train_seconds`` (summed over resumed runs; seconds of the
        ``epochs_timed`` epochs that were timed), ``params``, ``publictest_accuracy`` of the
        kept checkpoint, ``device``; also in ``<run_dir>/training.json``, rewritten after
        every epoch.
    """
    import keras

    keras.utils.set_random_seed(seed)
    gpu = gpu_available()
    if gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
    table = load_fer2013(data_path)
    x_train, y_train = arrays(table, "Training")
    x_val, y_val = arrays(table, "PublicTest")
    run_dir, model_path = Path(run_dir), Path(model_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path.parent.mkdir(parents=True, exist_ok=True)

    last = run_dir / "last.keras"
    history_csv = run_dir / "history.csv"
    record_path = run_dir / "training.json"
    initial_epoch, best_so_far = 0, None
    resuming = resume and last.exists() and history_csv.exists()
    previous = json.loads(record_path.read_text()) if resuming and record_path.exists() else {}
    if resuming:
        schedule = previous.get("schedule", "plateau")
        label_smoothing = float(previous.get("label_smoothing", 0.0))
    if schedule not in SCHEDULES:
        raise CNNError(f"schedule {schedule!r}: one of {', '.join(SCHEDULES)}")
    if not 0 <= label_smoothing < 1:
        raise CNNError(f"label smoothing {label_smoothing}: must be at least 0 and below 1")
    if resuming:
        model = load_model(last, num_classes=len(CLASS_NAMES), compile=True)
        initial_epoch = max(0, len(history_csv.read_text().splitlines()) - 1)
        # Without this the kept model would be replaced by the first resumed epoch, better or not.
        best_so_far = _history_max(history_csv, "val_accuracy") if model_path.exists() else None
        if learning_rate is not None:
            if schedule != "plateau":
                raise CNNError("a cosine run's rate follows its schedule: resume it without --learning-rate")
            model.optimizer.learning_rate.assign(learning_rate)
        if not gpu and _computes_in_float16(model):
            # A GPU run's state: TensorFlow's CPU kernels refuse float16 convolutions, so go on
            # in float32 with the same weights and rate (Adam's moments start afresh).
            rate = float(model.optimizer.learning_rate)
            model = _compiled(as_float32(model), keras.optimizers.Adam(rate), label_smoothing)
    else:
        model = mini_xception(input_shape=(input_size, input_size, 1), num_classes=len(CLASS_NAMES))
        if init_from is not None:
            model.set_weights(load_model(init_from, num_classes=len(CLASS_NAMES)).get_weights())
        if schedule == "cosine":
            steps = epochs * math.ceil(len(x_train) / batch_size)
            rate = keras.optimizers.schedules.CosineDecay(learning_rate or 0.01, steps)
            optimizer = keras.optimizers.SGD(rate, momentum=0.9, nesterov=True)
        else:
            optimizer = keras.optimizers.Adam(learning_rate or 1e-3)
        model = _compiled(model, optimizer, label_smoothing)
    side = model.input_shape[1]
    x_train = resized(x_train, side)
    if label_smoothing:
        y_train, y_val = (keras.utils.to_categorical(y, len(CLASS_NAMES)) for y in (y_train, y_val))
    callbacks = [
        keras.callbacks.CSVLogger(history_csv, append=initial_epoch > 0),
        keras.callbacks.ModelCheckpoint(last),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
        keras.callbacks.ModelCheckpoint(
            model_path, monitor="val_accuracy", save_best_only=True, initial_value_threshold=best_so_far
        ),
    ]
    if schedule == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.1, patience=max(1, patience // 4)
        )
        callbacks.insert(2, plateau)
    device = f"{'GPU (mixed precision)' if gpu else 'CPU'}, Keras {keras.backend.backend()} backend"
    record = {
        **previous,
        "epochs": initial_epoch,
        "train_seconds": float(previous.get("train_seconds", 0.0)),
        "epochs_timed": int(previous.get("epochs_timed", 0)),
        "params": int(model.count_params()),
        "batch_size": batch_size,
        "seed": seed,
        "input_size": side,
        "schedule": schedule,
        "label_smoothing": label_smoothing,
        "device": device,
        "restarts": list(previous.get("restarts", [])),
    }
    if init_from is not None and not initial_epoch:
        record["initialised_from"] = {"model": Path(init_from).name, "sha256": file_sha256(init_from)}
    if initial_epoch and learning_rate is not None:
        # "epoch" counts from 0, as in history.csv.
        record["restarts"].append({"epoch": initial_epoch, "learning_rate": learning_rate})

    def save_record(epoch: int, seconds: float) -> None:
        # Written after every epoch, so a run stopped between epochs still knows its cost.
        record.update(
            epochs=epoch + 1,
            train_seconds=record["train_seconds"] + seconds,
            epochs_timed=record["epochs_timed"] + 1,
            publictest_accuracy=_history_max(history_csv, "val_accuracy"),
        )
        write_json(record_path, record)

    callbacks.insert(1, _EpochTimer(save_record))
    with _InterruptWatch() as watch:
        model.fit(
            train_dataset(x_train, y_train, batch_size, seed),
            validation_data=(model_inputs(x_val, side), y_val),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[*callbacks, watch],
            verbose=verbose,
        )
    if gpu and model_path.exists():
        as_float32(keras.models.load_model(model_path)).save(model_path)
    return record


SCHEDULES = ("plateau", "cosine")


def _compiled(model, optimizer, label_smoothing: float = 0.0):
    """Cross-entropy on class codes, or on one-hot targets when smoothing them."""
    import keras

    loss = (
        keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        if label_smoothing
        else "sparse_categorical_crossentropy"
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def _computes_in_float16(model) -> bool:
    return any(layer.dtype_policy.compute_dtype == "float16" for layer in model.layers)


def _InterruptWatch():
    """A Keras callback, used as a context manager, that keeps Ctrl-C from being lost.

    Keras's ``pythonify_logs`` waits for each step's results inside a bare ``except``, which
    swallows a KeyboardInterrupt landing there; on the JAX backend, where the main thread
    spends most of a step in that wait, SIGINT was ignored for the rest of the run (seen
    here). The handler remembers the signal and the next batch end raises it again.
    """
    import keras

    class InterruptWatch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.interrupted = False
            self.previous = None

        def __enter__(self):
            if threading.current_thread() is threading.main_thread():
                self.previous = signal.signal(signal.SIGINT, self._on_sigint)
            return self

        def __exit__(self, *exc) -> None:
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)

        def _on_sigint(self, signum, frame):
            self.interrupted = True
            raise KeyboardInterrupt

        def on_train_batch_end(self, batch, logs=None):
            if self.interrupted:
                raise KeyboardInterrupt

        on_test_batch_end = on_train_batch_end

    return InterruptWatch()


def _EpochTimer(on_epoch: Callable[[int, float], None]):
    """A Keras callback calling ``on_epoch(epoch, seconds)`` after each epoch (after the CSV row)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            on_epoch(epoch, time.perf_counter() - self.begin)

    return EpochTimer()


def _history_max(history_csv: Path, column: str) -> float:
    import pandas as pd

    return float(pd.read_csv(history_csv)[column].max())
