"""Scores with bootstrap confidence intervals, McNemar tests and agreement between models.

A missing prediction (``""``, an AU model on a face OpenFace missed) counts as an error:
it matches no true label, so it lowers accuracy and the recall of the face's class.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar

from analysis.labels import EMOTIONS

# Below this many subjects the cluster bootstrap's intervals are called unreliable on the page. With G
# subjects a resample is a multiset of G of them, so there are at most C(2G-1, G) distinct resamples
# (2 subjects: 3; 5: 126; 10: 92,378), and cluster-based intervals and tests with fewer than about ten
# clusters are known to cover too little (Cameron, Gelbach & Miller 2008, Rev. Econ. Stat. 90(3);
# Cameron & Miller 2015, J. Human Resources 50(2)).
MIN_SUBJECTS = 10


def subject_interval_caution(n_subjects: int | None) -> str | None:
    """The page's caution for intervals resampled over ``n_subjects`` subjects; None from
    ``MIN_SUBJECTS`` on or without subjects."""
    if n_subjects is None or n_subjects >= MIN_SUBJECTS:
        return None
    plural = "s" if n_subjects != 1 else ""
    resamples = comb(2 * n_subjects - 1, n_subjects)
    many = "s" if resamples != 1 else ""
    return (
        f"With only {n_subjects} subject{plural} the 95% intervals are unreliable: a bootstrap over "
        f"{n_subjects} subject{plural} can draw at most {resamples:,} different resample{many}, "
        f"and intervals from fewer than {MIN_SUBJECTS} clusters are known to be too narrow (Cameron, Gelbach "
        "& Miller 2008). Read them as a rough range, not as 95% intervals; more subjects are needed for that."
    )


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
    truth: np.ndarray,
    pred: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: np.ndarray | None = None,
) -> dict:
    """Accuracy, macro-F1 and per-class F1, each with a bootstrap confidence interval.

    Faces are resampled with replacement (paired: truth and prediction together),
    ``n_resamples`` times with a fixed seed; the interval is the percentile interval of
    ``scipy.stats.bootstrap`` (Efron & Tibshirani 1993).

    With ``groups`` (the subject of each face) the bootstrap resamples subjects, not faces
    (a cluster bootstrap: each resample draws as many subjects as there are, with replacement,
    and takes all their faces; Field & Welsh 2007), since faces of one person are not independent.

    Args:
        truth, pred: (n,) emotion names; ``pred`` may hold ``""`` (no prediction, an error).
        groups: (n,) subject of each face, or None.

    Returns:
        ``accuracy``, ``accuracy_ci`` [low, high], ``macro_f1``, ``macro_f1_ci``, ``n``,
        ``coverage`` (share with a prediction), ``per_class_f1`` {emotion: value} and
        ``per_class_f1_ci`` {emotion: [low, high]}; with fewer than two faces (or subjects) the
        intervals are NaN and ``ci_reason`` says why.
    """
    t, p = codes(truth), codes(pred)
    point = _statistics(t, p)
    units = len(t) if groups is None else len(np.unique(groups))
    reason = ""
    if units < 2:  # scipy's bootstrap needs two observations; one subject resamples to itself
        kind = "face" if groups is None else "subject"
        reason = f"only {units} {kind}{'s' if units != 1 else ''}: a bootstrap needs at least two"
        low = high = np.full(len(point), np.nan)
    elif groups is not None:
        low, high = _cluster_interval(t, p, np.asarray(groups), n_resamples, seed, level)
    else:
        low, high = _face_interval(t, p, n_resamples, seed, level)
    out = {
        "accuracy": float(point[0]),
        "accuracy_ci": [float(low[0]), float(high[0])],
        "macro_f1": float(point[1]),
        "macro_f1_ci": [float(low[1]), float(high[1])],
        "n": int(len(t)),
        "coverage": float((p >= 0).mean()),
        "per_class_f1": {e: float(point[2 + i]) for i, e in enumerate(EMOTIONS)},
        "per_class_f1_ci": {e: [float(low[2 + i]), float(high[2 + i])] for i, e in enumerate(EMOTIONS)},
    }
    if groups is not None:
        out["n_subjects"] = int(len(np.unique(groups)))
    if reason:
        out["ci_reason"] = reason
    return out


def _face_interval(t: np.ndarray, p: np.ndarray, n_resamples: int, seed: int, level: float):
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
    return result.confidence_interval


def _cluster_interval(
    t: np.ndarray, p: np.ndarray, groups: np.ndarray, n_resamples: int, seed: int, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the statistics over ``n_resamples`` resamples of whole subjects."""
    _, members = np.unique(groups, return_inverse=True)
    by_subject = [np.flatnonzero(members == k) for k in range(members.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(by_subject), size=len(by_subject))
        index = np.concatenate([by_subject[k] for k in chosen])
        draws.append(_statistics(t[index], p[index]))
    values = np.stack(draws)
    alpha = (1 - level) / 2
    return np.quantile(values, alpha, axis=0), np.quantile(values, 1 - alpha, axis=0)


def calibration(truth: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> dict:
    """Brier score and expected calibration error of six-class probabilities.

    Brier: mean over faces of the squared distance between the probability vector and the
    one-hot truth (Brier 1950; 0 best, 2 worst). ECE: the top-label confidence in ``n_bins``
    equal-width bins, sum over bins of (share of faces) x |accuracy - mean confidence|
    (Guo et al. 2017). ``bins``: per bin the count, mean confidence and accuracy (the
    reliability diagram). Rows without probabilities (NaN) are left out.

    Args:
        truth: (n,) emotion names; probabilities: (n, 6) in ``EMOTIONS`` order.
    """
    prob = np.asarray(probabilities, dtype=float)
    made = ~np.isnan(prob).any(axis=1)
    t, prob = codes(np.asarray(truth)[made]), prob[made]
    if len(t) == 0:
        return {"brier": None, "ece": None, "n": 0, "bins": []}
    onehot = np.eye(len(EMOTIONS))[t]
    brier = float(((prob - onehot) ** 2).sum(axis=1).mean())
    confidence, predicted = prob.max(axis=1), prob.argmax(axis=1)
    right = predicted == t
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    ece, bins = 0.0, []
    for b in range(n_bins):
        mask = which == b
        if not mask.any():
            continue
        conf, acc = float(confidence[mask].mean()), float(right[mask].mean())
        ece += mask.mean() * abs(acc - conf)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                     "confidence": conf, "accuracy": acc})  # fmt: skip
    return {"brier": brier, "ece": float(ece), "n": int(len(t)), "bins": bins}


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
