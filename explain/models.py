"""The models the stage explains with: a saved AU model (JSON) and the committed CNN (optional).

AU model: the file ``make fit-glassbox`` saves (``reports/glassbox/fer2013_model.json``, an
additive glass-box logit on the FER2013 Training AUs) when present, else the one ``make
fit-logit`` saves (``reports/logit/model.json``, the multinomial logit on the seed AUs);
``MODEL=`` picks another. Both have the ``analysis.au_models`` interface: ``predict_proba`` in
``EMOTIONS`` order, ``decision_function`` (log-odds vs neutral), ``explain(row)`` exact.

Bounds of the counterfactual search: per AU intensity, the range seen in the model's training
faces intersected with OpenFace's 0-5 (a change outside what the model saw is an
extrapolation). Where the saved JSON names no ranges (``metadata.au_ranges``), they are read
from the training table its metadata names: the bundled seed table for a logit fitted on
``emotion_all.csv``, the FER2013 Training rows of ``analysis.au_table.FER2013_AU_TABLE`` for a
glass-box fitted on ``fer2013``; any other model gets 0-5.

CNN: mini-XCEPTION (``cnn_baseline.model.load_model``) on 48x48 grey face crops, mirror-averaged
(``cnn_baseline.evaluate.class_probabilities``); its seven FER2013 classes are renormalised over
the six analysed emotions (fear left out), as ``make compare`` does. TensorFlow is optional:
without it :func:`load_cnn` returns a ``CNN`` whose ``reason`` says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.au_models import AUModel, Fields, ModelFileError, read_model_json
from analysis.au_table import AU_R_COLUMNS, FER2013_AU_TABLE, SEED_AU_TABLE
from analysis.labels import EMOTIONS

GLASSBOX_MODEL = Path("glassbox") / "fer2013_model.json"
LOGIT_MODEL = Path("logit") / "model.json"
_AU_COLUMN = re.compile(r"AU\d\d_[rc]")


@dataclass
class LoadedModel:
    """A saved AU model and what the page says about it.

    ``columns``: every table column the model reads; ``intensities``: its ``AU*_r`` columns (the
    ones a counterfactual may change); ``lower``/``upper``: per-AU bounds of the counterfactual
    (AU units, within 0-5); ``ranges_source``: where the bounds come from.
    """

    model: AUModel
    path: Path
    family: str
    description: str
    training: str
    columns: list[str]
    intensities: list[str]
    lower: pd.Series
    upper: pd.Series
    ranges_source: str
    metadata: dict = field(default_factory=dict)


def default_model_path(reports: str | os.PathLike[str] = "reports") -> Path:
    """``<reports>/glassbox/fer2013_model.json`` if present, else ``<reports>/logit/model.json``.

    Raises:
        ModelFileError: neither exists (the message says which command saves one).
    """
    reports = Path(reports)
    for candidate in (reports / GLASSBOX_MODEL, reports / LOGIT_MODEL):
        if candidate.is_file():
            return candidate
    raise ModelFileError(
        f"{reports / LOGIT_MODEL}: no saved AU model; run `make fit-logit` (or `make fit-glassbox`) "
        "first, or pass MODEL=<model .json>"
    )


def load_au_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a saved AU model (logit or additive glass-box) with its counterfactual bounds.

    Raises:
        ModelFileError: the file is unusable (one line, ``analysis.au_models.read_model_json``),
            or an EBM saved as its settings (it would have to be refitted; not explained here).
    """
    from analysis.glassbox import ADDITIVE_FORMAT, EBM_SPEC_FORMAT, load_glassbox
    from analysis.logit import MODEL_FORMAT, AULogitModel

    path = Path(path)
    data = read_model_json(path, (MODEL_FORMAT, ADDITIVE_FORMAT, EBM_SPEC_FORMAT))
    if data["format"] == EBM_SPEC_FORMAT:
        raise ModelFileError(
            f"{path}: an EBM is saved as its settings and must be refitted; explain with an additive "
            "glass-box or logit model file instead"
        )
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    if data["format"] == MODEL_FORMAT:
        model: AUModel = AULogitModel.from_json(path)
        columns = list(model.features)
        family = "multinomial logit (statsmodels MNLogit), linear in the AU intensities"
        source = str(metadata.get("input", ""))
        training = (
            f"the bundled seed AU table ({SEED_AU_TABLE.name}, {metadata.get('n_rows', '?')} faces)"
            if source == SEED_AU_TABLE.name
            else (f"{source} ({metadata.get('n_rows', '?')} faces)" if source else "not recorded in the file")
        )
        table = SEED_AU_TABLE if source == SEED_AU_TABLE.name else None
    else:
        model = load_glassbox(path)
        columns = sorted({c for term in model.terms for c in term.columns})
        family = f"additive glass-box logit: {model.spec.description}"
        if metadata.get("dataset") == "fer2013":
            training = (
                f"FER2013 Training faces with OpenFace 2.2.0 AUs ({metadata.get('n_train', '?')} faces)"
            )
            table = FER2013_AU_TABLE
        else:
            training = str(metadata.get("source") or metadata.get("dataset") or "not recorded in the file")
            table = None
    intensities = [c for c in AU_R_COLUMNS if c in columns]
    lower, upper, ranges_source = training_ranges(path, metadata, table, intensities)
    return LoadedModel(
        model=model,
        path=path,
        family=family,
        description=family,
        training=training,
        columns=columns,
        intensities=intensities,
        lower=lower,
        upper=upper,
        ranges_source=ranges_source,
        metadata=metadata,
    )


def training_ranges(
    path: Path, metadata: dict, table: Path | None, intensities: list[str]
) -> tuple[pd.Series, pd.Series, str]:
    """Per-AU (lower, upper) bounds in AU units within 0-5 and a sentence saying where they come from.

    Order of preference: ``metadata["au_ranges"]`` (``{"AU04_r": [low, high], ...}``) in the
    model file; the min/max over the training table's rows (FER2013: ``Usage == Training``);
    else 0-5.
    """
    low = pd.Series(0.0, index=intensities)
    high = pd.Series(5.0, index=intensities)
    ranges = metadata.get("au_ranges")
    if isinstance(ranges, dict) and all(c in ranges for c in intensities):
        f = Fields(path, metadata)
        for column in intensities:
            pair = f.numbers(ranges[column], f"metadata au_ranges of {column}", 2)
            low[column], high[column] = pair
        return low.clip(0, 5), high.clip(0, 5), "the training ranges saved in the model file"
    if table is not None and table.is_file():
        usecols = [*intensities, "Usage"] if table == FER2013_AU_TABLE else intensities
        rows = pd.read_csv(table, usecols=lambda c: c.strip() in usecols, skipinitialspace=True)
        rows.columns = [c.strip() for c in rows.columns]
        if "Usage" in rows:
            rows = rows[rows["Usage"] == "Training"]
        values = rows[intensities].apply(pd.to_numeric, errors="coerce")
        where = f"FER2013 Training rows of {table.name}" if "Usage" in rows else table.name
        return (
            values.min().clip(0, 5),
            values.max().clip(0, 5),
            f"min-max of each AU over the {len(values):,} {where} rows, within 0-5",
        )
    return low, high, "OpenFace's 0-5 (the model file names no training table)"


def columns_of_term(term: str) -> list[str]:
    """The AU columns a term name holds: ``"AU04_r x AU07_r"`` -> ``["AU04_r", "AU07_r"]``."""
    return _AU_COLUMN.findall(term)


# ----------------------------------------------------------------------------------- the CNN


@dataclass
class CNN:
    """The committed CNN, or why there is none (``model`` None, ``reason`` one line)."""

    model: object | None
    name: str
    reason: str = ""


def load_cnn(path: str | os.PathLike[str] | None = None) -> CNN:
    """Load mini-XCEPTION (default ``cnn_baseline/models/mini_xception.keras``); never raises for a
    missing TensorFlow or model: the returned ``CNN`` says why there is none."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return CNN(None, "mini-XCEPTION", "TensorFlow is not installed (`make test` or pip install '.[cnn]')")
    from cnn_baseline.model import DEFAULT_MODEL, load_model

    model_path = Path(path or DEFAULT_MODEL)
    try:
        model = load_model(model_path, num_classes=7)
    except (ModelFileError, OSError, ValueError) as error:
        return CNN(None, model_path.name, " ".join(str(error).split())[:300])
    return CNN(model, model_path.name)


def cnn_probabilities(cnn: CNN, faces: np.ndarray) -> np.ndarray:
    """(n, 6) probabilities in ``EMOTIONS`` order of (n, 48, 48) grey faces (pixels 0-255),
    mirror-averaged and renormalised over the six emotions (FER2013's fear left out)."""
    from cnn_baseline.data import CLASS_NAMES
    from cnn_baseline.evaluate import class_probabilities
    from cnn_baseline.preprocess import model_inputs

    if cnn.model is None or len(faces) == 0:
        return np.full((len(faces), len(EMOTIONS)), np.nan)
    prob = class_probabilities(cnn.model, model_inputs(faces[..., None], cnn.model.input_shape[1]))
    six = prob[:, [list(CLASS_NAMES).index(e) for e in EMOTIONS]]
    return six / six.sum(axis=1, keepdims=True)


def cnn_gradcam(cnn: CNN, faces: np.ndarray) -> np.ndarray:
    """(n, 48, 48) Grad-CAM maps in [0, 1] of the CNN's predicted class (``cnn_baseline.gradcam``;
    Selvaraju et al. 2017, arXiv 1610.02391); zeros without a CNN."""
    if cnn.model is None or len(faces) == 0:
        return np.zeros((len(faces), 48, 48))
    from cnn_baseline.gradcam import gradcam

    return gradcam(cnn.model, faces[..., None])
