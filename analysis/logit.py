"""Multinomial logistic regression of emotion on AU intensities (statsmodels ``MNLogit``).

The model: P(emotion = j | x) = exp(a_j + x b_j) / sum_m exp(a_m + x b_m), with the
reference emotion (neutral by default) fixed at a = 0, b = 0. A coefficient b_jk is the
change in the log-odds of emotion j versus the reference per unit of AU k's intensity
(OpenFace's 0-5 scale); exp(b_jk) is the odds ratio.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from joblib import Parallel, delayed
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from analysis.au_models import AUModel, Fields, read_model_json
from analysis.au_table import LABEL
from analysis.files import write_json
from analysis.labels import EMOTIONS
from analysis.margins import Z95, average_marginal_effects, marginal_effects_table

MODEL_FORMAT = "au-workbench/mnlogit/1"
# |b| above this (odds ratio > e^10 per intensity unit) signals (quasi-)separation.
SEPARATION_COEF = 10.0


class FitError(ValueError):
    """The data cannot be fitted (too few classes or rows)."""


class _MNLogit(sm.MNLogit):
    """statsmodels' ``MNLogit`` with a cheaper, identical Hessian.

    statsmodels builds all (J-1)² blocks of X' diag(w) X over all rows at once; the
    Hessian is symmetric, so only the J(J-1)/2 upper blocks are computed here, by one
    matrix product per row chunk (tested equal to statsmodels' own). This makes the
    Hessian about 2.4x faster on large tables; everything else (optimiser, results,
    inference) is statsmodels'.
    """

    def hessian(self, params: np.ndarray) -> np.ndarray:
        params = params.reshape(self.K, -1, order="F")
        j1, k = params.shape[1], self.K
        pairs = [(a, b) for a in range(j1) for b in range(a, j1)]
        blocks = np.zeros((k, len(pairs), k))
        for start in range(0, len(self.exog), self._chunk_rows):  # chunks stay in cache
            x = self.exog[start : start + self._chunk_rows]
            prob = self.cdf(x @ params)[:, 1:]
            weights = np.stack([prob[:, a] * (float(a == b) - prob[:, b]) for a, b in pairs], axis=1)
            # all blocks X' diag(w_ab) X of the chunk in one matrix product
            blocks += (x.T @ (x[:, None, :] * weights[:, :, None]).reshape(len(x), -1)).reshape(
                k, len(pairs), k
            )
        hess = np.empty((j1, k, j1, k))
        for p, (a, b) in enumerate(pairs):
            hess[a, :, b, :] = -blocks[:, p, :]
            hess[b, :, a, :] = -blocks[:, p, :].T
        return hess.reshape(j1 * k, j1 * k)

    _chunk_rows = 16_384


class AULogitModel(AUModel):
    """Multinomial logit fitted by statsmodels ``MNLogit`` (Newton), with the AU-model interface.

    ``AULogitModel(features, reference).fit(X, y)`` fits without any inference (no standard
    errors, tests or marginal effects are computed; ``fit_logit`` adds them). The interface
    is ``analysis.au_models``': ``predict_proba`` columns in ``EMOTIONS`` order, ``predict``
    a numpy array, ``explain`` exact.

    Args:
        features: AU columns to use (e.g. ``AU01_r`` ... ``AU45_r``); None: every column of X.
        reference: the emotion every log-odds is taken against.

    Fitted attributes:
        features: the AU columns used, in order.
        classes: emotion names, the reference first (the order of the report's tables).
        classes_: the same emotions in ``EMOTIONS`` order (``predict_proba``'s columns).
        params: DataFrame (1 + len(features)) x (len(classes) - 1): rows ``const`` and the
            features, columns the non-reference emotions; log-odds per unit of intensity.
        metadata: dict saved with the model (input, rows, pseudo-R², ...).
    """

    def __init__(self, features: list[str] | None = None, reference: str = "neutral"):
        self.features = features
        self.reference = reference

    @classmethod
    def from_params(
        cls, features: list[str], classes: list[str], params: pd.DataFrame, metadata: dict | None = None
    ) -> AULogitModel:
        """A fitted model from its coefficients (``classes``: the reference first)."""
        model = cls(list(features), classes[0])
        model._set(list(classes), params, dict(metadata or {}))
        return model

    def fit(self, X: pd.DataFrame, y) -> AULogitModel:
        """Fit on ``X[features]`` (AU intensities) and ``y`` (n,) emotion names.

        Raises:
            FitError: too few classes, a missing reference, or fewer rows than parameters.
        """
        features = list(self.features) if self.features is not None else list(X.columns)
        codes, classes = emotion_codes(pd.Series(np.asarray(y, dtype=object)), self.reference)
        x = sm.add_constant(X[features].to_numpy(dtype=float), has_constant="add")
        if len(x) <= x.shape[1] * (len(classes) - 1):
            raise FitError(f"{len(x)} rows are too few for {x.shape[1] * (len(classes) - 1)} parameters")
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _MNLogit(codes, x).fit(method="newton", maxiter=100, disp=0)
        self.fit_seconds_ = time.perf_counter() - start
        self.features = features
        self.result_, self.codes_, self.exog_ = result, codes, x
        self.warnings_ = _fit_warnings(caught, result)
        params = pd.DataFrame(result.params, index=["const", *features], columns=classes[1:])
        self._set(classes, params, {"reference": self.reference, "n_rows": int(len(x))})
        return self

    def _set(self, classes: list[str], params: pd.DataFrame, metadata: dict) -> None:
        self.classes = classes
        self.params = params
        self.metadata = metadata
        self.classes_ = np.array([e for e in EMOTIONS if e in classes], dtype=object)

    @property
    def emotions(self) -> list[str]:
        return list(self.params.columns)

    def log_odds(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(n, J-1) log-odds of each non-reference emotion versus the reference."""
        x = sm.add_constant(self._matrix(rows), has_constant="add")
        return pd.DataFrame(x @ self.params.to_numpy(), index=rows.index, columns=self.params.columns)

    def explain(self, row: pd.Series) -> pd.DataFrame:
        """Per-term contributions of one face to each emotion's log-odds vs the reference.

        Returns:
            DataFrame indexed ``const`` and the features, one column per non-reference
            emotion: intercept, and coefficient x AU intensity. Each column sums exactly
            (to rounding) to that emotion's log-odds for the row.
        """
        values = np.concatenate([[1.0], row[self.features].to_numpy(dtype=float)])
        return self.params.mul(values, axis=0)

    def importance(self, rows: pd.DataFrame) -> pd.Series:
        """Mean |coefficient x intensity| over ``rows``, summed over emotions, per AU (largest first)."""
        x = np.abs(self._matrix(rows)).mean(axis=0)
        values = x * np.abs(self.params.drop(index="const").to_numpy()).sum(axis=1)
        return pd.Series(values, index=self.features).sort_values(ascending=False)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the model as JSON (no pickle): coefficients, classes, features, metadata."""
        write_json(
            path,
            {
                "format": MODEL_FORMAT,
                "features": self.features,
                "classes": self.classes,
                "reference": self.reference,
                "params": {c: self.params[c].to_dict() for c in self.params.columns},
                "metadata": self.metadata,
            },
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> AULogitModel:
        """Load a model written by ``to_json``; predictions are identical to the saved model's.

        Raises:
            ModelFileError: the file is unusable (see ``analysis.au_models.read_model_json``)
                or its fields are not a logit of this format: the reference not first among
                the classes, coefficients missing, null, non-numeric or of the wrong shape.
        """
        data = read_model_json(path, (MODEL_FORMAT,))
        f = Fields(path, data)
        features = f.names(f.get("features"), "features")
        reference = f.get("reference")
        if not isinstance(reference, str):
            raise f.error("reference must be an emotion name")
        classes = f.classes(f.get("classes"), reference)
        if classes[0] != reference:
            raise f.error(f"the reference {reference!r} must be the first of the classes")
        params = f.get("params")
        if not isinstance(params, dict) or sorted(params) != sorted(classes[1:]):
            raise f.error(f"params must hold one object per non-reference class ({', '.join(classes[1:])})")
        index = ["const", *features]
        columns = {}
        for emotion in classes[1:]:
            column = params[emotion]
            if not isinstance(column, dict) or sorted(column) != sorted(index):
                raise f.error(f"params of {emotion!r} must hold exactly 'const' and the features")
            columns[emotion] = [f.number(column[t], f"params of {emotion!r}, {t!r}") for t in index]
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise f.error("metadata must be an object")
        return cls.from_params(features, classes, pd.DataFrame(columns, index=index), metadata)

    def _matrix(self, rows: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in rows]
        if missing:
            raise KeyError(f"rows lack the model's AU column(s) {', '.join(missing)}")
        return rows[self.features].to_numpy(dtype=float)


@dataclass
class LogitFit:
    """Everything ``fit_logit`` computed, as DataFrames and dicts (statsmodels style).

    ``coefficients``: emotion, au, coef, se, z, p, ci_low, ci_high, odds_ratio,
    or_ci_low, or_ci_high (one row per non-reference emotion and term).
    ``marginal_effects``: emotion, au, dydx, se, z, p, ci_low, ci_high (every emotion).
    ``lr_tests``: au, lr_stat, df, p, p_holm, significant (model without that AU).
    Both are None when ``fit_logit(tests=False)``.
    ``vif``: au, vif. ``fit_stats``: log-likelihoods, pseudo-R², AIC, BIC, convergence.
    """

    model: AULogitModel
    coefficients: pd.DataFrame
    marginal_effects: pd.DataFrame | None
    lr_tests: pd.DataFrame | None
    vif: pd.DataFrame
    fit_stats: dict[str, Any]
    warnings: list[str]


def emotion_codes(labels: pd.Series, reference: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes with the reference emotion as 0, the others in ``EMOTIONS`` order.

    Raises:
        FitError: when the reference is absent or fewer than two classes remain.
    """
    present = [e for e in EMOTIONS if e in set(labels)]
    if reference not in present:
        raise FitError(f"reference category {reference!r} has no rows (classes present: {present})")
    classes = [reference, *[e for e in present if e != reference]]
    if len(classes) < 2:
        raise FitError("the data hold fewer than two emotion classes")
    codes = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    return codes, classes


def fit_logit(
    table: pd.DataFrame,
    features: list[str],
    reference: str = "neutral",
    n_jobs: int | None = None,
    progress: bool = False,
    tests: bool = True,
) -> LogitFit:
    """Fit the multinomial logit and compute its inference tables.

    Args:
        table: n rows with ``features`` (AU intensities 0-5) and ``label`` (six emotions).
        features: AU columns to use.
        reference: the base emotion of every log-odds.
        n_jobs: processes for the per-AU likelihood-ratio refits (joblib; -1 = all CPUs;
            None = all CPUs from 50,000 rows, else 1, where starting processes costs more).
        progress: show a progress bar over the refits.
        tests: compute the likelihood-ratio tests (one refit per AU) and the average
            marginal effects; without them ``lr_tests`` and ``marginal_effects`` are None
            (for callers that only need coefficients and fit statistics).

    Returns:
        A ``LogitFit``.

    Raises:
        FitError: too few classes, a missing reference, or fewer rows than parameters.
    """
    model = AULogitModel(list(features), reference).fit(table, table[LABEL])
    result, y, x, classes = model.result_, model.codes_, model.exog_, model.classes
    exog_names = ["const", *features]
    bse = pd.DataFrame(result.bse, index=exog_names, columns=classes[1:])
    coefficients = _coefficient_table(model.params, bse)

    marginal = lr = None
    if tests:
        ame, ame_se = average_marginal_effects(result.params, result.cov_params(), x)
        marginal = marginal_effects_table(ame, ame_se, exog_names, classes)
        lr = likelihood_ratio_tests(y, x, result, exog_names, n_jobs=n_jobs, progress=progress)
    vif = pd.DataFrame({"au": features, "vif": variance_inflation_factors(x[:, 1:])})

    stats_ = {
        "n_rows": int(len(x)),
        "n_params": int(result.params.size),
        "classes": classes,
        "reference": reference,
        **null_model_statistics(y, float(result.llf), int(result.df_model)),
        "aic": float(result.aic),
        "bic": float(result.bic),
        "converged": bool(result.mle_retvals.get("converged", False)),
        "iterations": int(result.mle_retvals.get("iterations", -1)),
        "fit_seconds": model.fit_seconds_,
    }
    model.metadata["pseudo_r2"] = stats_["pseudo_r2"]
    return LogitFit(model, coefficients, marginal, lr, vif, stats_, model.warnings_)


def auto_jobs(n_jobs: int | None, rows: int) -> int:
    """``n_jobs`` as given, or for ``None``: all CPUs (-1) from 50,000 rows, else 1."""
    if n_jobs is not None:
        return n_jobs
    return -1 if rows >= 50_000 else 1


def null_model_statistics(y: np.ndarray, llf: float, df_model: int) -> dict[str, float]:
    """llf, llnull, McFadden pseudo-R², LLR and its chi² p-value.

    The intercept-only multinomial model's maximum is closed-form, sum_j n_j log(n_j / n),
    so it is not refitted: statsmodels' ``MNLogitResults.llnull`` refits it and took 42 s at
    447,300 rows. Tested equal to statsmodels' ``llnull`` and ``prsquared``.
    McFadden (1974): pseudo-R² = 1 - llf / llnull.
    """
    counts = np.bincount(y)
    counts = counts[counts > 0]
    llnull = float(np.sum(counts * np.log(counts / counts.sum())))
    llr = 2.0 * (llf - llnull)
    return {
        "llf": llf,
        "llnull": llnull,
        "pseudo_r2": 1.0 - llf / llnull,
        "llr": llr,
        "llr_p": float(stats.chi2.sf(llr, df_model)),
    }


def likelihood_ratio_tests(
    y: np.ndarray,
    x: np.ndarray,
    full,
    exog_names: list[str],
    n_jobs: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Likelihood-ratio test of each covariate: the full model against the model without it.

    LR = 2 (llf_full - llf_without); df = number of non-reference classes; p from chi².
    The p-values are Holm-corrected over the covariates (``p_holm``; Holm 1979).
    Each restricted model starts from the full fit's quadratic approximation of its
    maximum, which saves Newton steps; refits run in ``n_jobs`` processes.
    """
    from tqdm.auto import tqdm

    df = full.params.shape[1]
    columns = list(range(1, x.shape[1]))
    cov = np.asarray(full.cov_params())
    jobs = (delayed(_restricted_llf)(y, x, full.params, cov, k) for k in columns)
    llfs = Parallel(n_jobs=auto_jobs(n_jobs, len(y)), return_as="generator")(jobs)
    if progress:
        llfs = tqdm(llfs, total=len(columns), desc="likelihood-ratio refits", unit="AU")
    llf = np.array(list(llfs))
    lr = np.clip(2 * (full.llf - llf), 0, None)
    p = stats.chi2.sf(lr, df)
    reject, p_holm, _, _ = multipletests(p, alpha=0.05, method="holm")
    return pd.DataFrame(
        {
            "au": [exog_names[k] for k in columns],
            "lr_stat": lr,
            "df": df,
            "p": p,
            "p_holm": p_holm,
            "significant": reject,
        }
    )


def variance_inflation_factors(x: np.ndarray) -> np.ndarray:
    """VIF of each column of ``x`` (n, k), each regressed on the others with an intercept.

    VIF_k = 1 / (1 - R²_k) is the k-th diagonal element of the inverse correlation matrix
    (e.g. Belsley, Kuh & Welsch 1980); one k x k inversion replaces k regressions over n
    rows (statsmodels' ``variance_inflation_factor`` took 20 s at 447,300 rows). Tested
    equal to statsmodels' function. A constant column gives ``inf``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(x, rowvar=False)
    if not np.all(np.isfinite(corr)):
        return np.where(np.isfinite(np.diag(corr)), np.nan, np.inf)
    try:
        return np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError:
        return np.full(x.shape[1], np.inf)


def _restricted_llf(y: np.ndarray, x: np.ndarray, params: np.ndarray, cov: np.ndarray, drop: int) -> float:
    """Log-likelihood of the model without exog column ``drop``.

    Newton starts from the quadratic approximation of the restricted maximum, the full
    estimate moved along its covariance so that the dropped coefficients are 0:
    b_R = b - V[:, d] V[d, d]^-1 b[d]. Convergence is on a 1e-6 parameter change, which
    leaves the log-likelihood exact to far below the LR statistic's reporting precision.
    """
    m, n_classes = params.shape
    theta = params.ravel(order="F")
    dropped = [c * m + drop for c in range(n_classes)]
    start = theta - cov[:, dropped] @ np.linalg.solve(cov[np.ix_(dropped, dropped)], theta[dropped])
    keep = [i for i in range(m) if i != drop]
    start = start.reshape(m, n_classes, order="F")[keep].ravel(order="F")
    model = _MNLogit(y, x[:, keep])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="newton", maxiter=100, tol=1e-6, disp=0, start_params=start)
        if not (fit.mle_retvals.get("converged") and np.isfinite(fit.llf)):
            fit = model.fit(method="newton", maxiter=100, disp=0)
    return float(fit.llf)


def _coefficient_table(params: pd.DataFrame, bse: pd.DataFrame) -> pd.DataFrame:
    long = params.stack().rename("coef").to_frame()
    long["se"] = bse.stack()
    long.index.names = ["au", "emotion"]
    out = long.reset_index()[["emotion", "au", "coef", "se"]]
    out["z"] = out["coef"] / out["se"]
    out["p"] = 2 * stats.norm.sf(out["z"].abs())
    out["ci_low"] = out["coef"] - Z95 * out["se"]
    out["ci_high"] = out["coef"] + Z95 * out["se"]
    out["odds_ratio"] = np.exp(out["coef"])
    out["or_ci_low"] = np.exp(out["ci_low"])
    out["or_ci_high"] = np.exp(out["ci_high"])
    order = {e: i for i, e in enumerate(params.columns)}
    return out.sort_values("emotion", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def _fit_warnings(caught, result) -> list[str]:
    notes = []
    if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
        notes.append("statsmodels reports perfect separation: some coefficients are not identified.")
    if any(issubclass(w.category, ConvergenceWarning) for w in caught) or not result.mle_retvals.get(
        "converged", False
    ):
        notes.append("the Newton fit did not converge; estimates and standard errors are unreliable.")
    big = np.abs(result.params[1:]).max() if result.params.shape[0] > 1 else 0.0
    if big > SEPARATION_COEF or not np.all(np.isfinite(result.bse)):
        notes.append(
            f"largest |coefficient| is {big:.1f} (odds ratio {np.exp(min(big, 700)):.3g} per unit): "
            "quasi-separation is likely; treat those odds ratios as unbounded."
        )
    return notes
