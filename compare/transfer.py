"""Transfer against in-domain: the AU logit refitted on the new dataset itself.

Beside the logit trained on FER2013 and applied unchanged, the same model (17 AU_r, neutral
reference, statsmodels ``MNLogit``) is fitted on the new dataset's paired faces:

- **scored by cross-validation**: ``GroupKFold`` over subjects when ``SUBJECT=`` is given (no
  person in both the training and the test fold), else ``StratifiedKFold``; 5 folds or fewer
  when there are fewer subjects or faces per emotion. Out-of-fold predictions are scored like
  every other row (bootstrap intervals over subjects when given); the difference from the
  transferred logit on the same faces is what transferring costs.
- **fitted on all paired faces** for its coefficients, with cluster-robust standard errors by
  subject (statsmodels ``cov_type="cluster"``) when subjects are given, and compared with the
  FER2013 logit's coefficients and with the EMFACS prototypes (``analysis.facs``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.model_selection import GroupKFold, StratifiedKFold

from analysis.au_table import LABEL
from analysis.facs import facs_agreement
from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel
from compare.data import CompareData
from compare.models import AU_R
from compare.statistics import calibration, scores_with_ci

MAX_FOLDS = 5


def in_domain(
    data: CompareData, fer_coefficients: pd.DataFrame, n_resamples: int, seed: int
) -> tuple[dict, dict]:
    """The refitted logit's CV scores and coefficients beside the FER2013 logit's.

    Returns:
        ``(metrics, tables)``: ``metrics`` (``available``, ``reason``, ``cv``, scores, ``folds``,
        ``se``); ``tables``: ``transfer_coefficients.csv`` and ``transfer_facs.csv`` (empty when
        not available).
    """
    paired = data.paired
    rows = data.test[paired].reset_index(drop=True)
    truth = rows[LABEL].to_numpy()
    groups = None if data.groups is None else np.asarray(data.groups)[paired]
    counts = pd.Series(truth).value_counts()
    if groups is not None:
        n_folds = min(MAX_FOLDS, len(np.unique(groups)))
        splitter, cv = GroupKFold(n_splits=n_folds), f"GroupKFold over subjects ({n_folds} folds)"
    else:
        n_folds = min(MAX_FOLDS, int(counts.min()))
        splitter = StratifiedKFold(n_splits=max(n_folds, 2), shuffle=True, random_state=seed)
        cv = f"StratifiedKFold ({n_folds} folds, no subjects given)"
    if n_folds < 2 or len(counts) < 2:
        return _unavailable(f"too few faces or subjects to cross-validate ({len(rows)} paired faces)")
    oof = pd.DataFrame(np.nan, index=rows.index, columns=list(EMOTIONS))
    try:
        for train_idx, test_idx in splitter.split(rows, truth, groups):
            model = _fit(rows.iloc[train_idx], truth[train_idx])
            proba = model.predict_proba(rows.iloc[test_idx]).reindex(columns=list(EMOTIONS), fill_value=0.0)
            oof.iloc[test_idx] = proba.to_numpy()
        full = _fit(rows, truth)
    except (ValueError, np.linalg.LinAlgError) as error:  # FitError is a ValueError
        return _unavailable(f"the logit could not be fitted on this dataset ({' '.join(str(error).split())})")
    labels = np.asarray(oof.idxmax(axis=1), dtype=object)
    scores = scores_with_ci(truth, labels, n_resamples, seed, groups=groups)
    normalised = _normalised(rows, truth, groups, splitter, n_resamples, seed) if groups is not None else None
    coefficients = _coefficients(full, rows, groups)
    merged = coefficients.merge(
        fer_coefficients[["emotion", "au", "coef", "p"]].rename(
            columns={"coef": "coef_fer2013", "p": "p_fer2013"}
        ),
        on=["emotion", "au"],
        how="left",
    )
    facs_new = facs_agreement(coefficients[coefficients["au"] != "const"][["emotion", "au", "coef", "p"]])
    facs_fer = facs_agreement(
        fer_coefficients[fer_coefficients["au"] != "const"][["emotion", "au", "coef", "p"]]
    )
    facs = facs_new[["emotion", "au", "verdict"]].merge(
        facs_fer[["emotion", "au", "verdict"]], on=["emotion", "au"], suffixes=("_in_domain", "_fer2013")
    )
    metrics = {
        "available": True,
        "reason": "",
        "cv": cv,
        "n": int(len(rows)),
        **{k: scores[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")},
        "per_class_f1": scores["per_class_f1"],
        "calibration": calibration(truth, oof.to_numpy()),
        "se": "cluster-robust by subject" if groups is not None else "model-based (no subjects given)",
        "facs_agree_in_domain": int((facs["verdict_in_domain"] == "agrees").sum()),
        "facs_agree_fer2013": int((facs["verdict_fer2013"] == "agrees").sum()),
        "facs_n": int(len(facs)),
        "normalised": normalised,
        "sign_flips": int(
            (np.sign(merged["coef"]) != np.sign(merged["coef_fer2013"]))[merged["au"] != "const"].sum()
        ),
    }
    return metrics, {"transfer_coefficients.csv": merged, "transfer_facs.csv": facs}


def _normalised(
    rows: pd.DataFrame, truth: np.ndarray, groups: np.ndarray, splitter, n_resamples: int, seed: int
) -> dict:
    """The in-domain logit on per-person normalised AUs: each subject's median AU_r vector
    subtracted from its faces (as OpenFace's video mode subtracts a person's neutral level), same
    folds. Uses no label, only the subject's own images."""
    shifted = rows.copy()
    shifted[AU_R] = rows[AU_R] - rows[AU_R].groupby(groups).transform("median")
    oof = pd.DataFrame(np.nan, index=rows.index, columns=list(EMOTIONS))
    try:
        for train_idx, test_idx in splitter.split(shifted, truth, groups):
            model = _fit(shifted.iloc[train_idx], truth[train_idx])
            proba = model.predict_proba(shifted.iloc[test_idx]).reindex(
                columns=list(EMOTIONS), fill_value=0.0
            )
            oof.iloc[test_idx] = proba.to_numpy()
    except (ValueError, np.linalg.LinAlgError) as error:
        return {"available": False, "reason": " ".join(str(error).split())}
    labels = np.asarray(oof.idxmax(axis=1), dtype=object)
    scores = scores_with_ci(truth, labels, n_resamples, seed, groups=groups)
    return {
        "available": True,
        **{k: scores[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")},
    }


def _fit(rows: pd.DataFrame, truth: np.ndarray) -> AULogitModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AULogitModel(AU_R).fit(rows, truth)


def _coefficients(model: AULogitModel, rows: pd.DataFrame, groups: np.ndarray | None) -> pd.DataFrame:
    """Long table ``emotion, au, coef, se, p`` of the refitted logit; cluster-robust by subject when
    ``groups`` are given (the same maximum, refitted from it with ``cov_type="cluster"``)."""
    result = model.result_
    if groups is not None:
        _, codes = np.unique(groups, return_inverse=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sm.MNLogit(model.codes_, model.exog_).fit(
                start_params=np.asarray(result.params).ravel(order="F"),
                method="newton",
                maxiter=100,
                disp=0,
                cov_type="cluster",
                cov_kwds={"groups": codes},
            )
    names = ["const", *model.features]
    out = []
    params, bse, p = (np.asarray(a) for a in (result.params, result.bse, result.pvalues))
    for j, emotion in enumerate(model.classes[1:]):
        for i, au in enumerate(names):
            out.append({"emotion": emotion, "au": au, "coef": params[i, j], "se": bse[i, j], "p": p[i, j]})
    return pd.DataFrame(out)


def _unavailable(reason: str) -> tuple[dict, dict]:
    return {"available": False, "reason": reason}, {}


def confusion_growth(new: pd.DataFrame, fer2013: pd.DataFrame, top: int = 3) -> dict[str, list[dict]]:
    """Per model (in both tables): the ``top`` confusions (true -> predicted, off the diagonal) whose
    share of the true emotion's faces grew most from FER2013 PrivateTest to the new dataset.

    Args:
        new, fer2013: ``confusion.csv`` tables (``model, true, predicted, count``, paired faces).
    """
    out = {}

    def shares(table: pd.DataFrame) -> pd.Series:
        totals = table.groupby(["model", "true"])["count"].transform("sum")
        return (table["count"] / totals.where(totals > 0)).set_axis(
            pd.MultiIndex.from_frame(table[["model", "true", "predicted"]])
        )

    a, b = shares(new), shares(fer2013)
    counts = new.set_index(["model", "true", "predicted"])["count"]
    for model in sorted(set(new["model"]) & set(fer2013["model"]), key=list(new["model"].unique()).index):
        rows = []
        for (_, true, predicted), share in a[a.index.get_level_values(0) == model].items():
            if true == predicted or pd.isna(share):
                continue
            before = b.get((model, true, predicted), np.nan)
            if pd.isna(before):
                continue
            rows.append(
                {
                    "true": true,
                    "predicted": predicted,
                    "share": float(share),
                    "share_fer2013": float(before),
                    "growth": float(share - before),
                    "count": int(counts[(model, true, predicted)]),
                }
            )
        out[model] = sorted((r for r in rows if r["growth"] > 0), key=lambda r: -r["growth"])[:top]
    return out
