"""Speed of mini-XCEPTION on this machine: training and inference images per second."""

from __future__ import annotations

import time
from pathlib import Path

from cnn_baseline.data import arrays, load_fer2013
from cnn_baseline.model import mini_xception
from cnn_baseline.train import scale, train_dataset


def benchmark(data_path: str | Path, train_images: int = 6400, batch_size: int = 32, seed: int = 0) -> dict:
    """Print and return training img/s (augmented pipeline), s/epoch and inference img/s.

    Training is timed over ``train_images`` real Training faces after one warm-up pass
    (graph tracing excluded); seconds per epoch are extrapolated to all 28,709 Training
    faces. Inference: PrivateTest faces at batch 256, after a warm-up call.
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
    model.predict(faces[:256], batch_size=256, verbose=0)
    start = time.perf_counter()
    model.predict(faces, batch_size=256, verbose=0)
    infer_rate = len(faces) / (time.perf_counter() - start)
    n_train = int((table["Usage"] == "Training").sum())
    result = {
        "train_images_per_s": train_rate,
        "seconds_per_epoch": n_train / train_rate,
        "inference_images_per_s": infer_rate,
        "batch_size": batch_size,
        "train_images_timed": int(len(x)),
        "inference_images_timed": int(len(faces)),
    }
    print(
        f"training: {train_rate:.0f} img/s (batch {batch_size}, augmented) "
        f"= {n_train / train_rate:.0f} s per epoch"
    )
    print(f"inference: {infer_rate:.0f} img/s (batch 256, {len(faces)} PrivateTest faces)")
    return result
