"""Glass-box AU models on the real seed and FER2013 AU data: exact decompositions, selection, stability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    FER2013_AU_TABLE,
    SEED_AU_TABLE,
    read_au_table,
    six_class_rows,
)
from analysis.glassbox import ModelSpec, build, class_weights
from analysis.glassbox_selection import au_effects, bootstrap_stability, candidates, select
from analysis.logit import fit_logit
from analysis.quality import apply_quality_policy
from tests.browser import needs_chromium, open_in_chromium

R, C = list(AU_R_COLUMNS), list(AU_C_COLUMNS)


@pytest.fixture(scope="module")
def seed_rows():
    rows = six_class_rows(read_au_table(SEED_AU_TABLE, label_coding="seed"))
    return apply_quality_policy(rows, R, "drop")[0].reset_index(drop=True)


@pytest.fixture(scope="module")
def fer_rows():
    table = six_class_rows(read_au_table(FER2013_AU_TABLE, "emotion", "name"))
    return table[table["Usage"] == "Training"].groupby("label").head(400).reset_index(drop=True)


SPECS = [
    ModelSpec("logit", "logit", "", C=1e4),
    ModelSpec("l1", "logit", "", presences=True, penalty="l1", C=0.05, balance=0.5),
    ModelSpec("gam_pairs", "logit", "", presences=True, splines=True, pairs=True, C=1.0, balance=1.0),
    ModelSpec(
        "ebm", "ebm", "", presences=True, ebm_interactions=3, extra={"n_jobs": 1, "ebm": {"outer_bags": 2}}
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_prediction_decomposes_exactly_into_terms(spec, fer_rows):
    model = build(spec, R, C).fit(fer_rows, fer_rows["label"])
    faces = fer_rows.sample(50, random_state=1)
    log_odds = model.log_odds(faces)
    parts = model.term_contributions(faces)
    assert parts.shape == (50, len(model.term_names), 5)
    assert np.allclose(parts.sum(axis=1) + model.intercepts, log_odds.to_numpy(), atol=1e-6)
    for i in range(3):
        explained = model.explain(faces.iloc[i])
        assert np.allclose(explained.sum().to_numpy(), log_odds.iloc[i].to_numpy(), atol=1e-6)
    prob = model.predict_proba(faces)
    library = model.model.predict_proba(
        faces[model.features].to_numpy(dtype=float) if spec.family == "ebm" else model.design.transform(faces)
    )
    order = [list(model.model.classes_).index(e) for e in prob.columns]
    assert np.allclose(prob.to_numpy(), library[:, order], atol=1e-6)  # the same model as the library's
    assert model.n_terms <= len(model.term_names) and model.n_parameters > 0


def test_plain_glassbox_logit_is_the_statsmodels_logit(seed_rows):
    model = build(ModelSpec("logit", "logit", "", C=1e6), R, []).fit(seed_rows, seed_rows["label"])
    effects = au_effects(model, seed_rows, ["AU12", "AU05"]).set_index(["emotion", "au"])["effect"]
    coefficients = fit_logit(seed_rows, R, tests=False).coefficients.set_index(["emotion", "au"])["coef"]
    # effect (log-odds change from intensity 0 to 2) = 2 x the MNLogit coefficient; lbfgs tol 1e-4
    assert effects[("happy", "AU12_r")] == pytest.approx(2 * coefficients[("happy", "AU12_r")], rel=5e-3)
    assert effects[("surprise", "AU05_r")] == pytest.approx(
        2 * coefficients[("surprise", "AU05_r")], rel=1e-3
    )


def test_l1_keeps_a_short_list_of_aus(fer_rows):
    spec = ModelSpec("l1", "logit", "", presences=True, penalty="l1", C=0.01)
    sparse = build(spec, R, C).fit(fer_rows, fer_rows["label"])
    assert 0 < sparse.n_terms < len(R) + len(C)


def test_balanced_class_weights_are_scikit_learns(seed_rows):
    y = seed_rows["label"].to_numpy()
    labels = np.unique(y)
    assert list(class_weights(y, 1.0).values()) == pytest.approx(
        list(compute_class_weight("balanced", classes=labels, y=y))
    )
    assert class_weights(y, 0.0) is None
    half = class_weights(y, 0.5)
    assert half["disgust"] > 1 > half["sad"]  # disgust is the rare class


def test_selection_by_cv_and_bootstrap_stability(seed_rows):
    specs = candidates(with_presences=False, fast=True)
    chosen = select(seed_rows, R, [], specs, folds=3, seed=0, n_jobs=2)
    assert set(chosen.table["key"]) == {s.key for s in specs} | {"black_box"}
    assert chosen.selected in {s.key for s in specs}
    assert chosen.table[["cv_accuracy", "cv_macro_f1"]].stack().between(0.2, 1).all()
    spec = next(s for s in specs if s.key == "logit")
    stable = bootstrap_stability(spec, chosen.models["logit"], seed_rows, R, [], n_resamples=8, n_jobs=2)
    assert len(stable) == 5 * len(R)
    assert stable["same_sign"].between(0, 1).all() and (stable["ci_low"] <= stable["ci_high"]).all()
    happy = stable.set_index(["emotion", "au"]).loc[("happy", "AU12_r")]
    assert happy["effect"] > 0 and not happy["flips"] and happy["rank_median"] == 1  # lip corner puller


@pytest.fixture(scope="module")
def glassbox_run(glassbox_small):
    """The whole `fit-glassbox` on real data cut small (``glassbox_small``: seed data and 2,400
    FER2013 faces), and its page."""
    from analysis.glassbox_report import render_glassbox_report

    results, metrics = glassbox_small
    html = render_glassbox_report(results, results.parent / "glassbox.html")
    return results.parent, metrics, html


def test_glassbox_results_files(glassbox_run):
    tmp, metrics, _ = glassbox_run
    saved = json.loads((tmp / "glassbox" / "metrics.json").read_text())
    for name in ("seed", "fer2013"):
        models = saved[name]["models"]
        assert saved["selected"][name] == saved[name]["selected"] in models
        for key, row in models.items():
            assert 0 < row["cv_accuracy"] <= 1 and 0 < row["cv_macro_f1"] <= 1, key
            assert key == "black_box" or row["n_terms"] >= 1
    assert "test_accuracy" in saved["fer2013"]["models"]["black_box"]
    example = pd.read_csv(tmp / "glassbox" / "fer2013_example.csv")
    facs = pd.read_csv(tmp / "glassbox" / "seed_facs.csv")
    assert set(facs["model"]) == set(saved["seed"]["models"]) - {"black_box"}
    assert {"agrees", "verdict"} <= set(facs.columns) and len(example) > 17
    for name in ("seed", "fer2013"):  # the selected model is saved and loads (make compare uses it)
        from analysis.glassbox import load_glassbox

        model = load_glassbox(tmp / "glassbox" / f"{name}_model.json")
        assert model.spec.key == saved[name]["selected"] and model.metadata["dataset"] == name


@needs_chromium
def test_glassbox_page_in_headless_chromium(glassbox_run):
    tmp, _, html = glassbox_run
    seen = open_in_chromium(html, tmp / "glassbox.png")
    assert seen["errors"] == [] and seen["broken_images"] == []
    assert seen["images"] == 2 * 4 and seen["tables"] >= 2 * 5
