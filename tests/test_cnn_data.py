"""FER2013 readers on a committed real sample (no TensorFlow needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from cnn_baseline.data import FER2013Error, arrays, load_fer2013
from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "fer2013_privatetest_sample.csv.gz"


def test_sample_csv():
    table = load_fer2013(SAMPLE)
    assert len(table) == 350 and set(table["Usage"]) == {"PrivateTest"}
    assert table["emotion"].value_counts().to_dict() == dict.fromkeys(range(7), 50)
    x, y = arrays(table, "PrivateTest")
    assert x.shape == (350, 48, 48, 1) and x.dtype == np.uint8 and y.shape == (350,)
    assert arrays(table, "Training")[0].shape == (0, 48, 48, 1)


def _write(tmp_path, edit):
    frame = pd.read_csv(SAMPLE, dtype=str).head(20)
    frame = edit(frame)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns="pixels"), "missing column"),
        (lambda f: f.assign(pixels=f["pixels"].where(f.index != 3, "1 2 3")), "data row 4: 3 pixel values"),
        (
            lambda f: f.assign(pixels=f["pixels"].where(f.index != 5, " ".join(["256"] * 2304))),
            "outside 0-255",
        ),
        (
            lambda f: f.assign(pixels=f["pixels"].where(f.index != 6, " ".join(["x"] * 2304))),
            "not all integers",
        ),
        (lambda f: f.assign(Usage=f["Usage"].where(f.index != 2, "Validation")), "data row 3: unknown Usage"),
        (lambda f: f.assign(emotion=f["emotion"].where(f.index != 1, "9")), "data row 2: emotion '9'"),
    ],
)
def test_bad_csv(tmp_path, edit, message):
    with pytest.raises(FER2013Error, match=message):
        load_fer2013(_write(tmp_path, edit))


def test_missing_path(tmp_path):
    with pytest.raises(FER2013Error, match="no such file or folder"):
        load_fer2013(tmp_path / "fer2013.csv")


def test_image_folder_layout(tmp_path):
    table = load_fer2013(SAMPLE)
    for i, row in table.groupby("emotion").head(2).reset_index(drop=True).iterrows():
        split, stem = ("train", f"Training_{i}") if i % 2 else ("test", f"PrivateTest_{i}")
        name = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"][row["emotion"]]
        folder = tmp_path / split / name
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{stem}.png"), row["pixels"])
    loaded = load_fer2013(tmp_path)
    assert len(loaded) == 14 and set(loaded["Usage"]) == {"Training", "PrivateTest"}
    assert sorted(loaded["emotion"]) == sorted(list(range(7)) * 2)


def test_preprocessing_sits_beside_the_model_not_in_training():
    """predict, Grad-CAM, evaluation and the comparison take the model's inputs from
    ``cnn_baseline.preprocess``; none of them loads the training module."""
    import subprocess
    import sys

    from cnn_baseline.preprocess import model_inputs, scale

    assert scale(np.array([0, 127.5, 255])).tolist() == [-1.0, 0.0, 1.0]
    x, _ = arrays(load_fer2013(SAMPLE), "PrivateTest")
    inputs = model_inputs(x[:3], 64)
    assert inputs.shape == (3, 64, 64, 1) and inputs.dtype == np.float32
    assert inputs.min() >= -1 and inputs.max() <= 1
    assert np.array_equal(model_inputs(x[:3]), scale(x[:3]))  # 48 wide: scaled only
    code = (
        "import sys, cnn_baseline.predict, cnn_baseline.gradcam, cnn_baseline.evaluate, "
        "cnn_baseline.report_data, compare.models; "
        "sys.exit('cnn_baseline.train' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
