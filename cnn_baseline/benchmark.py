"""Speed of mini-XCEPTION on this machine, against plain Keras in the same run.

The machine's speed moves by a third between runs (other jobs, the VM), so each figure is
printed beside a plain Keras run of the same network on the same faces, timed alternately in
the same process: the ratio is what compares across runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnn_baseline.data import arrays, load_fer2013
from cnn_baseline.evaluate import class_probabilities
from cnn_baseline.model import mini_xception
from cnn_baseline.preprocess import scale
from cnn_baseline.train import train_dataset

INFERENCE_BATCH = 1024  # class_probabilities' default


def benchmark(
    data_path: str | Path,
    train_images: int = 6400,
    batch_size: int = 64,
    seed: int = 0,
    repeats: int = 3,
) -> dict:
    """Print and return training and inference images per second, project vs plain Keras.

    Training: ``train_images`` real Training faces (48x48), one epoch per timing (the first,
    untimed, traces the graphs); the project's pipeline (``train.train_dataset``: shuffled,
    augmented as in training, prefetched) against a plain ``model.fit`` of the same network
    on the same scaled faces as NumPy arrays without augmentation, both at ``batch_size``.
    Inference: all PrivateTest faces, one pass per face, through ``class_probabilities``
    (what ``evaluate``, ``predict`` and ``compare`` use) against a plain ``model.predict`` at
    the same batch size (1,024); also the mirror-averaged rate (two passes per face). Each
    is the median of ``repeats`` timings, project and plain alternating.

    Returns:
        ``train_images_per_s`` / ``plain_fit_images_per_s`` / ``train_ratio``,
        ``inference_images_per_s`` / ``plain_predict_images_per_s`` / ``inference_ratio``,
        ``mirror_averaged_images_per_s``, ``seconds_per_epoch`` (all Training faces at the
        project's rate), and the sizes timed.
    """
    table = load_fer2013(data_path)
    x, y = arrays(table, "Training")
    x_test, _ = arrays(table, "PrivateTest")
    x, y = x[:train_images], y[:train_images]
    ours, plain = (_compiled_network(seed) for _ in range(2))
    data = train_dataset(x, y, batch_size, seed)
    faces = scale(x)
    train_rate, fit_rate = _alternating(
        len(x),
        repeats,
        lambda: ours.fit(data, epochs=1, verbose=0),
        lambda: plain.fit(faces, y, batch_size=batch_size, epochs=1, verbose=0),
    )
    test_faces, model = scale(x_test), ours
    infer_rate, predict_rate, mirror_rate = _alternating(
        len(test_faces),
        repeats,
        lambda: class_probabilities(model, test_faces, mirror=False),
        lambda: model.predict(test_faces, batch_size=INFERENCE_BATCH, verbose=0),
        lambda: class_probabilities(model, test_faces, mirror=True),
    )
    n_train = int((table["Usage"] == "Training").sum())
    result = {
        "train_images_per_s": train_rate,
        "plain_fit_images_per_s": fit_rate,
        "train_ratio": train_rate / fit_rate,
        "seconds_per_epoch": n_train / train_rate,
        "inference_images_per_s": infer_rate,
        "plain_predict_images_per_s": predict_rate,
        "inference_ratio": infer_rate / predict_rate,
        "mirror_averaged_images_per_s": mirror_rate,
        "batch_size": batch_size,
        "train_images_timed": int(len(x)),
        "inference_images_timed": int(len(test_faces)),
        "repeats": repeats,
    }
    print(
        f"training:  {train_rate:.0f} img/s (batch {batch_size}, augmented; {n_train / train_rate:.0f} s per "
        f"epoch) vs plain Keras fit {fit_rate:.0f} img/s (no augmentation): ratio {train_rate / fit_rate:.2f}"
    )
    print(
        f"inference: {infer_rate:.0f} img/s (one pass, {len(test_faces)} PrivateTest faces) vs plain Keras "
        f"predict {predict_rate:.0f} img/s (batch {INFERENCE_BATCH}): ratio {infer_rate / predict_rate:.2f}; "
        f"{mirror_rate:.0f} faces/s mirror-averaged (2 passes per face)"
    )
    print(f"(48x48, median of {repeats} alternating timings, {len(x)} training faces)")
    return result


def _compiled_network(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = mini_xception()
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    return model


def _alternating(images: int, repeats: int, *runs: Callable[[], object]) -> list[float]:
    """Images per second of each run: the median of ``repeats`` timings, the runs taking turns
    (so that a slow spell of the machine falls on all of them), after one untimed call each."""
    for run in runs:
        run()
    seconds: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, times in zip(runs, seconds, strict=True):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return [images / float(np.median(times)) for times in seconds]
