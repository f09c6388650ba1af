"""The multinomial AU logit on the real seed data: known facts, exact algebra, library agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis.au_table import AU_R_COLUMNS, read_au_table
from analysis.cv_scores import plain_logit
from analysis.facs import facs_agreement
from analysis.logit import AULogitModel, FitError, emotion_codes, fit_logit
from analysis.margins import average_marginal_effects
from tests.conftest import OPENFACE_SAMPLE

FEATURES = list(AU_R_COLUMNS)


def coef(run, emotion, au):
    c = run.fit.coefficients
    return c[(c["emotion"] == emotion) & (c["au"] == au)].iloc[0]


def test_au12_raises_happy(seed_run):
    row = coef(seed_run, "happy", "AU12_r")
    assert row["odds_ratio"] > 1 and row["p"] < 0.001
    assert row["or_ci_low"] > 1


def test_upper_face_aus_raise_surprise(seed_run, seed_csv):
    # Adjusted for the other 16 AUs, AU05 (upper lid raiser) carries surprise ...
    row = coef(seed_run, "surprise", "AU05_r")
    assert row["odds_ratio"] > 1 and row["p"] < 0.001
    # ... while the brow raisers AU01 and AU02 raise it on their own; adjusted, their effect is
    # shared with correlated AUs (reported as "right sign, not significant" in the FACS table).
    table = read_au_table(seed_csv, label_coding="seed")
    for au in ("AU01_r", "AU02_r", "AU05_r"):
        single = fit_logit(table, [au], n_jobs=1)
        c = single.coefficients.query("emotion == 'surprise' and au == @au").iloc[0]
        assert c["odds_ratio"] > 1 and c["p"] < 0.001, au


def test_cross_validated_accuracy_and_baseline(seed_run):
    m = seed_run.metrics
    assert m["cv_accuracy"] >= 0.70
    assert m["cv_macro_f1"] > m["majority_macro_f1"] + 0.4
    assert m["majority_class"] == "sad"
    assert seed_run.cv.confusion.to_numpy().sum() == m["n_rows"] == 4449
    assert np.allclose(seed_run.cv.confusion_normalised.sum(axis=1), 1)


def test_fit_statistics(seed_run):
    s = seed_run.fit.fit_stats
    assert s["converged"] and 0.4 < s["pseudo_r2"] < 0.8
    assert s["llr_p"] < 1e-100
    assert s["aic"] == pytest.approx(-2 * s["llf"] + 2 * s["n_params"])
    assert seed_run.fit.warnings == []
    assert (seed_run.fit.vif["vif"] >= 1).all()


def test_explanation_sums_to_log_odds(seed_run, seed_csv):
    model = seed_run.fit.model
    rows = read_au_table(seed_csv, label_coding="seed").iloc[[0, 931, 4000]]
    log_odds = model.log_odds(rows)
    for index, row in rows.iterrows():
        parts = model.explain(row)
        assert np.allclose(parts.sum().to_numpy(), log_odds.loc[index].to_numpy(), atol=1e-12)
    proba = model.predict_proba(rows)
    assert np.allclose(proba.sum(axis=1), 1)
    assert list(proba.columns) == ["angry", "disgust", "happy", "neutral", "sad", "surprise"]  # EMOTIONS
    assert list(model.predict(rows)) == list(proba.idxmax(axis=1))


def test_model_json_round_trip(seed_run, seed_csv, tmp_path):
    path = tmp_path / "model.json"
    seed_run.fit.model.to_json(path)
    assert b"pickle" not in path.read_bytes()
    loaded = AULogitModel.from_json(path)
    rows = read_au_table(seed_csv, label_coding="seed").head(50)
    pd.testing.assert_frame_equal(loaded.predict_proba(rows), seed_run.fit.model.predict_proba(rows))
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an AU model file"):
        AULogitModel.from_json(tmp_path / "other.json")


@pytest.fixture(scope="module")
def statsmodels_reference(seed_csv):
    """statsmodels' own MNLogit results on the same cleaned rows, for agreement checks."""
    from analysis.quality import apply_quality_policy

    table, _ = apply_quality_policy(read_au_table(seed_csv, label_coding="seed"), FEATURES)
    y, classes = emotion_codes(table["label"], "neutral")
    x = sm.add_constant(table[FEATURES].to_numpy())
    return table, y, x, sm.MNLogit(y, x).fit(disp=0)


def test_marginal_effects_equal_statsmodels_get_margeff(statsmodels_reference, seed_run):
    _, _, x, result = statsmodels_reference
    reference = result.get_margeff(at="overall", method="dydx")
    ame, se = average_marginal_effects(result.params, result.cov_params(), x, chunk_rows=997)
    np.testing.assert_allclose(ame[1:], reference.margeff, atol=1e-10)
    np.testing.assert_allclose(se[1:], reference.margeff_se, atol=1e-10)
    table = seed_run.fit.marginal_effects
    happy_au12 = table.query("emotion == 'happy' and au == 'AU12_r'")["dydx"].iloc[0]
    assert happy_au12 == pytest.approx(reference.margeff[FEATURES.index("AU12_r"), 3], abs=1e-10)


def test_lr_test_equals_a_cold_refit(statsmodels_reference, seed_run):
    _, y, x, result = statsmodels_reference
    k = 1 + FEATURES.index("AU23_r")
    restricted = sm.MNLogit(y, np.delete(x, k, axis=1)).fit(disp=0)
    expected = 2 * (result.llf - restricted.llf)
    row = seed_run.fit.lr_tests.query("au == 'AU23_r'").iloc[0]
    assert row["lr_stat"] == pytest.approx(expected, rel=1e-6)
    assert row["df"] == 5 and row["p_holm"] >= row["p"]


def test_sklearn_fold_model_is_the_same_logit(statsmodels_reference, seed_run):
    table, y, x, _ = statsmodels_reference
    sk = plain_logit().fit(table[FEATURES].to_numpy(), y)
    model = seed_run.fit.model
    ours = model.predict_proba(table)[model.classes].to_numpy()  # y codes: the reference first
    assert np.abs(sk.predict_proba(table[FEATURES].to_numpy()) - ours).max() < 1e-5


def test_facs_table(seed_run):
    facs = facs_agreement(seed_run.fit.coefficients)
    assert len(facs) == 15  # 2 + 3 + 4 + 4 + 2 prototype AUs, AU16 omitted
    happy = facs[facs["emotion"] == "happy"].set_index("au")
    assert happy.loc["AU12", "verdict"] == "agrees" and happy.loc["AU06", "agrees"]
    assert set(facs["verdict"]) <= {
        "agrees",
        "right sign, not significant",
        "contradicts",
        "wrong sign, not significant",
    }


def test_quasi_separation_is_flagged(seed_csv):
    # Real AUs, labels made a deterministic function of AU12: perfectly separable.
    table = read_au_table(seed_csv, label_coding="seed").head(600).copy()
    table["label"] = np.where(table["AU12_r"] > 1.0, "happy", "neutral")
    fit = fit_logit(table, ["AU12_r", "AU06_r"], n_jobs=1)
    assert any("separation" in w for w in fit.warnings)


def test_fit_errors(seed_csv):
    table = read_au_table(seed_csv, label_coding="seed")
    with pytest.raises(FitError, match="reference category 'neutral' has no rows"):
        fit_logit(table[table["label"] != "neutral"], FEATURES, n_jobs=1)
    with pytest.raises(FitError, match="too few"):
        fit_logit(table.groupby("label").head(5), FEATURES, n_jobs=1)


def test_openface_table_fits_unchanged(tmp_path):
    """A table in the runner's format (names, AU_c, fear) goes through fit-logit as it is."""
    from analysis.run_logit import run_fit_logit

    run = run_fit_logit(OPENFACE_SAMPLE, tmp_path, folds=3, progress=False, n_jobs=1, render=False)
    assert run.metrics["fear_rows_excluded"] == 10
    assert run.metrics["rows_read"] == 356
    assert "image" in pd.read_csv(run.results_dir / "examples.csv").columns


def test_fast_hessian_equals_statsmodels(statsmodels_reference):
    from analysis.logit import _MNLogit

    _, y, x, result = statsmodels_reference
    params = result.params.ravel(order="F") * 0.7  # away from the optimum too
    np.testing.assert_allclose(
        _MNLogit(y, x).hessian(params), sm.MNLogit(y, x).hessian(params), rtol=1e-10, atol=1e-8
    )


def test_vif_equals_statsmodels(statsmodels_reference, seed_run):
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    _, _, x, _ = statsmodels_reference
    expected = [variance_inflation_factor(x, i) for i in range(1, x.shape[1])]
    np.testing.assert_allclose(seed_run.fit.vif["vif"], expected, rtol=1e-8)


def test_null_model_statistics_equal_statsmodels(statsmodels_reference, seed_run):
    _, _, _, result = statsmodels_reference
    s = seed_run.fit.fit_stats
    assert s["llnull"] == pytest.approx(result.llnull, rel=1e-9)
    assert s["pseudo_r2"] == pytest.approx(result.prsquared, rel=1e-9)
    assert s["llr"] == pytest.approx(result.llr, rel=1e-9)
