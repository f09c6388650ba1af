"""Counterfactuals of one face: the smallest change of AU intensities that changes the emotion.

"Lower AU04 (brow lowerer) by 1.30 and it reads neutral": for a fitted AU model (the
``analysis.au_models`` interface) and one face, ``nearest_counterfactual`` finds the change
Δ of the face's AU intensities (OpenFace's 0-5 scale) with the smallest L1 norm
sum_j |Δ_j| such that

- every changed intensity stays within per-AU bounds (the caller passes the range seen in
  training; it is always intersected with 0-5), and
- the model's most probable emotion for the changed face is another one (``target``, or the
  nearest of all other emotions).

This is the counterfactual explanation of Wachter, Mittelstadt & Russell (2017,
"Counterfactual explanations without opening the black box: automated decisions and the
GDPR", Harvard Journal of Law & Technology 31(2)): the closest point on the other side of
the decision boundary, with a distance a person can read.

Why L1: every AU shares one unit (an intensity step on 0-5), so sum |Δ_j| is "how many
intensity steps in total"; and L1 makes the answer sparse: few AUs change, which is what
makes the sentence readable. (For a linear model, an optimal vertex of the linear
programme below has at most K-1 = 5 AUs changed to a value strictly inside their bounds.)

Exact for models linear in the AU intensities, the AU logit ``analysis.logit.AULogitModel``
and an ``analysis.glassbox.AdditiveLogit`` whose terms are all ``linear``: the log-odds of
class k versus neutral are eta_k(x) = alpha_k + beta_k . x, so reaching target t with a margin
m is the linear programme (Ustun, Spangher & Liu 2019, "Actionable Recourse in Linear
Classification", FAT* '19, continuous actions; here without their integer costs)

    minimise   sum_j (Δ⁺_j + Δ⁻_j)              Δ = Δ⁺ - Δ⁻,  Δ⁺, Δ⁻ >= 0
    subject to (beta_t - beta_k) . Δ >= m - (eta_t(x) - eta_k(x))   for every class k != t
               lower - x <= Δ <= upper - x,

solved by HiGHS (``scipy.optimize.linprog(method="highs")``; Huangfu & Hall 2018,
"Parallelizing the dual revised simplex method", Mathematical Programming Computation 10),
one programme per candidate target, the smallest kept. The slopes beta are read from the
model's own parameters (``AULogitModel.params``; ``AdditiveLogit.weights`` divided by its
design's ``scale_``); the offsets come from the model's own ``decision_function`` at the
face, so columns held fixed enter exactly.

Every other model (splines, AU pairs, EBM, the boosting black box) gets a bounded search,
``exact=False``: (1) every single AU on a 0.05 grid within its bounds; (2) pairs of the 6
AUs whose single changes moved the decision most, each in the direction (raise or lower)
that moved it most, on a 0.25 grid; (3) the best one- and two-AU changes are shrunk on a
0.01 grid (per round, the shortest still-reaching reduction of one AU); (4) only if (1) and
(2) reach nothing, a greedy coordinate ascent of the target's log-odds margin (one AU per
step on a 0.25 grid, at most 2 steps per AU), shrunk the same way. All candidates are
evaluated in batches by the model's own ``decision_function`` (about 10 batches a face).
Sparse search over few features is the idea of Growing Spheres' feature-selection step
(Laugel, Lesot, Marsala, Renard & Detyniecki 2018, "Comparison-Based Inverse Classification
for Interpretability in Machine Learning", IPMU); the grid here is exhaustive for one AU and
coarse for two, so the result is near-minimal, not proven minimal. On the seed data the
search applied to the logit (whose optimum the LP knows) came within 1% of it in the median
(17% at worst over 40 faces).

Presence columns (``AUxx_c``, OpenFace's binary detections) are held fixed at the face's
values; only intensity columns change (passing a ``_c`` column in ``features`` is an
error), so a changed face may pair a raised intensity with a presence still 0, exactly as
the model would see such a face. Every returned counterfactual is checked with the model's own ``predict``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from analysis.au_models import AUModel
from analysis.au_table import AU_NAMES, INTENSITY_RANGE, au_code

# Search grids, in AU intensity units (0-5 scale).
SINGLE_STEP = 0.05
PAIR_STEP = 0.25
PAIR_AUS = 6
REFINE_STEP = 0.01
GREEDY_STEP = 0.25
# A change smaller than this (AU intensity units) is solver noise and reported as none.
ZERO_CHANGE = 1e-9


class CounterfactualError(RuntimeError):
    """The solver failed (not "no counterfactual exists": that is a result with target None)."""


@dataclass
class Counterfactual:
    """The nearest counterfactual of one face.

    Attributes:
        original: the emotion the model predicts for the face.
        target: the emotion the changed face reads as; None when no change within the bounds
            reaches another emotion (``changes`` is then empty).
        changes: AU column -> signed change in AU intensity units (0-5 scale), only non-zero
            changes, largest |change| first.
        distance: sum of |change| (L1 norm), AU intensity units; 0.0 when target is None.
        new_probabilities: the model's probabilities (``predict_proba``, ``EMOTIONS`` order)
            of the changed face; of the unchanged face when target is None.
        exact: True when ``distance`` is the proven minimum (linear models: the linear
            programme's optimum; with target None: proven unreachable). False for a search.
        method: how it was found, in words.
        new_face: the changed face (the model's columns), as checked with ``model.predict``.
        seconds: wall time of the computation.
    """

    original: str
    target: str | None
    changes: dict[str, float]
    distance: float
    new_probabilities: pd.Series
    exact: bool
    method: str
    new_face: pd.Series = field(repr=False)
    seconds: float = 0.0

    def sentence(self) -> str:
        """E.g. "lower AU04 (brow lowerer) by 1.30 and raise AU12 (lip corner puller) by 0.40
        and it reads neutral" (changes in AU intensity units, two decimals)."""
        if self.target is None:
            found = "no change" if self.exact else "the search found no change"
            return (
                f"{found} of the AU intensities within the bounds makes it read as another "
                f"emotion than {self.original}"
            )
        steps = [
            f"{'raise' if delta > 0 else 'lower'} {_au_name(column)} by {abs(delta):.2f}"
            for column, delta in self.changes.items()
        ]
        actions = steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + " and " + steps[-1]
        return f"{actions} and it reads {self.target}"


def nearest_counterfactual(
    model: AUModel,
    row: pd.Series,
    lower: pd.Series,
    upper: pd.Series,
    features: list[str] | None = None,
    target: str | None = None,
    margin: float = 1e-6,
) -> Counterfactual:
    """The smallest L1 change of one face's AU intensities that makes ``model`` choose another emotion.

    Args:
        model: a fitted AU model (``analysis.au_models`` interface). Linear ones
            (``AULogitModel``, an ``AdditiveLogit`` of linear terms only) are solved exactly by
            a linear programme; any other by the bounded search of the module docstring.
        row: one face: a Series holding the model's AU columns (intensities 0-5; presence
            ``_c`` columns, if the model uses them, are held fixed). Other entries are ignored.
        lower, upper: per-AU bounds of the changed intensities, indexed by AU column (e.g. the
            min and max of the training faces); intersected with 0-5 here. A face already
            outside them may keep its value: each AU's box is widened to include the face's
            own value, so no change moves an AU further out of range.
        features: the intensity columns that may change; None: every model column that is not
            a presence (``_c``) column.
        target: the emotion to reach; None: the nearest of all emotions but the predicted one.
        margin: the reached emotion's log-odds must exceed every other's by at least this
            much (so ties cannot decide it).

    Returns:
        A ``Counterfactual``; ``target`` None when no emotion (or not ``target``) can be
        reached within the bounds.

    Raises:
        TypeError: ``row`` is not a Series.
        ValueError: the model is not fitted; unknown ``target`` or the one already predicted;
            a feature the model does not use, a presence column, or one missing from ``row``,
            ``lower`` or ``upper``; missing or non-finite values; a lower bound above its
            upper bound (after 0-5); ``margin`` not positive.
        CounterfactualError: the LP solver failed, or its solution did not verify.
    """
    start = time.perf_counter()
    if not getattr(model, "is_fitted", hasattr(model, "classes_")):
        raise ValueError(
            f"the {type(model).__name__} is not fitted (an EBM loaded from JSON must be refitted)"
        )
    if not isinstance(row, pd.Series):
        raise TypeError(f"row must be one face as a pandas Series, not {type(row).__name__}")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number, not {margin!r}")
    columns = model_columns(model)
    features = _features(columns, features)
    missing = [c for c in columns if c not in row.index]
    if missing:
        raise ValueError(f"the face lacks the model's column(s) {', '.join(missing)}")
    base = pd.to_numeric(row[columns], errors="coerce").astype(float)
    if not np.all(np.isfinite(base.to_numpy())):
        bad = [c for c in columns if not np.isfinite(base[c])]
        raise ValueError(f"the face has missing or non-numeric value(s) in {', '.join(bad)}")
    x0 = base[features].to_numpy()
    lo, hi = _box(features, x0, lower, upper)

    classes = [str(c) for c in model.classes_]
    face = base.to_frame().T
    eta = model.decision_function(face)[0]
    original = str(model.predict(face)[0])
    if target is not None and target not in classes:
        raise ValueError(f"unknown target {target!r}; the model's emotions are {', '.join(classes)}")
    if target == original:
        raise ValueError(f"the face already reads as {original}; choose another target")
    targets = [target] if target is not None else [c for c in classes if c != original]

    slopes = linear_slopes(model, features)
    problem = _Problem(model, base, features, classes, original, lo, hi, margin)
    if slopes is not None:
        result = _solve_linear(problem, slopes, eta, targets)
    else:
        result = _search(problem, targets)
    result.seconds = time.perf_counter() - start
    return result


def model_columns(model: AUModel) -> list[str]:
    """The columns a fitted AU model reads (AU intensities and, if used, presences)."""
    for name in ("features", "columns_"):
        value = getattr(model, name, None)
        if isinstance(value, list | tuple) and value:
            return list(value)
    terms = getattr(model, "terms", None)
    if terms:
        return list(dict.fromkeys(c for t in terms for c in t.columns))
    raise ValueError(f"cannot tell which AU columns the {type(model).__name__} reads")


def linear_slopes(model: AUModel, features: list[str]) -> np.ndarray | None:
    """(K, len(features)) slopes of ``model.decision_function`` per AU intensity unit, rows in
    ``classes_`` order (the reference's row 0), when the model is linear in ``features``; else None.

    Read from the model's parameters: ``AULogitModel.params``, or for an ``AdditiveLogit``
    whose terms are all ``linear`` its log-odds ``weights`` divided by the design's ``scale_``
    (the design standardises each column: (x - centre) / scale).
    """
    from analysis.glassbox import AdditiveLogit
    from analysis.logit import AULogitModel

    linear_additive = isinstance(model, AdditiveLogit) and all(t.kind == "linear" for t in model.terms)
    if not (isinstance(model, AULogitModel) or linear_additive):
        return None
    classes = [str(c) for c in model.classes_]
    slopes = np.zeros((len(classes), len(features)))
    if isinstance(model, AULogitModel):
        for i, emotion in enumerate(classes):
            if emotion != model.reference:
                slopes[i] = model.params.loc[features, emotion].to_numpy(dtype=float)
        return slopes
    rows = {e: i for i, e in enumerate(model.emotions)}
    position = {c: j for j, c in enumerate(features)}
    for term, block in zip(model.terms, model.design.blocks, strict=True):
        j = position.get(term.columns[0])
        if j is None:
            continue
        per_unit = model.weights[:, block][:, 0] / model.design.scale_[block][0]
        for i, emotion in enumerate(classes):
            if emotion in rows:
                slopes[i, j] += per_unit[rows[emotion]]
    return slopes


# ---------------------------------------------------------------- internals


@dataclass
class _Problem:
    model: AUModel
    base: pd.Series  # the face, the model's columns
    features: list[str]
    classes: list[str]
    original: str
    lo: np.ndarray
    hi: np.ndarray
    margin: float

    @property
    def x0(self) -> np.ndarray:
        return self.base[self.features].to_numpy()

    def decisions(self, deltas: np.ndarray) -> np.ndarray:
        """(n, K) decision_function of the face changed by each row of ``deltas`` (n, m)."""
        if len(deltas) == 0:
            return np.zeros((0, len(self.classes)))
        values = np.tile(self.base.to_numpy(), (len(deltas), 1))
        index = [self.base.index.get_loc(c) for c in self.features]
        values[:, index] += deltas
        return self.model.decision_function(pd.DataFrame(values, columns=self.base.index))

    def gaps(self, decisions: np.ndarray, target: str | None) -> np.ndarray:
        """How far each row is past the boundary: > 0 (>= margin) where the goal is reached.

        target None: best other emotion's log-odds minus the original's; else the target's
        minus the best of the rest.
        """
        if target is None:
            own = self.classes.index(self.original)
            others = np.delete(decisions, own, axis=1)
            return others.max(axis=1) - decisions[:, own]
        t = self.classes.index(target)
        return decisions[:, t] - np.delete(decisions, t, axis=1).max(axis=1)

    def result(self, delta: np.ndarray | None, exact: bool, method: str) -> Counterfactual:
        """Verify ``delta`` with ``model.predict`` and package it (None: unreachable)."""
        if delta is None:
            delta = np.zeros(len(self.features))
        delta = np.where(np.abs(delta) < ZERO_CHANGE, 0.0, delta)
        new = np.clip(self.x0 + delta, self.lo, self.hi)
        delta = np.where(delta == 0, 0.0, new - self.x0)
        face = self.base.copy()
        face[self.features] = new
        frame = face.to_frame().T
        reached = str(self.model.predict(frame)[0])
        changes = {c: float(d) for c, d in zip(self.features, delta, strict=True) if d != 0}
        changes = dict(sorted(changes.items(), key=lambda item: -abs(item[1])))
        target = None if not changes else reached
        if changes and reached == self.original:
            raise CounterfactualError(
                f"the change {changes} does not change the model's prediction ({self.original})"
            )
        return Counterfactual(
            original=self.original,
            target=target,
            changes=changes,
            distance=float(np.abs(delta).sum()),
            new_probabilities=self.model.predict_proba(frame).iloc[0].rename(None),
            exact=exact,
            method=method,
            new_face=face,
        )


def _features(columns: list[str], features: list[str] | None) -> list[str]:
    if features is None:
        features = [c for c in columns if not c.endswith("_c")]
    features = list(features)
    if not features:
        raise ValueError("no AU intensity column may change (features is empty)")
    unknown = [c for c in features if c not in columns]
    if unknown:
        raise ValueError(f"the model does not use {', '.join(unknown)}")
    presences = [c for c in features if c.endswith("_c")]
    if presences:
        raise ValueError(f"presence columns are held fixed, not changed: {', '.join(presences)}")
    if len(set(features)) != len(features):
        raise ValueError("features repeat a column")
    return features


def _box(
    features: list[str], x0: np.ndarray, lower: pd.Series, upper: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Per-AU bounds: [lower, upper] ∩ [0, 5], widened to hold the face's own value."""
    for name, bound in (("lower", lower), ("upper", upper)):
        if not isinstance(bound, pd.Series):
            raise ValueError(f"{name} must be a Series indexed by AU column")
        absent = [c for c in features if c not in bound.index]
        if absent:
            raise ValueError(f"{name} has no bound for {', '.join(absent)}")
    lo = pd.to_numeric(lower[features], errors="coerce").to_numpy(dtype=float)
    hi = pd.to_numeric(upper[features], errors="coerce").to_numpy(dtype=float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("lower and upper bounds must be finite numbers")
    lo, hi = np.maximum(lo, INTENSITY_RANGE[0]), np.minimum(hi, INTENSITY_RANGE[1])
    bad = [c for c, a, b in zip(features, lo, hi, strict=True) if a > b]
    if bad:
        raise ValueError(f"lower bound above upper bound (within 0-5) for {', '.join(bad)}")
    return np.minimum(lo, x0), np.maximum(hi, x0)


def _au_name(column: str) -> str:
    code = au_code(column)
    return f"{code} ({AU_NAMES[code]})" if code in AU_NAMES else column


# ---------------------------------------------------------------- exact: linear programme


def _solve_linear(p: _Problem, slopes: np.ndarray, eta: np.ndarray, targets: list[str]) -> Counterfactual:
    m = len(p.features)
    bounds = [(0.0, float(h)) for h in p.hi - p.x0] + [(0.0, float(d)) for d in p.x0 - p.lo]
    best: tuple[float, np.ndarray, float] | None = None
    for target in targets:
        t = p.classes.index(target)
        others = [k for k in range(len(p.classes)) if k != t]
        diff = slopes[t] - slopes[others]  # (K-1, m)
        for margin in (p.margin, p.margin * 100, p.margin * 1e4):  # widen if rounding bites
            solution = linprog(
                np.ones(2 * m),
                A_ub=np.hstack([-diff, diff]),
                b_ub=(eta[t] - eta[others]) - margin,
                bounds=bounds,
                method="highs",
            )
            if solution.status == 2:  # infeasible: this emotion cannot be reached
                break
            if solution.status != 0:
                raise CounterfactualError(f"HiGHS failed for target {target}: {solution.message}")
            delta = solution.x[:m] - solution.x[m:]
            if _reaches(p, delta, target):
                if best is None or solution.fun < best[0] - 1e-12:
                    best = (float(solution.fun), delta, margin)
                break
        else:
            raise CounterfactualError(f"the LP optimum for {target} is not classified as {target}")
    method = (
        "exact: minimum-L1 linear programme per target (HiGHS; Ustun, Spangher & Liu 2019), "
        f"{len(targets)} target(s)"
    )
    if best is None:
        return p.result(None, True, method + "; infeasible for every target within the bounds")
    if best[2] != p.margin:
        method += f"; margin widened to {best[2]:g} so that rounding cannot undo the change"
    return p.result(best[1], True, method)


def _reaches(p: _Problem, delta: np.ndarray, target: str) -> bool:
    delta = np.where(np.abs(delta) < ZERO_CHANGE, 0.0, delta)
    face = p.base.copy()
    face[p.features] = np.clip(p.x0 + delta, p.lo, p.hi)
    return str(p.model.predict(face.to_frame().T)[0]) == target


# ---------------------------------------------------------------- search: non-linear models


def _grid(lo: float, hi: float, step: float) -> np.ndarray:
    values = np.arange(lo, hi, step)
    return np.append(values, hi)


def _search(p: _Problem, targets: list[str]) -> Counterfactual:
    goal = targets[0] if len(targets) == 1 else None  # None: any emotion but the original
    m = len(p.features)
    x0 = p.x0

    # (1) one AU at a time, fine grid
    singles = []
    for j in range(m):
        values = _grid(p.lo[j], p.hi[j], SINGLE_STEP) - x0[j]
        values = values[np.abs(values) > ZERO_CHANGE]
        block = np.zeros((len(values), m))
        block[:, j] = values
        singles.append(block)
    single = np.vstack(singles)
    single_gaps = p.gaps(p.decisions(single), goal)
    candidates = [_best(single, single_gaps, p.margin)]

    # (2) pairs of the AUs that moved the decision most alone, each in the direction (raise or
    # lower) that moved it most, on a coarse grid
    moved, direction = np.full(m, -np.inf), np.zeros(m)
    for j in range(m):
        rows = np.flatnonzero(single[:, j] != 0)
        if len(rows):
            k = rows[np.argmax(single_gaps[rows])]
            moved[j], direction[j] = single_gaps[k], np.sign(single[k, j])
    top = [j for j in np.argsort(-moved)[:PAIR_AUS] if np.isfinite(moved[j])]
    pairs = []
    for i, j in itertools.combinations(top, 2):
        vi = _grid(p.lo[i], p.hi[i], PAIR_STEP) - x0[i]
        vj = _grid(p.lo[j], p.hi[j], PAIR_STEP) - x0[j]
        gi, gj = np.meshgrid(
            vi[vi * direction[i] > ZERO_CHANGE], vj[vj * direction[j] > ZERO_CHANGE], indexing="ij"
        )
        block = np.zeros((gi.size, m))
        block[:, i], block[:, j] = gi.ravel(), gj.ravel()
        pairs.append(block)
    if pairs:
        pair = np.vstack(pairs)
        candidates.append(_best(pair, p.gaps(p.decisions(pair), goal), p.margin))
    found = [c for c in candidates if c is not None]
    method = (
        f"search (not proven minimal): single AUs on a {SINGLE_STEP} grid, pairs of the {len(top)} "
        f"most influential AUs on a {PAIR_STEP} grid, shrunk on a {REFINE_STEP} grid"
    )

    # (4) fallback: greedy coordinate ascent of the margin, then shrink
    if not found:
        greedy = _greedy(p, goal)
        if greedy is not None:
            found = [greedy]
            method += f"; none within two AUs, so greedy coordinate ascent on a {GREEDY_STEP} grid"
    if not found:
        return p.result(None, False, method + "; none found within the bounds")

    # (3) shrink each candidate coordinate by coordinate, keep the smallest
    shrunk = [_shrink(p, delta, goal) for delta in found]
    best = min(shrunk, key=lambda d: np.abs(d).sum())
    return p.result(best, False, method)


def _best(deltas: np.ndarray, gaps: np.ndarray, margin: float) -> np.ndarray | None:
    """The reaching row (gap >= margin) of least L1 norm, or None."""
    ok = np.flatnonzero(gaps >= margin)
    if len(ok) == 0:
        return None
    return deltas[ok[np.argmin(np.abs(deltas[ok]).sum(axis=1))]].copy()


def _shrink(p: _Problem, delta: np.ndarray, goal: str | None, rounds: int = 4) -> np.ndarray:
    """Reduce non-zero changes toward 0 on a fine grid while the goal stays reached.

    Each round evaluates every changed AU's smaller values (others fixed) in one batch and
    keeps the reaching trial of least L1 norm; stops when no trial is shorter.
    """
    delta = delta.copy()
    for _ in range(rounds):
        trials = []
        for j in np.flatnonzero(delta):
            steps = np.arange(0.0, abs(delta[j]), REFINE_STEP) * np.sign(delta[j])
            block = np.tile(delta, (len(steps), 1))
            block[:, j] = steps
            trials.append(block)
        if not trials:
            break
        trial = np.vstack(trials)
        best = _best(trial, p.gaps(p.decisions(trial), goal), p.margin)
        if best is None or np.abs(best).sum() >= np.abs(delta).sum() - ZERO_CHANGE:
            break
        delta = best
    return delta


def _greedy(p: _Problem, goal: str | None) -> np.ndarray | None:
    """Move one AU per step to the grid value that most increases the gap; None if stuck."""
    m = len(p.features)
    delta = np.zeros(m)
    gap = p.gaps(p.decisions(delta[None, :]), goal)[0]
    grids = [_grid(p.lo[j], p.hi[j], GREEDY_STEP) - p.x0[j] for j in range(m)]
    for _ in range(2 * m):
        trials = []
        for j in range(m):
            block = np.tile(delta, (len(grids[j]), 1))
            block[:, j] = grids[j]
            trials.append(block)
        trial = np.vstack(trials)
        gaps = p.gaps(p.decisions(trial), goal)
        k = int(np.argmax(gaps))
        if gaps[k] <= gap + 1e-12:
            return None
        delta, gap = trial[k].copy(), gaps[k]
        if gap >= p.margin:
            return delta
    return None
