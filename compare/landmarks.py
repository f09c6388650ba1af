"""The landmark baseline: a residual MLP on OpenFace's 68 normalised 2D landmarks (a black box).

The live systems this workbench grew from read emotions from face landmarks alone: every landmark
centred on the nose tip, the scale standardised, noise added while training, and a multilayer
perceptron with skip connections (He et al. 2016, "Deep Residual Learning", CVPR) on top. This is
that model on FER2013: OpenFace's 68 landmarks (iBUG numbering, landmark 30 the nose tip), each
face's points minus its nose tip, divided by their root-mean-square distance from it, 136 numbers
a face. It sees the face's geometry (no texture, no AU), decides as a black box, and is a row of
``make compare`` with McNemar tests against the AU models and the CNN.

Only the fit and the PrivateTest faces' landmarks are vendored (``data/fer2013_landmarks/``), as for
the leak control: ``make landmark-mlp`` (``python -m compare landmark-mlp``) parses the landmarks
from the raw OpenFace outputs ``make fer2013-concepts`` keeps in its run folder, trains on the
Training faces (early stopping on PublicTest) and writes both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.files import write_csv, write_json
from analysis.labels import EMOTIONS

LANDMARK_DIR = Path(__file__).resolve().parent.parent / "data" / "fer2013_landmarks"
MODEL_FILE = LANDMARK_DIR / "landmark_mlp.keras"
TEST_LANDMARKS = LANDMARK_DIR / "fer2013_landmarks_privatetest.csv.gz"
TRAINING_RECORD = LANDMARK_DIR / "training.json"
LANDMARKS = 68
NOSE_TIP = 30  # iBUG 68-point scheme (OpenFace wiki, "Output Format")
COLUMNS = tuple(f"{axis}{i}" for i in range(LANDMARKS) for axis in ("x", "y"))
DIGITS = 4
WIDTH, BLOCKS, DROPOUT, NOISE = 128, 3, 0.2, 0.02


def normalised(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(n, 68) landmark x and y in pixels -> (n, 136) ``x0, y0, x1, ...``: minus the nose tip,
    divided by the points' root-mean-square distance from it (position- and scale-free).

    Raises:
        ValueError: shapes other than (n, 68), or a face whose points all coincide.
    """
    if xs.shape != ys.shape or xs.ndim != 2 or xs.shape[1] != LANDMARKS:
        raise ValueError(f"landmarks of shape {xs.shape} and {ys.shape}: expected (n, {LANDMARKS}) each")
    points = np.stack([xs - xs[:, [NOSE_TIP]], ys - ys[:, [NOSE_TIP]]], axis=2)  # (n, 68, 2)
    scale = np.sqrt((points**2).sum(axis=2).mean(axis=1))
    if (scale <= 0).any():
        raise ValueError("a face whose 68 landmarks all coincide (OpenFace fitted no face)")
    return (points / scale[:, None, None]).reshape(len(xs), -1)


def landmark_table(outputs: Iterable[tuple[str, Path]]) -> pd.DataFrame:
    """``image`` and ``COLUMNS`` of every face in OpenFace's raw CSVs, the most confident face of
    each as the runner keeps it; faces without a landmark fit (or without a CSV) left out.

    Args:
        outputs: ``(image, csv)`` pairs: the image's name (its file stem) and OpenFace's raw CSV
            of it (``raw_outputs`` finds them in a runner's run folder).

    Returns:
        One row per image, sorted by ``image``.

    Raises:
        FileNotFoundError: no CSV at all.
        OutputError: a CSV with some landmark columns missing or non-numeric.
    """
    from openface_runner.parse import landmark_arrays

    files = [(name, Path(path)) for name, path in outputs if Path(path).is_file()]
    if not files:
        raise FileNotFoundError("no raw OpenFace outputs; run make fer2013-concepts (it keeps them)")
    names, rows = [], []
    for name, path in tqdm(files, desc="landmarks", unit="file", disable=None):
        frame = pd.read_csv(path, skipinitialspace=True)
        frame.columns = [str(c).strip() for c in frame.columns]
        arrays = landmark_arrays(frame, path)
        if arrays is None or frame.empty:
            continue
        best = int(frame["confidence"].to_numpy(float).argmax())
        xs, ys = arrays[0][best : best + 1], arrays[1][best : best + 1]
        if np.ptp(xs) <= 0:
            continue
        names.append(name)
        rows.append(normalised(xs, ys)[0])
    table = pd.DataFrame(np.round(np.array(rows), DIGITS), columns=list(COLUMNS))
    table.insert(0, "image", names)
    return table.drop_duplicates("image").sort_values("image").reset_index(drop=True)


def raw_outputs(images: Path, run_dir: Path) -> list[tuple[str, Path]]:
    """``(image stem, raw CSV)`` of every image of ``images`` in the runner's ``run_dir``: the
    runner names an image's outputs ``done/<key>.csv`` by its path and content
    (``openface_runner.inputs.discover``)."""
    from openface_runner.inputs import discover

    found, _ = discover(images)
    return [(Path(i.relative).stem, Path(run_dir) / "done" / f"{i.key}.csv") for i in found]


def mlp(seed: int = 0):
    """The residual MLP: Gaussian noise (training only), a 128-unit layer, three residual blocks
    (BatchNorm, ReLU, dropout 0.2, dense, twice, plus the block's input), softmax over ``EMOTIONS``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((len(COLUMNS),), name="landmarks")
    x = layers.GaussianNoise(NOISE)(inputs)
    x = layers.Dense(WIDTH)(x)
    for _ in range(BLOCKS):
        y = x
        for _ in range(2):
            y = layers.BatchNormalization()(y)
            y = layers.Activation("relu")(y)
            y = layers.Dropout(DROPOUT)(y)
            y = layers.Dense(WIDTH)(y)
        x = layers.add([x, y])
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    outputs = layers.Dense(len(EMOTIONS), activation="softmax", name="emotions")(x)
    return keras.Model(inputs, outputs, name="landmark_mlp")


def train_landmark_mlp(
    landmarks: pd.DataFrame, faces: pd.DataFrame, out_dir: Path = LANDMARK_DIR, seed: int = 0
):
    """Fit the MLP on the six-class Training faces, stop on PublicTest loss (patience 15, best
    weights kept), and write the model, the PrivateTest faces' landmarks and ``training.json``.

    Args:
        landmarks: ``landmark_table``'s table.
        faces: ``image``, ``label`` (emotion name) and ``Usage`` of every FER2013 face.

    Returns:
        The training record.
    """
    import time

    import keras

    from analysis.results import file_sha256

    joined = faces[faces["label"].isin(EMOTIONS)].merge(landmarks, on="image", how="inner")
    joined = joined.drop_duplicates("image", keep=False)  # two stems name two faces: neither is kept
    split = {usage: joined[joined["Usage"] == usage] for usage in ("Training", "PublicTest", "PrivateTest")}
    x = {usage: part[list(COLUMNS)].to_numpy("float32") for usage, part in split.items()}
    y = {usage: part["label"].map(EMOTIONS.index).to_numpy() for usage, part in split.items()}
    model = mlp(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=15, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(
        x["Training"], y["Training"], batch_size=128, epochs=300, callbacks=[stop], verbose=2,
        validation_data=(x["PublicTest"], y["PublicTest"]), shuffle=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{MODEL_FILE.name}.partial.keras"
    plain = keras.models.clone_model(model)  # uncompiled: the weights without Adam's state
    plain.set_weights(model.get_weights())
    plain.save(staging)
    staging.replace(out_dir / MODEL_FILE.name)
    write_csv(out_dir / TEST_LANDMARKS.name, split["PrivateTest"][["image", *COLUMNS]])
    publictest = float((model.predict(x["PublicTest"], verbose=0).argmax(1) == y["PublicTest"]).mean())
    record = {
        "faces": {usage: int(len(part)) for usage, part in split.items()},
        "epochs": len(history.history["loss"]),
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
        "publictest_accuracy": publictest,
        "train_seconds": seconds,
        "params": int(model.count_params()),
        "seed": seed,
        "settings": {"width": WIDTH, "blocks": BLOCKS, "dropout": DROPOUT, "noise": NOISE, "batch": 128},
        "model_sha256": file_sha256(out_dir / MODEL_FILE.name),
    }
    write_json(out_dir / TRAINING_RECORD.name, record)
    return record


def load_landmark_mlp(directory: Path = LANDMARK_DIR):
    """The vendored model, its PrivateTest landmarks and training record; None when absent."""
    model_path, table_path = directory / MODEL_FILE.name, directory / TEST_LANDMARKS.name
    if not (model_path.is_file() and table_path.is_file()):
        return None
    import keras

    model = keras.models.load_model(model_path, compile=False, safe_mode=True)
    record_path = directory / TRAINING_RECORD.name
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    return model, pd.read_csv(table_path), record
