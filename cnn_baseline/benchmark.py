"""Speed of mini-XCEPTION on this machine: training and inference images per second."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cnn_baseline.data import arrays, load_fer2013
from cnn_baseline.evaluate import class_probabilities
from cnn_baseline.model import mini_xception
from cnn_baseline.preprocess import scale
from cnn_baseline.train import train_dataset


def benchmark(
    data_path: str | Path,
    train_images: int = 6400,
    batch_size: int = 32,
    seed: int = 0,
    inference_passes: int = 5,
) -> dict:
    """Print and return training img/s (augmented pipeline), s/epoch and inference img/s.

    Training is timed over ``train_images`` real Training faces after one warm-up pass
    (graph tracing excluded); seconds per epoch are extrapolated to all 28,709 Training
    faces. Inference: all PrivateTest faces at batch 256, the median of ``inference_passes``
    passes after a warm-up pass (which traces the graph for the full and the last batch),
    one pass per face (``inference_images_per_s``) and mirror-averaged as ``evaluate``
    predicts (``mirror_averaged_images_per_s``, two passes per face).
    """
    import keras

    table = load_fer2013(data_path)
    x, y = arrays(table, "Training")
    x_test, _ = arrays(table, "PrivateTest")
    x, y = x[:train_images], y[:train_images]
    model = mini_xception()
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    data = train_dataset(x, y, batch_size, seed)
    model.fit(data.take(5), epochs=1, verbose=0)  # trace the graph
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    train_rate = len(x) / (time.perf_counter() - start)
    faces = scale(x_test)
    infer_rate, mirror_rate = (
        _inference_rate(model, faces, mirror, inference_passes) for mirror in (False, True)
    )
    n_train = int((table["Usage"] == "Training").sum())
    result = {
        "train_images_per_s": train_rate,
        "seconds_per_epoch": n_train / train_rate,
        "inference_images_per_s": infer_rate,
        "mirror_averaged_images_per_s": mirror_rate,
        "batch_size": batch_size,
        "train_images_timed": int(len(x)),
        "inference_images_timed": int(len(faces)),
        "inference_passes": inference_passes,
    }
    print(
        f"training: {train_rate:.0f} img/s (batch {batch_size}, augmented) "
        f"= {n_train / train_rate:.0f} s per epoch"
    )
    print(
        f"inference: {infer_rate:.0f} img/s (batch 256, {len(faces)} PrivateTest faces, "
        f"median of {inference_passes} passes); {mirror_rate:.0f} faces/s mirror-averaged (2 passes per face)"
    )
    return result


def _inference_rate(model, faces: np.ndarray, mirror: bool, passes: int) -> float:
    """Faces per second through ``class_probabilities`` at batch 256: the median of ``passes``
    timed runs after one warm-up run (which traces the full and the last, partial batch)."""
    class_probabilities(model, faces, mirror)
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        class_probabilities(model, faces, mirror)
        seconds.append(time.perf_counter() - start)
    return len(faces) / float(np.median(seconds))
