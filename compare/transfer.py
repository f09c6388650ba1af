"""Transfer against in-domain: the AU logit refitted on the new dataset itself.

Beside the logit trained on FER2013 and applied unchanged, the same model (17 AU_r, neutral
reference, statsmodels ``MNLogit``) is fitted on the new dataset's paired faces:

- **scored by cross-validation**: ``GroupKFold`` over subjects when ``SUBJECT=`` is given (no
  person in both the training and the test fold), else ``StratifiedKFold``; 5 folds or fewer
  when there are fewer subjects or faces. Out-of-fold predictions are scored like every other
  row (bootstrap intervals over subjects when given); the difference from the transferred logit
  on the same faces is what transferring costs. An emotion absent from a training fold gets
  probability 0 on that fold's test faces.
- **fitted on all paired faces** for its coefficients, with cluster-robust standard errors by
  subject (statsmodels ``cov_type="cluster"``) when subjects are given, and compared with the
  FER2013 logit's coefficients and with the EMFACS prototypes (``analysis.facs``).
- **small datasets**: where the unpenalised MNLogit cannot be fitted on a training fold or on all
  faces (fewer rows than its 90 parameters, a fold without a neutral face, a singular design,
  perfect or quasi-separation), an L2-penalised multinomial logit (``PENALISED_NOTE``) is fitted
  instead, on the same folds, and ``model`` says so; it has no standard errors or p-values.
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
UNPENALISED = "unpenalised MLE"
PENALISED = "L2-penalised"
PENALTY_C = 1.0  # scikit-learn's default: L2 penalty ||b||^2 / (2 C), intercepts unpenalised
PENALISED_NOTE = (
    "scikit-learn LogisticRegression, multinomial, lbfgs, L2 penalty with C = 1 (its default) on the raw "
    "AU intensities: the 17 AU_r share OpenFace's 0-5 scale, so they are not standardised and the "
    "coefficients stay log-odds against neutral per intensity unit, shrunk towards 0"
)


class Unfittable(ValueError):
    """A model of the in-domain refit cannot be fitted on these rows; the message says why."""


def in_domain(
    data: CompareData, fer_coefficients: pd.DataFrame, n_resamples: int, seed: int
) -> tuple[dict, dict]:
    """The refitted logit's CV scores and coefficients beside the FER2013 logit's.

    The unpenalised MNLogit is tried first; where it cannot be fitted on a training fold or on
    all paired faces (fewer rows than its 90 parameters, a fold without neutral faces, a singular
    design, perfect or quasi-separation, no convergence, non-finite probabilities) the
    L2-penalised multinomial logit (``PENALISED_NOTE``) takes its place, on the same folds.

    Returns:
        ``(metrics, tables)``: ``metrics`` (``available``, ``reason``, ``model`` (``UNPENALISED``
        or ``PENALISED``), ``model_reason`` (why the unpenalised one was not used), ``cv``,
        scores, ``se``, ``normalised`` ...); ``tables``: ``transfer_coefficients.csv`` and
        ``transfer_facs.csv`` (absent when not available or without a neutral face).
    """
    paired = data.paired
    rows = data.test[paired].reset_index(drop=True)
    truth = rows[LABEL].to_numpy()
    groups = None if data.groups is None else np.asarray(data.groups)[paired]
    counts = pd.Series(truth).value_counts()
    if len(counts) < 2:
        return _unavailable(f"the {len(rows)} paired faces hold one emotion only; a classifier needs two")
    if groups is not None:
        n_folds = min(MAX_FOLDS, len(np.unique(groups)))
        splitter, cv = GroupKFold(n_splits=n_folds), f"GroupKFold over subjects ({n_folds} folds)"
    else:
        # StratifiedKFold needs one class with n_folds faces; a rarer class lands in fewer test folds
        # (and is absent from a training fold: probability 0 there)
        n_folds = min(MAX_FOLDS, int(counts.max()))
        splitter = StratifiedKFold(n_splits=max(n_folds, 2), shuffle=True, random_state=seed)
        cv = f"StratifiedKFold ({n_folds} folds, no subjects given)"
    if n_folds < 2:
        return _unavailable(f"too few faces or subjects to cross-validate ({len(rows)} paired faces)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's "least populated class" note: handled above
        folds = list(splitter.split(rows, truth, groups))
    model_reason = ""
    try:
        oof = _out_of_fold(rows, truth, folds, _fit_unpenalised)
        full = _fit_unpenalised(rows, truth)
        kind = UNPENALISED
    except Unfittable as error:
        model_reason = f"the unpenalised logit could not be fitted ({error})"
        try:
            oof = _out_of_fold(rows, truth, folds, _fit_penalised)
            full = _fit_penalised(rows, truth)
        except Unfittable as again:
            return _unavailable(f"{model_reason}, nor the L2-penalised one ({again})")
        kind = PENALISED
    labels = np.asarray(oof.idxmax(axis=1), dtype=object)
    scores = scores_with_ci(truth, labels, n_resamples, seed, groups=groups)
    normalised = (
        _normalised(rows, truth, groups, folds, kind, n_resamples, seed) if groups is not None else None
    )
    metrics = {
        "available": True,
        "reason": "",
        "model": kind,
        "model_reason": model_reason,
        "model_note": PENALISED_NOTE if kind == PENALISED else "statsmodels MNLogit, Newton, no penalty",
        "cv": cv,
        "n": int(len(rows)),
        **{k: scores[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")},
        "per_class_f1": scores["per_class_f1"],
        "calibration": calibration(truth, oof.to_numpy()),
        "normalised": normalised,
    }
    if "ci_reason" in scores:
        metrics["ci_reason"] = scores["ci_reason"]
    if "neutral" not in set(truth):  # every coefficient is a log-odds against neutral
        metrics["coefficients_reason"] = "no paired face is neutral, the reference of every coefficient"
        return metrics, {}
    if kind == PENALISED:
        coefficients = full.coefficients()
        se = "none: a penalised fit has no standard errors or p-values"
    else:
        coefficients, se = _coefficients(full, groups)
    merged = coefficients.merge(
        fer_coefficients[["emotion", "au", "coef", "p"]].rename(
            columns={"coef": "coef_fer2013", "p": "p_fer2013"}
        ),
        on=["emotion", "au"],
        how="left",
    )
    terms = coefficients[coefficients["au"] != "const"]
    # without p-values the EMFACS check can only read signs ("right sign (untested)")
    facs_new = facs_agreement(terms[["emotion", "au", "coef", *(["p"] if kind == UNPENALISED else [])]])
    facs_fer = facs_agreement(
        fer_coefficients[fer_coefficients["au"] != "const"][["emotion", "au", "coef", "p"]]
    )
    facs = facs_new[["emotion", "au", "verdict", "agrees"]].merge(
        facs_fer[["emotion", "au", "verdict"]], on=["emotion", "au"], suffixes=("_in_domain", "_fer2013")
    )
    metrics.update(
        se=se,
        facs_agree_in_domain=int(facs["agrees"].sum()),
        facs_agree_fer2013=int((facs["verdict_fer2013"] == "agrees").sum()),
        facs_n=int(len(facs)),
        facs_tested=kind == UNPENALISED,
        n_coefficients=int((merged["au"] != "const").sum()),
        sign_flips=int(
            (np.sign(merged["coef"]) != np.sign(merged["coef_fer2013"]))[merged["au"] != "const"].sum()
        ),
    )
    return metrics, {"transfer_coefficients.csv": merged, "transfer_facs.csv": facs.drop(columns="agrees")}


def _out_of_fold(rows: pd.DataFrame, truth: np.ndarray, folds: list, fit) -> pd.DataFrame:
    """(n, 6) out-of-fold probabilities in ``EMOTIONS`` order; an emotion absent from a training
    fold gets probability 0 on its test faces.

    Raises:
        Unfittable: ``fit`` failed on a training fold, or gave non-finite probabilities.
    """
    oof = pd.DataFrame(np.nan, index=rows.index, columns=list(EMOTIONS))
    for k, (train_idx, test_idx) in enumerate(folds, start=1):
        model = fit(rows.iloc[train_idx], truth[train_idx], f"training fold {k} of {len(folds)}")
        proba = model.predict_proba(rows.iloc[test_idx]).reindex(columns=list(EMOTIONS), fill_value=0.0)
        values = proba.to_numpy(dtype=float)
        if not np.isfinite(values).all():  # overflow of a separated fit: NaN, whose idxmax fails
            raise Unfittable(f"non-finite probabilities on test fold {k} of {len(folds)}")
        oof.iloc[test_idx] = values
    return oof


def _fit_unpenalised(rows: pd.DataFrame, truth: np.ndarray, where: str = "all paired faces") -> AULogitModel:
    """The unpenalised MNLogit (``AULogitModel``) on ``rows``.

    Raises:
        Unfittable: too few rows or classes, no neutral face, a singular design, or a fit that
            statsmodels flags (perfect or quasi-separation, no convergence, non-finite SEs).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AULogitModel(AU_R).fit(rows, truth)
    except (ValueError, np.linalg.LinAlgError) as error:  # FitError is a ValueError
        raise Unfittable(f"{where}: {' '.join(str(error).split())}") from None
    if model.warnings_ or not np.isfinite(model.params.to_numpy()).all():
        notes = [n.rstrip(".") for n in model.warnings_] or ["non-finite coefficients"]
        raise Unfittable(f"{where}: {'; '.join(notes)}")
    return model


class PenalisedLogit:
    """The L2-penalised multinomial logit of the in-domain refit (``PENALISED_NOTE``) on ``AU_R``.

    ``predict_proba`` has the emotions it was fitted on as columns; ``coefficients`` gives the
    log-odds against neutral (``b_j - b_neutral``), the same parametrisation as ``AULogitModel``.
    """

    def __init__(self, rows: pd.DataFrame, truth: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        from analysis.glassbox import l1_ratio_kwargs

        self.model = LogisticRegression(C=PENALTY_C, solver="lbfgs", max_iter=5000, **l1_ratio_kwargs("l2"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs' convergence note: max_iter is generous
            self.model.fit(rows[AU_R].to_numpy(dtype=float), np.asarray(truth, dtype=object))
        self.classes = [str(c) for c in self.model.classes_]

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(n, k) probabilities, columns the fitted emotions."""
        prob = self.model.predict_proba(rows[AU_R].to_numpy(dtype=float))
        return pd.DataFrame(prob, index=rows.index, columns=self.classes)

    def coefficients(self) -> pd.DataFrame:
        """Long table ``emotion, au, coef, se, p`` (``se``, ``p`` NaN: a penalised fit has none),
        log-odds against neutral per intensity unit, emotions in ``EMOTIONS`` order."""
        coef, intercept = self.model.coef_, self.model.intercept_
        if len(self.classes) == 2:  # scikit-learn's binary fit: one vector, the second class vs the first
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        weights = np.column_stack([intercept, coef])  # (k, 1 + 17)
        ref = weights[self.classes.index("neutral")]
        out = []
        for emotion in (e for e in EMOTIONS if e in self.classes and e != "neutral"):
            row = weights[self.classes.index(emotion)] - ref
            for au, value in zip(["const", *AU_R], row, strict=True):
                out.append({"emotion": emotion, "au": au, "coef": float(value), "se": np.nan, "p": np.nan})
        return pd.DataFrame(out)


def _fit_penalised(rows: pd.DataFrame, truth: np.ndarray, where: str = "all paired faces") -> PenalisedLogit:
    """``PenalisedLogit`` on ``rows``.

    Raises:
        Unfittable: the rows hold one emotion only (scikit-learn needs two), or the fit failed.
    """
    present = sorted(set(np.asarray(truth, dtype=object)))
    if len(present) < 2:
        raise Unfittable(f"{where} holds one emotion only ({present[0] if present else 'none'})")
    try:
        model = PenalisedLogit(rows, truth)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise Unfittable(f"{where}: {' '.join(str(error).split())}") from None
    if not np.isfinite(model.model.coef_).all():
        raise Unfittable(f"{where}: non-finite coefficients")
    return model


def _normalised(
    rows: pd.DataFrame,
    truth: np.ndarray,
    groups: np.ndarray,
    folds: list,
    kind: str,
    n_resamples: int,
    seed: int,
) -> dict:
    """The in-domain logit on per-person normalised AUs: each subject's median AU_r vector
    subtracted from its faces (as OpenFace's video mode subtracts a person's neutral level), same
    folds and the same model as the raw refit (the unpenalised one falling back to the L2-penalised
    one as there). Uses no label, only the subject's own images."""
    shifted = rows.copy()
    shifted[AU_R] = rows[AU_R] - rows[AU_R].groupby(groups).transform("median")
    reason = ""
    try:
        if kind != UNPENALISED:
            raise Unfittable("")
        oof, used = _out_of_fold(shifted, truth, folds, _fit_unpenalised), UNPENALISED
    except Unfittable as error:
        reason = str(error) and f"the unpenalised logit could not be fitted ({error})"
        try:
            oof, used = _out_of_fold(shifted, truth, folds, _fit_penalised), PENALISED
        except Unfittable as again:
            return {"available": False, "reason": str(again)}
    labels = np.asarray(oof.idxmax(axis=1), dtype=object)
    scores = scores_with_ci(truth, labels, n_resamples, seed, groups=groups)
    return {
        "available": True,
        "model": used,
        "model_reason": reason,
        **{k: scores[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")},
    }


def _coefficients(model: AULogitModel, groups: np.ndarray | None) -> tuple[pd.DataFrame, str]:
    """Long table ``emotion, au, coef, se, p`` of the refitted logit and what its SEs are;
    cluster-robust by subject when ``groups`` are given (the same maximum, refitted from it with
    ``cov_type="cluster"``), model-based where that refit fails."""
    result, se = model.result_, "model-based (no subjects given)"
    if groups is not None:
        _, codes = np.unique(groups, return_inverse=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                robust = sm.MNLogit(model.codes_, model.exog_).fit(
                    start_params=np.asarray(result.params).ravel(order="F"),
                    method="newton",
                    maxiter=100,
                    disp=0,
                    cov_type="cluster",
                    cov_kwds={"groups": codes},
                )
            if not np.isfinite(np.asarray(robust.bse)).all():
                raise np.linalg.LinAlgError("non-finite cluster-robust standard errors")
            result, se = robust, "cluster-robust by subject"
        except (ValueError, np.linalg.LinAlgError) as error:
            se = f"model-based (cluster-robust ones could not be computed: {' '.join(str(error).split())})"
    names = ["const", *model.features]
    out = []
    params, bse, p = (np.asarray(a) for a in (result.params, result.bse, result.pvalues))
    for j, emotion in enumerate(model.classes[1:]):
        for i, au in enumerate(names):
            out.append({"emotion": emotion, "au": au, "coef": params[i, j], "se": bse[i, j], "p": p[i, j]})
    return pd.DataFrame(out), se


def transfer_gaps(transfer: dict) -> list[dict]:
    """``metrics.json`` ``not_computed`` entries (``part``, ``reason``) for what ``in_domain``
    could not compute."""
    if not transfer["available"]:
        return [{"part": "in-domain refit (transfer against in-domain)", "reason": transfer["reason"]}]
    out = []
    if "coefficients_reason" in transfer:
        out.append(
            {"part": "in-domain coefficients and EMFACS check", "reason": transfer["coefficients_reason"]}
        )
    normalised = transfer.get("normalised")
    if normalised and not normalised["available"]:
        out.append({"part": "in-domain refit on per-person normalised AUs", "reason": normalised["reason"]})
    if "ci_reason" in transfer:
        out.append({"part": "intervals of the in-domain refit", "reason": transfer["ci_reason"]})
    return out


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
