"""Glass-box AU models: every prediction is a sum of per-term contributions a person can read.

Two families share the AU-model interface of ``analysis.au_models`` (``fit(X, y)``,
``predict_proba`` in ``EMOTIONS`` order, ``predict``, ``log_odds``, ``explain``, ``importance``)
plus ``term_contributions`` and ``n_terms``, with log-odds taken against the reference emotion
(neutral) as in the plain logit:

- ``AdditiveLogit``: a multinomial logistic regression (scikit-learn) over additive terms
  (``analysis.terms``): linear or spline AU effects (a GAM), AU presences, AU-pair products;
  L2 or L1 penalty, optional class weights (Hastie & Tibshirani 1990, *Generalized Additive
  Models*; Hastie, Tibshirani & Friedman 2009, *Elements of Statistical Learning*, ch. 4-5).
- ``EBMModel``: InterpretML's Explainable Boosting Machine (Lou, Caruana, Gehrke & Hooker
  2013, "Accurate intelligible models with pairwise interactions", KDD; Nori et al. 2019,
  arXiv 1909.09223): boosted shape functions per AU and per detected AU pair.

For both, ``log_odds = intercept + sum(term_contributions)`` exactly, and the probabilities
are the library's own (tested). ``AdditiveLogit`` is saved as JSON and loaded with identical
predictions; an EBM is saved as its settings and refitted (see ``EBMModel``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.fixes import parse_version

from analysis.au_models import REFERENCE, AUModel, Fields, emotion_order, read_model_json
from analysis.files import write_json
from analysis.terms import Term, TermDesign, make_terms

ADDITIVE_FORMAT = "au-workbench/additive-logit/1"
EBM_SPEC_FORMAT = "au-workbench/ebm-spec/1"
TERM_KINDS = ("linear", "spline", "product")


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


class GlassBox(AUModel):
    """Shared behaviour of the additive models (the ``analysis.au_models`` interface).

    Subclasses set ``classes_``, ``term_names`` and ``intercepts`` in ``fit`` and implement
    ``term_contributions``.
    """

    term_names: list[str]
    intercepts: np.ndarray  # (K-1,) log-odds intercept of each non-reference emotion

    @property
    def classes(self) -> list[str]:
        """Emotions in ``EMOTIONS`` order (``classes_`` as a list)."""
        return list(self.classes_)

    def term_contributions(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, n_terms, K-1) contribution of each term to each emotion's log-odds vs neutral."""
        raise NotImplementedError

    def log_odds(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(n, K-1) log-odds vs neutral: intercept + the sum of the term contributions."""
        values = self.term_contributions(rows).sum(axis=1) + self.intercepts
        return pd.DataFrame(values, index=rows.index, columns=self.emotions)

    def explain(self, row: pd.Series) -> pd.DataFrame:
        """One face: rows ``const`` and every term, one column per non-reference emotion.

        Each column sums exactly (to rounding) to that emotion's log-odds vs neutral.
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

    def _set_classes(self, library_classes: np.ndarray, ref: str = REFERENCE) -> tuple[list[int], int]:
        """``classes_`` in ``EMOTIONS`` order; returns the library's indices of them and of ``ref``."""
        library = [str(c) for c in library_classes]
        self.classes_ = emotion_order(library)
        if ref not in library:
            raise ValueError(f"the training rows hold no {ref!r} face, the reference of every log-odds")
        return [library.index(c) for c in self.classes_ if c != ref], library.index(ref)


def l1_ratio_kwargs(penalty: str) -> dict[str, object]:
    """``LogisticRegression`` arguments that select ``penalty`` (``"l1"`` or ``"l2"``) on this
    scikit-learn: from 1.8 ``l1_ratio`` alone decides (``penalty`` is deprecated, removed in 1.10);
    before it, ``l1_ratio`` is ignored unless ``penalty="elasticnet"``, so the penalty is named."""
    if penalty not in ("l1", "l2"):
        raise ValueError(f"unknown penalty {penalty!r}; use l1 or l2")
    if parse_version(sklearn.__version__).release >= (1, 8):
        return {"l1_ratio": 1.0 if penalty == "l1" else 0.0}
    return {"penalty": penalty}


class AdditiveLogit(GlassBox):
    """Multinomial logistic regression over additive AU terms (see the module docstring).

    Saved as JSON by ``to_json`` and loaded by ``load_glassbox`` with identical predictions.
    """

    def __init__(self, spec: ModelSpec, terms: list[Term], seed: int = 0):
        self.spec, self.terms, self.seed = spec, terms, seed

    @property
    def term_names(self) -> list[str]:
        return [t.name for t in self.terms]

    def fit(self, rows: pd.DataFrame, y, warm_start: AdditiveLogit | None = None) -> AdditiveLogit:
        """Fit on ``rows`` (the terms' AU columns) and ``y`` (n,) emotion names; ``warm_start``:
        a model of the same spec whose solution starts the solver (bootstrap refits)."""
        self.design = TermDesign(self.terms).fit(rows)
        x = self.design.transform(rows)
        y = np.asarray(y, dtype=object)
        solver = "saga" if self.spec.penalty == "l1" else "lbfgs"
        model = LogisticRegression(
            C=self.spec.C,
            **l1_ratio_kwargs(self.spec.penalty),
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
        others, ref = self._set_classes(model.classes_)
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

    def to_json(self, path: str | os.PathLike[str], metadata: dict | None = None) -> None:
        """Write the fitted model as JSON (no pickle): spec, terms, the design's spline knots,
        centres and scales, the log-odds weights (K-1, p) and intercepts vs neutral."""
        write_json(
            path,
            {
                "format": ADDITIVE_FORMAT,
                "spec": asdict(self.spec),
                "seed": self.seed,
                "classes": list(self.classes_),
                "reference": REFERENCE,
                "terms": [{"columns": list(t.columns), "kind": t.kind} for t in self.terms],
                "knots": self.design.knots,
                "center": self.design.center_.tolist(),
                "scale": self.design.scale_.tolist(),
                "weights": {e: self.weights[i].tolist() for i, e in enumerate(self.emotions)},
                "intercepts": {e: float(self.intercepts[i]) for i, e in enumerate(self.emotions)},
                "metadata": metadata or {},
            },
        )


class EBMModel(GlassBox):
    """InterpretML ``ExplainableBoostingClassifier`` on AU columns (class weights optional).

    Not saved as a fitted model: InterpretML 0.7 writes an EBM as JSON (``to_json``) but reads
    it back only through a private, "UNTESTED" function, so ``to_json`` here saves the spec,
    features and seed, and ``load_glassbox`` returns an unfitted model that the caller refits
    (deterministic for a fixed seed and the same rows).
    """

    def __init__(self, spec: ModelSpec, features: list[str], seed: int = 0):
        self.spec, self.features, self.seed = spec, features, seed

    def fit(self, rows: pd.DataFrame, y, warm_start=None) -> EBMModel:
        from interpret.glassbox import ExplainableBoostingClassifier

        y = np.asarray(y, dtype=object)
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
        self.term_names = [str(n).replace(" & ", " x ") for n in self.model.term_names_]
        self._others, self._ref = self._set_classes(self.model.classes_)
        self.intercepts = self.model.intercept_[self._others] - self.model.intercept_[self._ref]
        return self

    @property
    def n_parameters(self) -> int:
        """Values in the shape-function tables (one per bin and class) and the intercepts."""
        return int(sum(np.size(t) for t in self.model.term_scores_) + self.model.intercept_.size)

    def term_contributions(self, rows: pd.DataFrame) -> np.ndarray:
        scores = self.model.eval_terms(rows[self.features].to_numpy(dtype=float))  # (n, terms, K)
        return scores[:, :, self._others] - scores[:, :, [self._ref]]

    def to_json(self, path: str | os.PathLike[str], metadata: dict | None = None) -> None:
        """Write the spec, features and seed as JSON: loading it refits (see the class docstring)."""
        write_json(
            path,
            {
                "format": EBM_SPEC_FORMAT,
                "spec": asdict(self.spec),
                "seed": self.seed,
                "features": list(self.features),
                "note": "an EBM is saved as its settings; the loader refits it on the same rows",
                "metadata": metadata or {},
            },
        )


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


def load_glassbox(path: str | os.PathLike[str]) -> GlassBox:
    """Load a glass-box model written by ``AdditiveLogit.to_json`` or ``EBMModel.to_json``.

    Returns:
        A fitted ``AdditiveLogit`` (predictions identical to the saved model's), or an
        unfitted ``EBMModel`` of the saved settings (``is_fitted`` False: refit it).
        ``model.metadata`` holds the file's metadata.

    Raises:
        ModelFileError: the file is unusable (``read_model_json``) or its fields are wrong:
            missing, null or non-numeric parameters, unknown emotions or term kinds, or
            shapes that do not fit together (weights vs design columns, knots, scales).
    """
    data = read_model_json(path, (ADDITIVE_FORMAT, EBM_SPEC_FORMAT))
    f = Fields(path, data)
    spec = _spec(f)
    seed = f.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise f.error("seed must be an integer")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise f.error("metadata must be an object")
    if data["format"] == EBM_SPEC_FORMAT:
        if spec.family != "ebm":
            raise f.error(f"an EBM file holds a spec of family {spec.family!r}")
        model: GlassBox = EBMModel(spec, f.names(f.get("features"), "features"), seed)
        model.metadata = metadata
        return model
    if spec.family != "logit":
        raise f.error(f"an additive-logit file holds a spec of family {spec.family!r}")
    classes = f.classes(f.get("classes"), REFERENCE)
    if classes != [e for e in emotion_order(classes)]:
        raise f.error("classes must be in the workbench's emotion order")
    terms = _terms(f, f.get("terms"))
    knots_field = f.get("knots")
    spline_columns = sorted({t.columns[0] for t in terms if t.kind == "spline"})
    if not isinstance(knots_field, dict) or sorted(knots_field) != spline_columns:
        raise f.error("knots must hold one list per spline column")
    knots = {}
    for column, values in knots_field.items():
        k = f.numbers(values, f"knots of {column!r}")
        if len(k) < 2 or np.any(np.diff(k) <= 0):
            raise f.error(f"knots of {column!r} must be at least 2 increasing numbers")
        knots[column] = k
    center = f.numbers(f.get("center"), "center")
    scale = f.numbers(f.get("scale"), "scale", len(center))
    if np.any(scale <= 0):
        raise f.error("every scale must be positive")
    design = TermDesign.fitted(terms, knots, center, scale)
    width = design.blocks[-1].stop
    if width != len(center):
        raise f.error(f"center has {len(center)} values but the terms make {width} design columns")
    emotions = [c for c in classes if c != REFERENCE]
    weights_field, intercepts_field = f.get("weights"), f.get("intercepts")
    for name, value in (("weights", weights_field), ("intercepts", intercepts_field)):
        if not isinstance(value, dict) or sorted(value) != sorted(emotions):
            raise f.error(f"{name} must hold one entry per non-reference class ({', '.join(emotions)})")
    model = AdditiveLogit(spec, terms, seed)
    model.design = design
    model.weights = np.stack([f.numbers(weights_field[e], f"weights of {e!r}", width) for e in emotions])
    model.intercepts = np.array([f.number(intercepts_field[e], f"intercept of {e!r}") for e in emotions])
    model.classes_ = np.array(classes, dtype=object)
    model.metadata = metadata
    return model


def _spec(f: Fields) -> ModelSpec:
    raw = f.get("spec")
    if not isinstance(raw, dict):
        raise f.error("spec must be an object")
    known = {x.name: x for x in fields(ModelSpec)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise f.error(f"unknown spec field(s) {', '.join(unknown)}")
    types = {"key": str, "family": str, "description": str, "penalty": str, "extra": dict}
    for name, value in raw.items():
        expected = types.get(name)
        if expected is not None and not isinstance(value, expected):
            raise f.error(f"spec field {name!r} must be a {expected.__name__}")
        if name in ("intensities", "presences", "splines", "pairs") and not isinstance(value, bool):
            raise f.error(f"spec field {name!r} must be true or false")
        if name in ("C", "balance"):
            f.number(value, f"spec field {name!r}")
        if name == "ebm_interactions" and (isinstance(value, bool) or not isinstance(value, int)):
            raise f.error("spec field 'ebm_interactions' must be an integer")
    for name in ("key", "family", "description"):
        f.get(name, raw)
    extra = raw.get("extra", {})
    if sorted(set(extra) - {"n_jobs", "ebm"}) or not isinstance(extra.get("ebm", {}), dict):
        raise f.error("spec field 'extra' may hold only 'n_jobs' and an 'ebm' object")
    for name, value in extra.get("ebm", {}).items():
        f.number(value, f"EBM setting {name!r}")
    spec = ModelSpec(**raw)
    if spec.family not in ("logit", "ebm") or spec.penalty not in ("l1", "l2") or spec.C <= 0:
        raise f.error("spec: family must be logit or ebm, penalty l1 or l2, C positive")
    return spec


def _terms(f: Fields, raw: object) -> list[Term]:
    if not isinstance(raw, list) or not raw:
        raise f.error("terms must be a non-empty list")
    terms = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise f.error(f"term {i} must be an object")
        kind = f.get("kind", item)
        columns = f.names(f.get("columns", item), f"columns of term {i}")
        if kind not in TERM_KINDS or len(columns) != (2 if kind == "product" else 1):
            raise f.error(f"term {i}: kind one of {', '.join(TERM_KINDS)}, with 1 column (2 for a product)")
        terms.append(Term(tuple(columns), kind))
    return terms
