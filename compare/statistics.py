"""Scores with bootstrap confidence intervals, McNemar tests and agreement between models.

A missing prediction (``""``, an AU model on a face OpenFace missed) counts as an error:
it matches no true label, so it lowers accuracy and the recall of the face's class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar

from analysis.labels import EMOTIONS


def _per_class_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 per class along the last axis; integer codes, ``-1`` = no prediction.

    Shapes: ``truth``, ``pred`` (..., n) -> (..., n_classes); an undefined F1 (class
    neither present nor predicted) is 0, as scikit-learn's ``zero_division=0``.
    """
    out = []
    for k in range(n_classes):
        is_true, is_pred = truth == k, pred == k
        tp = (is_true & is_pred).sum(axis=-1)
        denominator = is_true.sum(axis=-1) + is_pred.sum(axis=-1)
        out.append(np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0))
    return np.stack(out, axis=-1)


def _statistics(truth: np.ndarray, pred: np.ndarray, axis: int = -1) -> np.ndarray:
    """[accuracy, macro-F1, F1 per class] along ``axis`` (vectorised for ``scipy.stats.bootstrap``)."""
    truth, pred = np.moveaxis(truth, axis, -1), np.moveaxis(pred, axis, -1)
    f1 = _per_class_f1(truth, pred, len(EMOTIONS))
    accuracy = (truth == pred).mean(axis=-1)
    return np.moveaxis(np.concatenate([accuracy[..., None], f1.mean(axis=-1)[..., None], f1], axis=-1), -1, 0)


def codes(labels: np.ndarray) -> np.ndarray:
    """Emotion names -> 0-5 in ``EMOTIONS`` order; anything else (no prediction) -> -1."""
    lookup = {e: i for i, e in enumerate(EMOTIONS)}
    return np.array([lookup.get(label, -1) for label in labels], dtype=int)


def scores_with_ci(
    truth: np.ndarray, pred: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Accuracy, macro-F1 and per-class F1, each with a bootstrap confidence interval.

    Faces are resampled with replacement (paired: truth and prediction together),
    ``n_resamples`` times with a fixed seed; the interval is the percentile interval of
    ``scipy.stats.bootstrap`` (Efron & Tibshirani 1993).

    Args:
        truth, pred: (n,) emotion names; ``pred`` may hold ``""`` (no prediction, an error).

    Returns:
        ``accuracy``, ``accuracy_ci`` [low, high], ``macro_f1``, ``macro_f1_ci``, ``n``,
        ``coverage`` (share with a prediction), ``per_class_f1`` {emotion: value} and
        ``per_class_f1_ci`` {emotion: [low, high]}.
    """
    t, p = codes(truth), codes(pred)
    point = _statistics(t, p)
    result = bootstrap(
        (t, p),
        _statistics,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return {
        "accuracy": float(point[0]),
        "accuracy_ci": [float(low[0]), float(high[0])],
        "macro_f1": float(point[1]),
        "macro_f1_ci": [float(low[1]), float(high[1])],
        "n": int(len(t)),
        "coverage": float((p >= 0).mean()),
        "per_class_f1": {e: float(point[2 + i]) for i, e in enumerate(EMOTIONS)},
        "per_class_f1_ci": {e: [float(low[2 + i]), float(high[2 + i])] for i, e in enumerate(EMOTIONS)},
    }


def mcnemar_exact(truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test (binomial on the discordant faces) of two models on the same faces.

    Returns:
        ``only_a_right`` and ``only_b_right`` (the discordant counts) and ``p`` (two-sided,
        statsmodels ``mcnemar(exact=True)``; McNemar 1947).
    """
    right_a, right_b = pred_a == truth, pred_b == truth
    table = pd.crosstab(right_a, right_b).reindex(index=[True, False], columns=[True, False], fill_value=0)
    test = mcnemar(table.to_numpy(), exact=True)
    return {
        "only_a_right": int(table.loc[True, False]),
        "only_b_right": int(table.loc[False, True]),
        "p": float(test.pvalue),
    }


def kappa_matrix(predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cohen's kappa between every two models' predicted labels (scikit-learn), square DataFrame."""
    keys = list(predictions)
    out = pd.DataFrame(1.0, index=keys, columns=keys)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            same = np.array_equal(predictions[a], predictions[b])
            value = 1.0 if same else cohen_kappa_score(predictions[a], predictions[b])
            out.loc[a, b] = out.loc[b, a] = value
    return out
