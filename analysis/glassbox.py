"""Glass-box AU models: every prediction is a sum of per-term contributions a person can read.

Two families share one interface (``fit``, ``predict_proba``, ``log_odds``,
``term_contributions``, ``explain``, ``n_terms``), with log-odds taken against the reference
emotion (neutral) as in the plain logit:

- ``AdditiveLogit``: a multinomial logistic regression (scikit-learn) over additive terms
  (``analysis.terms``): linear or spline AU effects (a GAM), AU presences, AU-pair products;
  L2 or L1 penalty, optional class weights (Hastie & Tibshirani 1990, *Generalized Additive
  Models*; Hastie, Tibshirani & Friedman 2009, *Elements of Statistical Learning*, ch. 4-5).
- ``EBMModel``: InterpretML's Explainable Boosting Machine (Lou, Caruana, Gehrke & Hooker
  2013, "Accurate intelligible models with pairwise interactions", KDD; Nori et al. 2019,
  arXiv 1909.09223): boosted shape functions per AU and per detected AU pair.

For both, ``log_odds = intercept + sum(term_contributions)`` exactly (tested to 1e-6).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_sample_weight

from analysis.au_table import LABEL
from analysis.labels import EMOTIONS
from analysis.terms import Term, TermDesign, make_terms

REFERENCE = "neutral"


@dataclass
class ModelSpec:
    """A candidate: ``family`` (``logit`` or ``ebm``) and its settings."""

    key: str
    family: str
    description: str
    intensities: bool = True
    presences: bool = False
    splines: bool = False
    pairs: bool = False
    penalty: str = "l2"
    C: float = 1.0
    balance: float = 0.0  # class weights (n / (K n_k)) ** balance: 0 none, 1 "balanced"
    ebm_interactions: int = 0
    extra: dict = field(default_factory=dict)


class GlassBox:
    """Shared behaviour; subclasses set ``classes``, ``term_names``, ``intercepts`` and
    implement ``fit`` and ``term_contributions``."""

    classes: list[str]
    term_names: list[str]
    intercepts: np.ndarray  # (K-1,) log-odds intercept of each non-reference emotion

    @property
    def emotions(self) -> list[str]:
        """Non-reference emotions, the columns of ``log_odds``."""
        return [c for c in self.classes if c != REFERENCE]

    def term_contributions(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, n_terms, K-1) contribution of each term to each emotion's log-odds vs neutral."""
        raise NotImplementedError

    def log_odds(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(n, K-1) log-odds vs neutral: intercept + the sum of the term contributions."""
        values = self.term_contributions(rows).sum(axis=1) + self.intercepts
        return pd.DataFrame(values, index=rows.index, columns=self.emotions)

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(n, 6) probabilities in ``EMOTIONS`` order (softmax of the log-odds, neutral at 0)."""
        eta = self.log_odds(rows)
        eta.insert(0, REFERENCE, 0.0)
        values = eta.to_numpy()
        values = np.exp(values - values.max(axis=1, keepdims=True))
        prob = pd.DataFrame(values / values.sum(axis=1, keepdims=True), index=rows.index, columns=eta.columns)
        return prob.reindex(columns=[e for e in EMOTIONS if e in prob], fill_value=0.0)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(rows).idxmax(axis=1).to_numpy()

    def explain(self, row: pd.Series) -> pd.DataFrame:
        """One face: rows ``const`` and every term, one column per non-reference emotion.

        Each column sums exactly to that emotion's log-odds vs neutral for the face.
        """
        parts = self.term_contributions(row.to_frame().T)[0]
        table = pd.DataFrame(parts, index=self.term_names, columns=self.emotions)
        return pd.concat([pd.DataFrame([self.intercepts], index=["const"], columns=self.emotions), table])

    def importance(self, rows: pd.DataFrame) -> pd.Series:
        """Global importance: mean |contribution| over ``rows``, summed over emotions, per term."""
        values = np.abs(self.term_contributions(rows)).mean(axis=0).sum(axis=1)
        return pd.Series(values, index=self.term_names).sort_values(ascending=False)

    @property
    def n_terms(self) -> int:
        """Terms a reader has to look at (terms with a non-zero effect)."""
        return len(self.term_names)


class AdditiveLogit(GlassBox):
    """Multinomial logistic regression over additive AU terms (see the module docstring)."""

    def __init__(self, spec: ModelSpec, terms: list[Term], seed: int = 0):
        self.spec, self.terms, self.seed = spec, terms, seed
        self.term_names = [t.name for t in terms]

    def fit(self, rows: pd.DataFrame, warm_start: AdditiveLogit | None = None) -> AdditiveLogit:
        self.design = TermDesign(self.terms).fit(rows)
        x = self.design.transform(rows)
        y = rows[LABEL].to_numpy()
        solver = "saga" if self.spec.penalty == "l1" else "lbfgs"
        model = LogisticRegression(
            C=self.spec.C,
            l1_ratio=1.0 if self.spec.penalty == "l1" else 0.0,
            solver=solver,
            class_weight=class_weights(y, self.spec.balance),
            max_iter=5000,
            # A bootstrap refit starts from the full-data solution and may stop earlier.
            tol=1e-6 if solver == "saga" else (1e-3 if warm_start is not None else 1e-4),
            random_state=self.seed,
            warm_start=warm_start is not None,
        )
        if warm_start is not None:
            model.coef_, model.intercept_ = warm_start.model.coef_.copy(), warm_start.model.intercept_.copy()
            model.classes_ = warm_start.model.classes_
        self.model = model.fit(x, y)
        self.classes = list(model.classes_)
        ref = self.classes.index(REFERENCE)
        others = [i for i, c in enumerate(self.classes) if c != REFERENCE]
        self.weights = model.coef_[others] - model.coef_[ref]  # (K-1, p) log-odds vs neutral
        self.intercepts = model.intercept_[others] - model.intercept_[ref]
        return self

    def term_contributions(self, rows: pd.DataFrame) -> np.ndarray:
        x = self.design.transform(rows)
        return np.stack([x[:, block] @ self.weights[:, block].T for block in self.design.blocks], axis=1)

    @property
    def n_terms(self) -> int:
        return int(sum(np.any(self.weights[:, block] != 0) for block in self.design.blocks))

    @property
    def n_parameters(self) -> int:
        """Non-zero log-odds weights and intercepts."""
        return int(np.count_nonzero(self.weights) + self.intercepts.size)


class EBMModel(GlassBox):
    """InterpretML ``ExplainableBoostingClassifier`` on AU columns (class weights optional)."""

    def __init__(self, spec: ModelSpec, features: list[str], seed: int = 0):
        self.spec, self.features, self.seed = spec, features, seed

    def fit(self, rows: pd.DataFrame, warm_start=None) -> EBMModel:
        from interpret.glassbox import ExplainableBoostingClassifier

        y = rows[LABEL].to_numpy()
        weights = compute_sample_weight(class_weights(y, self.spec.balance), y)
        model = ExplainableBoostingClassifier(
            feature_names=self.features,
            interactions=self.spec.ebm_interactions,
            random_state=self.seed,
            n_jobs=self.spec.extra.get("n_jobs", -1),
            **self.spec.extra.get("ebm", {}),
        )
        with warnings.catch_warnings():  # about interpret's own plots of pair terms, not the model
            warnings.filterwarnings("ignore", message="For multiclass we cannot currently visualize pairs")
            self.model = model.fit(rows[self.features].to_numpy(dtype=float), y, sample_weight=weights)
        self.classes = [str(c) for c in self.model.classes_]
        self.term_names = [str(n).replace(" & ", " x ") for n in self.model.term_names_]
        ref = self.classes.index(REFERENCE)
        self._others = [i for i, c in enumerate(self.classes) if c != REFERENCE]
        self._ref = ref
        self.intercepts = self.model.intercept_[self._others] - self.model.intercept_[ref]
        return self

    @property
    def n_parameters(self) -> int:
        """Values in the shape-function tables (one per bin and class) and the intercepts."""
        return int(sum(np.size(t) for t in self.model.term_scores_) + self.model.intercept_.size)

    def term_contributions(self, rows: pd.DataFrame) -> np.ndarray:
        scores = self.model.eval_terms(rows[self.features].to_numpy(dtype=float))  # (n, terms, K)
        return scores[:, :, self._others] - scores[:, :, [self._ref]]


def class_weights(y: np.ndarray, balance: float) -> dict[str, float] | None:
    """Weight of each class, ``(n / (K n_k)) ** balance``: 1 is scikit-learn's "balanced",
    0 no weighting, in between a partial correction for rare emotions such as disgust."""
    if balance == 0:
        return None
    labels, counts = np.unique(y, return_counts=True)
    return {
        label: float((len(y) / (len(labels) * count)) ** balance)
        for label, count in zip(labels, counts, strict=True)
    }


def build(spec: ModelSpec, intensities: list[str], presences: list[str], seed: int = 0) -> GlassBox:
    """An unfitted model of ``spec`` over the given AU columns."""
    if spec.family == "ebm":
        return EBMModel(spec, intensities + (presences if spec.presences else []), seed)
    terms = make_terms(intensities, presences if spec.presences else [], spec.splines, spec.pairs)
    return AdditiveLogit(spec, terms, seed)
