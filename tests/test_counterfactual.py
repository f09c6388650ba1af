"""Counterfactuals on the real seed and FER2013 AU data: the LP is optimal for the logit (brute
force), every result is classified as its target by the model itself, bounds hold, unreachable
cases are results, and the search flips a spline glass-box within its bounds."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from analysis.au_models import AUModel
from analysis.au_table import (
    AU_C_COLUMNS,
    AU_NAMES,
    AU_R_COLUMNS,
    FER2013_AU_TABLE,
    LABEL,
    SEED_AU_TABLE,
    au_code,
    read_au_table,
    six_class_rows,
)
from analysis.counterfactual import Counterfactual, linear_slopes, nearest_counterfactual
from analysis.glassbox import ModelSpec, build, load_glassbox
from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel, fit_logit
from analysis.quality import apply_quality_policy

R, C = list(AU_R_COLUMNS), list(AU_C_COLUMNS)


@pytest.fixture(scope="module")
def seed_rows() -> pd.DataFrame:
    rows = six_class_rows(read_au_table(SEED_AU_TABLE, label_coding="seed"))
    return apply_quality_policy(rows, R, "drop")[0].reset_index(drop=True)


@pytest.fixture(scope="module")
def bounds(seed_rows) -> tuple[pd.Series, pd.Series]:
    """The range seen in training, within 0-5."""
    return seed_rows[R].min().clip(0, 5), seed_rows[R].max().clip(0, 5)


@pytest.fixture(scope="module")
def logit(seed_rows) -> AULogitModel:
    return fit_logit(seed_rows, R, tests=False).model


@pytest.fixture(scope="module")
def faces(seed_rows) -> pd.DataFrame:
    """Two real faces of every emotion."""
    return seed_rows.groupby(LABEL).nth([0, 1])


class Opaque(AUModel):
    """The logit seen only through the AU-model interface: forces the search."""

    def __init__(self, inner: AULogitModel):
        self.inner = inner
        self.classes_ = inner.classes_
        self.features = list(inner.features)

    def log_odds(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.inner.log_odds(X)


def _check(model, face: pd.Series, cf: Counterfactual, lo: pd.Series, hi: pd.Series) -> None:
    """The contract of every returned counterfactual."""
    assert cf.original == model.predict(face.to_frame().T)[0]
    assert cf.target is not None and cf.target != cf.original
    new = cf.new_face.to_frame().T
    assert model.predict(new)[0] == cf.target  # verified by the model itself
    assert cf.new_probabilities.idxmax() == cf.target
    assert cf.new_probabilities.sum() == pytest.approx(1.0)
    assert list(cf.new_probabilities.index) == [e for e in EMOTIONS if e in model.classes_]
    columns = list(lo.index)
    x0, x1 = face[columns].astype(float), cf.new_face[columns].astype(float)
    assert np.all(x1 >= np.minimum(lo, x0) - 1e-9) and np.all(x1 <= np.maximum(hi, x0) + 1e-9)
    assert np.all((x1 >= 0) & (x1 <= 5))
    changes = (x1 - x0)[(x1 - x0).abs() > 1e-9]
    assert set(cf.changes) == set(changes.index)
    for column, delta in cf.changes.items():
        assert delta == pytest.approx(changes[column], abs=1e-12)
    sizes = [abs(d) for d in cf.changes.values()]
    assert sizes == sorted(sizes, reverse=True) and all(s > 0 for s in sizes)
    assert cf.distance == pytest.approx(sum(sizes))
    assert cf.sentence().endswith(f"and it reads {cf.target}")


def test_logit_counterfactuals_reach_their_target_within_bounds(logit, faces, bounds):
    lo, hi = bounds
    for _, face in faces.iterrows():
        cf = nearest_counterfactual(logit, face, lo, hi)
        _check(logit, face, cf, lo, hi)
        assert cf.exact and "linear programme" in cf.method
        assert cf.seconds < 5


def test_no_single_au_change_smaller_than_the_lp_flips_the_logit(logit, faces, bounds):
    """Scan every AU alone on a 0.01 grid over its bounds: nothing closer than the LP's distance
    changes the prediction (the LP's optimum is a lower bound on every change)."""
    lo, hi = bounds
    for _, face in faces.iterrows():
        cf = nearest_counterfactual(logit, face, lo, hi)
        trials = []
        for column in R:
            values = np.arange(min(lo[column], face[column]), max(hi[column], face[column]) + 1e-9, 0.01)
            block = pd.DataFrame([face[R].astype(float)] * len(values)).reset_index(drop=True)
            block[column] = values
            trials.append(block.assign(_delta=np.abs(values - face[column])))
        trial = pd.concat(trials, ignore_index=True)
        flipped = trial[logit.predict(trial) != cf.original]
        assert flipped.empty or flipped["_delta"].min() >= cf.distance - 1e-9
        if len(cf.changes) == 1:  # then the scan finds it, up to the grid step
            assert flipped["_delta"].min() <= cf.distance + 0.01 + 1e-9


def test_lp_is_the_brute_force_minimum_over_two_aus(logit, seed_rows, bounds):
    """With two AUs free, a 0.02 grid over their box: the least L1 change that flips the class
    is the LP's distance, up to the grid's resolution, and nothing on the grid beats it."""
    lo, hi = bounds
    features = ["AU04_r", "AU12_r"]
    checked = 0
    for _, face in seed_rows.iloc[::150].iterrows():
        cf = nearest_counterfactual(logit, face, lo, hi, features=features)
        if cf.target is None:
            continue
        _check(logit, face, cf, lo[features], hi[features])
        a = np.arange(
            min(lo[features[0]], face[features[0]]), max(hi[features[0]], face[features[0]]) + 1e-9, 0.02
        )
        b = np.arange(
            min(lo[features[1]], face[features[1]]), max(hi[features[1]], face[features[1]]) + 1e-9, 0.02
        )
        ga, gb = np.meshgrid(a, b, indexing="ij")
        grid = pd.DataFrame([face[R].astype(float)] * ga.size).reset_index(drop=True)
        grid[features[0]], grid[features[1]] = ga.ravel(), gb.ravel()
        l1 = np.abs(ga.ravel() - face[features[0]]) + np.abs(gb.ravel() - face[features[1]])
        flipped = logit.predict(grid) != cf.original
        assert flipped.any()
        assert l1[flipped].min() >= cf.distance - 1e-9
        assert l1[flipped].min() <= cf.distance + 0.04 + 1e-9
        checked += 1
        if checked == 4:
            break
    assert checked >= 2


def test_target_none_is_the_nearest_of_the_per_target_counterfactuals(logit, faces, bounds):
    lo, hi = bounds
    face = faces.iloc[0]
    nearest = nearest_counterfactual(logit, face, lo, hi)
    per_target = {}
    for emotion in logit.classes_:
        if emotion == nearest.original:
            continue
        cf = nearest_counterfactual(logit, face, lo, hi, target=emotion)
        if cf.target is not None:
            assert cf.target == emotion
            _check(logit, face, cf, lo, hi)
            per_target[emotion] = cf.distance
    assert nearest.distance == pytest.approx(min(per_target.values()), abs=1e-7)


def test_unreachable_is_a_result_not_an_exception(logit, faces, bounds):
    lo, hi = bounds
    face = faces.iloc[0]
    frozen = face[R].astype(float)
    cf = nearest_counterfactual(logit, face, frozen, frozen)  # nothing may move
    assert cf.target is None and cf.exact and cf.changes == {} and cf.distance == 0.0
    assert cf.new_probabilities.idxmax() == cf.original
    assert cf.sentence().startswith("no change of the AU intensities within the bounds")
    # one AU with a tiny range cannot reach anything either
    tight = nearest_counterfactual(
        logit, face, frozen - 0.001, frozen + 0.001, features=["AU45_r"], target="happy"
    )
    assert tight.target is None and tight.exact


def test_sentence_names_aus_with_their_facs_names(logit, faces, bounds):
    cf = Counterfactual(
        original="angry",
        target="neutral",
        changes={"AU04_r": -1.3, "AU12_r": 0.4},
        distance=1.7,
        new_probabilities=pd.Series(dtype=float),
        exact=True,
        method="",
        new_face=pd.Series(dtype=float),
    )
    assert cf.sentence() == (
        "lower AU04 (brow lowerer) by 1.30 and raise AU12 (lip corner puller) by 0.40 and it reads neutral"
    )
    lo, hi = bounds
    for _, face in faces.iterrows():
        real = nearest_counterfactual(logit, face, lo, hi)
        for column in real.changes:
            assert f"{au_code(column)} ({AU_NAMES[au_code(column)]})" in real.sentence()


def test_linear_slopes_are_the_models_own(logit, seed_rows, tmp_path):
    additive = build(ModelSpec("logit", "logit", "", C=1.0), R, []).fit(seed_rows, seed_rows[LABEL])
    additive.to_json(tmp_path / "additive.json")
    logit.to_json(tmp_path / "logit.json")
    loaded = [AULogitModel.from_json(tmp_path / "logit.json"), load_glassbox(tmp_path / "additive.json")]
    face = seed_rows.iloc[[10]][R].astype(float)
    for model in [logit, additive, *loaded]:
        slopes = linear_slopes(model, R)
        steps = pd.concat([face] * len(R), ignore_index=True)
        steps[R] += np.eye(len(R))
        finite = model.decision_function(steps) - model.decision_function(face)
        np.testing.assert_allclose(finite, slopes.T, atol=1e-9)
    # the loaded files give the same exact counterfactual as the fitted models
    lo, hi = seed_rows[R].min().clip(0, 5), seed_rows[R].max().clip(0, 5)
    row = seed_rows.iloc[10]
    for fitted, from_file in zip([logit, additive], loaded, strict=True):
        a, b = nearest_counterfactual(fitted, row, lo, hi), nearest_counterfactual(from_file, row, lo, hi)
        assert a.exact and b.exact and a.target == b.target
        assert a.distance == pytest.approx(b.distance, abs=1e-7)
    spline = build(ModelSpec("gam", "logit", "", splines=True), R, [])
    assert linear_slopes(spline, R) is None


def test_presence_columns_are_held_fixed():
    table = six_class_rows(read_au_table(FER2013_AU_TABLE, "emotion", "name"))
    rows = table[table["Usage"] == "Training"].groupby(LABEL).head(150).reset_index(drop=True)
    model = build(ModelSpec("l", "logit", "", presences=True, C=1.0), R, C).fit(rows, rows[LABEL])
    lo, hi = rows[R].min().clip(0, 5), rows[R].max().clip(0, 5)
    for _, face in rows.iloc[::150].iterrows():
        cf = nearest_counterfactual(model, face, lo, hi)
        _check(model, face, cf, lo, hi)
        assert cf.exact
        assert (cf.new_face[C] == face[C].astype(float)).all()
        assert not any(column.endswith("_c") for column in cf.changes)
    with pytest.raises(ValueError, match="presence columns are held fixed"):
        nearest_counterfactual(model, rows.iloc[0], lo, hi, features=["AU12_r", "AU12_c"])


@pytest.fixture(scope="module")
def spline(seed_rows):
    rows = seed_rows.groupby(LABEL).head(300)
    spec = ModelSpec("gam", "logit", "", splines=True, pairs=True, C=0.1)
    return build(spec, R, []).fit(rows, rows[LABEL])


def test_search_flips_a_spline_glassbox_within_bounds(spline, faces, bounds):
    lo, hi = bounds
    seconds = []
    for _, face in faces.iterrows():
        start = time.perf_counter()
        cf = nearest_counterfactual(spline, face, lo, hi)
        seconds.append(time.perf_counter() - start)
        _check(spline, face, cf, lo, hi)
        assert not cf.exact and cf.method.startswith("search")
    assert np.median(seconds) < 2.0  # about 0.2-0.4 s a face on one free core
    cf = nearest_counterfactual(spline, faces.iloc[0], lo, hi, target="happy")
    if cf.target is not None:
        _check(spline, faces.iloc[0], cf, lo, hi)
        assert cf.target == "happy"
    frozen = faces.iloc[0][R].astype(float)
    stuck = nearest_counterfactual(spline, faces.iloc[0], frozen, frozen)
    assert stuck.target is None and not stuck.exact
    assert stuck.sentence().startswith("the search found no change")


def test_search_is_never_closer_than_the_exact_lp(logit, faces, bounds):
    """The same logit behind the bare interface is searched: the search's change flips the
    class and is never shorter than the LP's proven minimum (and close to it)."""
    lo, hi = bounds
    opaque = Opaque(logit)
    for _, face in faces.iterrows():
        exact = nearest_counterfactual(logit, face, lo, hi)
        found = nearest_counterfactual(opaque, face, lo, hi)
        _check(opaque, face, found, lo, hi)
        assert not found.exact
        assert found.distance >= exact.distance - 1e-9
        assert found.distance <= exact.distance * 1.5 + 0.25


def test_bad_arguments_raise(logit, faces, bounds):
    lo, hi = bounds
    face = faces.iloc[0]
    predicted = logit.predict(face.to_frame().T)[0]
    with pytest.raises(ValueError, match="already reads as"):
        nearest_counterfactual(logit, face, lo, hi, target=predicted)
    with pytest.raises(ValueError, match="unknown target"):
        nearest_counterfactual(logit, face, lo, hi, target="fear")
    with pytest.raises(ValueError, match="does not use"):
        nearest_counterfactual(logit, face, lo, hi, features=["AU28_r"])
    with pytest.raises(ValueError, match="lower bound above upper bound"):
        nearest_counterfactual(logit, face, hi + 0.1, hi)
    with pytest.raises(ValueError, match="no bound"):
        nearest_counterfactual(logit, face, lo.drop("AU04_r"), hi)
    holed = face.copy()
    holed["AU04_r"] = np.nan
    with pytest.raises(ValueError, match="missing or non-numeric"):
        nearest_counterfactual(logit, holed, lo, hi)
    with pytest.raises(TypeError):
        nearest_counterfactual(logit, faces.iloc[[0]], lo, hi)
    with pytest.raises(ValueError, match="margin"):
        nearest_counterfactual(logit, face, lo, hi, margin=0.0)


def test_search_falls_back_to_greedy_when_two_aus_are_not_enough(logit, seed_rows, bounds):
    """Face 0 (surprise) needs 5 AUs to read disgust (LP); the search's greedy fallback finds a
    change that the model classifies as disgust, no shorter than the LP's."""
    lo, hi = bounds
    face = seed_rows.iloc[0]
    exact = nearest_counterfactual(logit, face, lo, hi, target="disgust")
    assert exact.target == "disgust" and len(exact.changes) >= 3
    found = nearest_counterfactual(Opaque(logit), face, lo, hi, target="disgust")
    _check(logit, face, found, lo, hi)
    assert found.target == "disgust" and "greedy" in found.method
    assert found.distance >= exact.distance - 1e-9
