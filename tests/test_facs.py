"""FACS agreement and glass-box AU effects read inside the observed range, on the real seed AU table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS, SEED_AU_TABLE, read_au_table, six_class_rows
from analysis.facs import EFFECT_PERCENTILES, effect_range, effect_ranges, facs_agreement
from analysis.glassbox import ModelSpec, build
from analysis.glassbox_selection import au_effects
from analysis.logit import fit_logit
from analysis.quality import apply_quality_policy
from analysis.run_glassbox import _facs

R = list(AU_R_COLUMNS)


@pytest.fixture(scope="module")
def seed_au_rows() -> pd.DataFrame:
    rows = six_class_rows(read_au_table(SEED_AU_TABLE, label_coding="seed"))
    return apply_quality_policy(rows, R, "drop")[0].reset_index(drop=True)


def test_effect_range_stays_where_the_faces_are(seed_au_rows):
    # AU23 reaches 2 in 3 of 4,473 seed rows: an effect read at 2 extrapolates.
    assert int((read_au_table(SEED_AU_TABLE, label_coding="seed")["AU23_r"] >= 2).sum()) == 3
    low, high = effect_range(seed_au_rows["AU23_r"])
    assert (low, high) == pytest.approx(tuple(np.percentile(seed_au_rows["AU23_r"], EFFECT_PERCENTILES)))
    assert 0 <= low < high < 2
    ranges = effect_ranges(seed_au_rows, R)
    assert set(ranges) == {c.split("_")[0] for c in R}
    share_inside = {
        au: float(seed_au_rows[f"{au}_r"].between(lo, hi).mean()) for au, (lo, hi) in ranges.items()
    }
    assert min(share_inside.values()) >= 0.9  # 5th to 95th percentile


def test_effect_of_a_plain_logit_is_its_coefficient_times_the_range(seed_au_rows):
    model = build(ModelSpec("logit", "logit", "", C=1e6), R, []).fit(seed_au_rows, seed_au_rows["label"])
    ranges = effect_ranges(seed_au_rows, R)
    effects = au_effects(model, seed_au_rows, ["AU12", "AU23"], ranges).set_index(["emotion", "au"])
    coefficients = fit_logit(seed_au_rows, R).coefficients.set_index(["emotion", "au"])["coef"]
    zero_to_two = au_effects(model, seed_au_rows, ["AU12", "AU23"]).set_index(["emotion", "au"])["effect"]
    for au in ("AU12", "AU23"):
        low, high = ranges[au]
        row = effects.loc[("happy", f"{au}_r")]
        assert (row["low"], row["high"]) == (low, high)  # the range is in the results table
        # linear in the AU: the effect scales with the range read (exact), and is the coefficient
        # times the range (statsmodels' MNLogit vs lbfgs: within its tolerance)
        assert row["effect"] == pytest.approx(zero_to_two[("happy", f"{au}_r")] * (high - low) / 2, rel=1e-9)
        assert row["effect"] == pytest.approx(coefficients[("happy", f"{au}_r")] * (high - low), rel=2e-2)
    # 0 -> 2 made AU23 look larger than it is on the faces observed
    old = zero_to_two.xs("AU23_r", level="au")
    assert abs(effects["effect"].xs("AU23_r", level="au")).max() < abs(old).max()


def test_glassbox_facs_uses_sign_share_never_significance(seed_au_rows):
    model = build(ModelSpec("logit", "logit", "", C=1e6), R, []).fit(seed_au_rows, seed_au_rows["label"])
    effects = au_effects(
        model, seed_au_rows, ["AU01", "AU04", "AU06", "AU12", "AU15"], effect_ranges(seed_au_rows, R)
    )
    stability = effects[["emotion", "au", "effect"]].assign(same_sign=0.5)
    stability.loc[(stability["emotion"] == "happy") & (stability["au"] == "AU12_r"), "same_sign"] = 1.0
    facs = _facs(effects, stability)
    assert {"effect", "sign_share", "stable"} <= set(facs.columns)
    assert not {"coef", "p", "significant"} & set(facs.columns)
    happy = facs.set_index(["emotion", "au"]).loc[("happy", "AU12")]
    assert happy["verdict"] == "agrees" and happy["sign_share"] == 1.0
    sad = facs.set_index(["emotion", "au"]).loc[("sad", "AU15")]
    assert sad["verdict"].endswith("unstable") and not sad["agrees"]
    assert not facs["verdict"].str.contains("significant").any()
    untested = _facs(effects, None)
    assert (
        untested["verdict"].isin(["right sign (untested)", "wrong sign (untested)", "AU not in model"]).all()
    )


def test_logit_facs_keeps_its_test(seed_au_rows):
    facs = facs_agreement(fit_logit(seed_au_rows, R).coefficients)
    assert {"coef", "p", "significant", "odds_ratio"} <= set(facs.columns)
    assert set(facs["verdict"]) <= {
        "agrees",
        "right sign, not significant",
        "contradicts",
        "wrong sign, not significant",
        "AU not in model",
    }
    assert (facs["agrees"] == ((facs["coef"] > 0) & (facs["p"] < 0.05))).all()
