"""The CNN's class probabilities on FER2013 ``Training`` faces, kept beside the model.

``make compare`` fits a surrogate AU logit to the CNN's decisions on Training faces; the
Training pixels (95 MB) are not in the repository, so the stage that has them (``evaluate``)
writes the probabilities once, with the SHA-256 of the model that made them.

The file is committed, so it is rewritten only when the model changed. On one machine the
probabilities repeat bit for bit (checked here across processes, 1 and 2 threads, batches of
100 to 1,024 and TensorFlow's op determinism on or off; ``tests/test_cnn_evaluate.py``), but
oneDNN picks its kernels by CPU: on another CPU they moved by up to 5e-5, which changed 76 of
the 200,963 rounded cells (and one face's decision) of a file that the same model had written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.files import write_csv, write_json
from analysis.results import file_sha256
from cnn_baseline.data import CLASS_NAMES

PROBABILITY_COLUMNS = [f"p_{name}" for name in CLASS_NAMES]
DECIMALS = 4  # probabilities are written rounded to 4 decimals (the surrogate needs the labels)


def predictions_path(model_path: str | Path) -> Path:
    """``models/mini_xception.keras`` -> ``models/mini_xception.training_predictions.csv.gz``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.training_predictions.csv.gz")


def training_predictions_current(model_path: str | Path, part: pd.DataFrame) -> bool:
    """Whether the file beside the model was made by this very model (SHA-256 of the model
    file) for these Training faces (same count and, row by row, the same ``image`` names and
    ``emotion`` labels); a damaged or unreadable file is not current."""
    path = predictions_path(model_path)
    sidecar = _sidecar(path)
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        if recorded.get("model_sha256") != file_sha256(model_path) or recorded.get("n") != len(part):
            return False
        kept = pd.read_csv(path, dtype={"image": str}, keep_default_na=False)
    except (OSError, ValueError, EOFError, pd.errors.ParserError, AttributeError):
        return False
    return (
        list(kept.columns) == ["image", "emotion", *PROBABILITY_COLUMNS]
        and kept["image"].tolist() == part["image"].astype(str).tolist()
        and kept["emotion"].tolist() == part["emotion"].astype(int).tolist()
    )


def write_training_predictions(
    model_path: str | Path, part: pd.DataFrame, probabilities: np.ndarray, data_path: str | Path
) -> Path:
    """Write ``image, emotion, p_angry … p_neutral`` (``DECIMALS`` decimals) and a JSON sidecar.

    Callers skip this when ``training_predictions_current`` (``report_data.evaluate_all``).

    Args:
        part: the Training rows of a ``load_fer2013`` table (n rows).
        probabilities: (n, 7) in FER2013 class order.

    Returns:
        The CSV path; the sidecar (same name, ``.json``) holds ``model_sha256``, ``n`` and ``data``.
    """
    table = pd.DataFrame(probabilities.round(DECIMALS), columns=PROBABILITY_COLUMNS)
    table.insert(0, "emotion", part["emotion"].to_numpy())
    table.insert(0, "image", part["image"].to_numpy())
    path = predictions_path(model_path)
    write_csv(path, table)
    write_json(
        _sidecar(path),
        {"model_sha256": file_sha256(model_path), "n": len(table), "data": str(data_path)},
    )
    return path


def read_training_predictions(model_path: str | Path) -> pd.DataFrame:
    """The probabilities written by ``write_training_predictions`` for this very model.

    Raises:
        FileNotFoundError: no predictions file beside the model.
        ValueError: the file was made by another model (SHA-256 differs): rerun
            ``make evaluate-cnn`` with the full FER2013.
    """
    path = predictions_path(model_path)
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        raise FileNotFoundError(f"{path}: no Training predictions of this model; run `make evaluate-cnn`")
    recorded = json.loads(sidecar.read_text())["model_sha256"]
    if recorded != file_sha256(model_path):
        raise ValueError(
            f"{path} was made by another model than {model_path}; run `make evaluate-cnn` on full FER2013"
        )
    return pd.read_csv(path)


def _sidecar(path: Path) -> Path:
    """``x.training_predictions.csv.gz`` -> ``x.training_predictions.json``."""
    return path.with_suffix("").with_suffix(".json")
