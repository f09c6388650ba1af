"""Choose a glass-box AU model by cross-validation, and check how stable its explanations are.

Selection uses the training rows only: stratified k-fold CV (scikit-learn), every candidate on
the same folds, scored by accuracy and macro-F1 (disgust is rare, so macro-F1 is reported
beside accuracy everywhere). The selected model is the one with the highest mean of the two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

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
        ModelSpec("logit_l1", "logit", "L1-penalised logit (a short list of AUs), half-balanced weights",
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
    candidate fitted on all training rows; ``cv_predictions``: out-of-fold labels per key."""

    table: pd.DataFrame
    selected: str
    models: dict[str, GlassBox]
    cv_predictions: pd.DataFrame


def select(
    train: pd.DataFrame,
    intensities: list[str],
    presences: list[str],
    specs: list[ModelSpec],
    folds: int = 5,
    seed: int = 0,
    n_jobs: int = -1,
) -> Selection:
    """Cross-validate every spec and a ``HistGradientBoostingClassifier`` on the same folds."""
    y = train[LABEL].to_numpy()
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(train, y))
    black_box_columns = intensities + presences
    jobs = [(spec, i) for spec in specs for i in range(folds)] + [(None, i) for i in range(folds)]
    results = Parallel(n_jobs=n_jobs)(
        delayed(_fold)(spec, train, splits[i], intensities, presences, black_box_columns, seed)
        for spec, i in jobs
    )
    oof = pd.DataFrame(index=train.index)
    for (spec, i), labels in zip(jobs, results, strict=True):
        key = spec.key if spec else "black_box"
        if key not in oof:
            oof[key] = ""
        oof.iloc[splits[i][1], oof.columns.get_loc(key)] = labels
    fitted, rows = {}, []
    for spec in specs:
        start = time.perf_counter()
        fitted[spec.key] = build(spec, intensities, presences, seed).fit(train)
        rows.append(_row(spec.key, spec.family, spec.description, y, oof[spec.key], fitted[spec.key].n_terms,
                         time.perf_counter() - start))  # fmt: skip
    rows.append(_row("black_box", "black box", "HistGradientBoosting on the same AUs (not selectable)", y,
                     oof["black_box"], None, None))  # fmt: skip
    table = pd.DataFrame(rows)
    glass = table[table["key"] != "black_box"]
    selected = glass.loc[(glass["cv_accuracy"] + glass["cv_macro_f1"]).idxmax(), "key"]
    return Selection(table, str(selected), fitted, oof)


def black_box(train: pd.DataFrame, columns: list[str], seed: int = 0) -> HistGradientBoostingClassifier:
    """The black box every glass-box is measured against (scikit-learn defaults, fixed seed)."""
    return HistGradientBoostingClassifier(random_state=seed).fit(
        train[columns].to_numpy(dtype=float), train[LABEL]
    )


def _fold(spec, train, split, intensities, presences, black_box_columns, seed):
    fit_rows, test_rows = train.iloc[split[0]], train.iloc[split[1]]
    if spec is None:
        return black_box(fit_rows, black_box_columns, seed).predict(
            test_rows[black_box_columns].to_numpy(dtype=float)
        )
    return build(spec, intensities, presences, seed).fit(fit_rows).predict(test_rows)


def _row(key, family, description, y, pred, n_terms, seconds) -> dict:
    return {
        "key": key,
        "family": family,
        "description": description,
        "cv_accuracy": float(accuracy_score(y, pred)),
        "cv_macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "n_terms": n_terms,
        "fit_seconds": seconds,
    }


def au_effects(model: GlassBox, rows: pd.DataFrame, aus: list[str]) -> pd.DataFrame:
    """Effect of each AU on each emotion's log-odds vs neutral, model-agnostic.

    The mean over ``rows`` of log-odds(AU at ``EFFECT_INTENSITY``, present) - log-odds(AU at 0,
    absent), all other AUs as observed (a partial-dependence difference; Friedman 2001). For a
    plain logit it is the coefficient x 2; with splines, pairs or boosting it averages over
    the other AUs. ``aus``: codes such as ``AU12``.

    Returns:
        Long table ``emotion, au, effect`` (``au`` as ``AU12_r``).
    """
    parts = []
    for au in aus:
        high, low = rows.copy(), rows.copy()
        for column, (h, lo) in ((f"{au}_r", (EFFECT_INTENSITY, 0.0)), (f"{au}_c", (1.0, 0.0))):
            if column in rows:
                high[column], low[column] = h, lo
        diff = (model.log_odds(high) - model.log_odds(low)).mean()
        parts.append(pd.DataFrame({"emotion": diff.index, "au": f"{au}_r", "effect": diff.to_numpy()}))
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
) -> pd.DataFrame:
    """Refit the model on ``n_resamples`` bootstrap samples of ``train``; summarise each AU's effect.

    Returns:
        One row per (emotion, AU): ``effect`` (full data), ``mean``, ``ci_low``, ``ci_high``
        (2.5/97.5 percentiles), ``same_sign`` (share of resamples with the full-data sign),
        ``flips`` (same_sign < 0.95: the explanation's direction is not stable), and
        ``rank_median``, ``rank_low``, ``rank_high`` (rank of the AU by |effect| within the
        emotion, 1 = largest; 2.5/97.5 percentiles).
    """
    aus = sorted({au_code(c) for c in intensities})
    probe = train.sample(min(effect_rows, len(train)), random_state=seed)
    reference = au_effects(full, probe, aus)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(train), len(train)) for _ in range(n_resamples)]
    effects = Parallel(n_jobs=n_jobs)(
        delayed(_resample_effects)(spec, full, train.iloc[d], intensities, presences, probe, aus, seed)
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


def _resample_effects(spec, full, rows, intensities, presences, probe, aus, seed) -> pd.DataFrame:
    model = build(spec, intensities, presences, seed).fit(
        rows, warm_start=full if spec.family == "logit" else None
    )
    return au_effects(model, probe, aus)


def _ranks(effects: pd.DataFrame) -> np.ndarray:
    return effects.groupby("emotion")["effect"].transform(lambda e: e.abs().rank(ascending=False)).to_numpy()
