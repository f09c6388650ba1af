"""Choose a glass-box AU model by cross-validation, and check how stable its explanations are.

Selection uses the training rows only: scikit-learn's ``GridSearchCV`` over the candidates on
stratified k-fold CV, every candidate on the same folds, scored by the mean over folds of
accuracy and of macro-F1 (disgust is rare, so macro-F1 is reported beside accuracy
everywhere). The selected model is the one with the highest mean of the two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import partial_dependence
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate

from analysis.au_models import AUModel, BlackBox
from analysis.au_table import LABEL, au_code
from analysis.glassbox import GlassBox, ModelSpec, build

# AU intensity at which an AU's effect is read: FACS intensity C ("marked") is about 2-3 on
# OpenFace's 0-5 scale; the effect is the change in log-odds from 0 to this value.
EFFECT_INTENSITY = 2.0


def candidates(with_presences: bool, fast: bool = False) -> list[ModelSpec]:
    """The glass-box family tried (``fast``: a short list for tests)."""
    specs = [
        ModelSpec("logit", "logit", "plain multinomial logit on AU intensities", C=1e4),
        ModelSpec("logit_balanced", "logit", "the same with balanced class weights", C=1e4, balance=1.0),
        ModelSpec("logit_l1", "logit", "L1-penalised logit, half-balanced weights (terms: the non-zero ones)",
                  presences=with_presences, penalty="l1", C=0.02, balance=0.5),
        ModelSpec("logit_pairs", "logit", "logit with every AU-pair product (interactions), L2",
                  presences=with_presences, pairs=True, C=0.1),
        ModelSpec("gam", "logit", "spline AU effects (a GAM), L2",
                  presences=with_presences, splines=True, C=1.0),
        ModelSpec("gam_pairs", "logit", "spline AU effects and AU-pair products, L2",
                  presences=with_presences, splines=True, pairs=True, C=0.1),
        ModelSpec("gam_pairs_half", "logit", "spline AU effects and AU-pair products, half-balanced weights",
                  presences=with_presences, splines=True, pairs=True, C=0.1, balance=0.5),
        ModelSpec("ebm", "ebm", "Explainable Boosting Machine (InterpretML), AU shapes and 10 AU pairs",
                  presences=with_presences, ebm_interactions=10, balance=0.5,
                  extra={"n_jobs": 1, "ebm": {"outer_bags": 2}}),
    ]  # fmt: skip
    if fast:
        keep = {"logit", "logit_l1", "gam_pairs_half"}
        return [s for s in specs if s.key in keep]
    return specs


@dataclass
class Selection:
    """``table``: one row per candidate (key, family, description, cv_accuracy, cv_macro_f1,
    n_terms, fit_seconds) plus the black box; ``selected``: the chosen key; ``models``: every
    candidate fitted on all training rows; ``search``: the fitted ``GridSearchCV``."""

    table: pd.DataFrame
    selected: str
    models: dict[str, GlassBox]
    search: GridSearchCV


class Candidate(ClassifierMixin, BaseEstimator):
    """A glass-box candidate as a scikit-learn estimator, so that ``GridSearchCV`` can search
    over ``spec`` (the candidates differ in family, terms and penalty, not in one number).

    ``fit(X, y)`` builds ``analysis.glassbox.build(spec, intensities, presences, seed)`` and
    fits it; ``predict`` is that model's.
    """

    def __init__(self, spec: ModelSpec, intensities: list[str], presences: list[str], seed: int = 0):
        self.spec, self.intensities, self.presences, self.seed = spec, intensities, presences, seed

    def fit(self, X: pd.DataFrame, y) -> Candidate:
        start = time.perf_counter()
        self.model_ = build(self.spec, self.intensities, self.presences, self.seed).fit(X, y)
        self.fit_seconds_ = time.perf_counter() - start
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(X)


SCORING = {"accuracy": "accuracy", "macro_f1": "f1_macro"}


def mean_of_accuracy_and_macro_f1(cv_results: dict) -> int:
    """``GridSearchCV``'s ``refit`` rule: the candidate with the highest mean of the two CV scores."""
    return int(np.argmax(cv_results["mean_test_accuracy"] + cv_results["mean_test_macro_f1"]))


def select(
    train: pd.DataFrame,
    intensities: list[str],
    presences: list[str],
    specs: list[ModelSpec],
    folds: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
) -> Selection:
    """Cross-validate every spec (``GridSearchCV`` over ``spec``) and the black box on the
    same stratified folds; every candidate is then fitted on all of ``train``.

    Scores are scikit-learn's: the mean over folds of accuracy and of macro-F1. The selected
    candidate (``GridSearchCV.best_estimator_``, refitted on all rows) has the highest mean of
    the two; the black box (``BlackBox``) is scored on the same folds but is not selectable.
    """
    y = train[LABEL].to_numpy()
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(train, y))
    search = GridSearchCV(
        Candidate(specs[0], intensities, presences, seed),
        {"spec": specs},
        scoring=SCORING,
        refit=mean_of_accuracy_and_macro_f1,
        cv=splits,
        n_jobs=n_jobs,
    ).fit(train, y)
    box = cross_validate(BlackBox(intensities + presences, seed), train, y, cv=splits, scoring=SCORING,
                         n_jobs=n_jobs)  # fmt: skip
    selected = search.best_params_["spec"].key
    fitted, rows = {}, []
    for i, spec in enumerate(specs):
        if spec.key == selected:
            candidate = search.best_estimator_
        else:
            candidate = Candidate(spec, intensities, presences, seed).fit(train, y)
        fitted[spec.key] = candidate.model_
        rows.append(_row(spec.key, spec.family, spec.description, search.cv_results_["mean_test_accuracy"][i],
                         search.cv_results_["mean_test_macro_f1"][i], candidate.model_.n_terms,
                         candidate.fit_seconds_))  # fmt: skip
    rows.append(_row("black_box", "black box", "HistGradientBoosting on the same AUs (not selectable)",
                     box["test_accuracy"].mean(), box["test_macro_f1"].mean(), None, None))  # fmt: skip
    return Selection(pd.DataFrame(rows), str(selected), fitted, search)


def black_box(train: pd.DataFrame, columns: list[str], seed: int = 0) -> BlackBox:
    """The black box every glass-box is measured against, fitted on ``train``."""
    return BlackBox(columns, seed).fit(train, train[LABEL])


def _row(key, family, description, accuracy, macro_f1, n_terms, seconds) -> dict:
    return {
        "key": key,
        "family": family,
        "description": description,
        "cv_accuracy": float(accuracy),
        "cv_macro_f1": float(macro_f1),
        "n_terms": n_terms,
        "fit_seconds": seconds,
    }


def au_effects(
    model: AUModel,
    rows: pd.DataFrame,
    aus: list[str],
    ranges: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Effect of each AU on each emotion's log-odds vs neutral, model-agnostic.

    The partial-dependence difference (Friedman 2001; scikit-learn ``partial_dependence``,
    brute method, on ``decision_function``): mean over ``rows`` of log-odds with the AU at
    ``high`` and present, minus with the AU at ``low`` and absent, all other AUs as observed.
    For a plain logit it is the coefficient x (high - low); with splines, pairs or boosting
    it averages over the other AUs.

    Args:
        model: a fitted AU model (``analysis.au_models`` interface).
        rows: the faces averaged over (their AU columns).
        aus: codes such as ``AU12``.
        ranges: ``{AU code: (low, high)}`` intensities the effect is read between (see
            ``analysis.facs.effect_ranges``); an AU without one: 0 -> ``EFFECT_INTENSITY``.

    Returns:
        Long table ``emotion, au, low, high, effect`` (``au`` as ``AU12_r``), emotions in
        ``EMOTIONS`` order without the reference.
    """
    parts = []
    emotions = list(model.classes_)
    keep = [i for i, e in enumerate(emotions) if e != model.reference]
    for au in aus:
        low, high = (ranges or {}).get(au, (0.0, EFFECT_INTENSITY))
        columns = [c for c in (f"{au}_r", f"{au}_c") if c in rows]
        values = {f"{au}_r": [float(low), float(high)], f"{au}_c": [0.0, 1.0]}
        average = partial_dependence(
            model, rows, columns, custom_values={c: values[c] for c in columns},
            response_method="decision_function", method="brute", kind="average",
        )["average"]  # fmt: skip
        # (K, grid...) over the Cartesian grid: its first point is (low, absent), its last
        # (high, present); a grid of one point (low == high, no presence) gives 0.
        flat = average.reshape(len(emotions), -1)
        diff = flat[:, -1] - flat[:, 0]
        parts.append(
            pd.DataFrame(
                {"emotion": [emotions[i] for i in keep], "au": f"{au}_r", "low": float(low),
                 "high": float(high), "effect": diff[keep]}
            )
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def bootstrap_stability(
    spec: ModelSpec,
    full: GlassBox,
    train: pd.DataFrame,
    intensities: list[str],
    presences: list[str],
    n_resamples: int = 200,
    seed: int = 0,
    n_jobs: int = -1,
    effect_rows: int = 1000,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Refit the model on ``n_resamples`` bootstrap samples of ``train``; summarise each AU's effect.

    ``ranges``: as for :func:`au_effects` (the same ranges in every refit).

    Returns:
        One row per (emotion, AU): ``effect`` (full data), ``mean``, ``ci_low``, ``ci_high``
        (2.5/97.5 percentiles), ``same_sign`` (share of resamples with the full-data sign),
        ``flips`` (same_sign < 0.95: the explanation's direction is not stable), and
        ``rank_median``, ``rank_low``, ``rank_high`` (rank of the AU by |effect| within the
        emotion, 1 = largest; 2.5/97.5 percentiles).
    """
    aus = sorted({au_code(c) for c in intensities})
    probe = train.sample(min(effect_rows, len(train)), random_state=seed)
    reference = au_effects(full, probe, aus, ranges)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(train), len(train)) for _ in range(n_resamples)]
    effects = Parallel(n_jobs=n_jobs)(
        delayed(_resample_effects)(
            spec, full, train.iloc[d], intensities, presences, probe, aus, seed, ranges
        )
        for d in draws
    )
    stacked = np.stack([e["effect"].to_numpy() for e in effects])  # (B, emotions x AUs)
    out = reference.copy()
    out["mean"] = stacked.mean(axis=0)
    out["ci_low"], out["ci_high"] = np.percentile(stacked, [2.5, 97.5], axis=0)
    out["same_sign"] = (np.sign(stacked) == np.sign(reference["effect"].to_numpy())).mean(axis=0)
    out["flips"] = out["same_sign"] < 0.95
    ranks = np.stack([_ranks(e) for e in effects])
    out["rank_median"] = np.median(ranks, axis=0)
    out["rank_low"], out["rank_high"] = np.percentile(ranks, [2.5, 97.5], axis=0)
    return out


def _resample_effects(spec, full, rows, intensities, presences, probe, aus, seed, ranges) -> pd.DataFrame:
    model = build(spec, intensities, presences, seed).fit(
        rows, rows[LABEL], warm_start=full if spec.family == "logit" else None
    )
    return au_effects(model, probe, aus, ranges)


def _ranks(effects: pd.DataFrame) -> np.ndarray:
    return effects.groupby("emotion")["effect"].transform(lambda e: e.abs().rank(ascending=False)).to_numpy()
