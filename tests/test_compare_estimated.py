"""The AU bottleneck's inputs and checks on the vendored real data, without a comparison run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS, FER2013_AU_TABLE, read_au_table
from analysis.logit import AULogitModel
from compare.bottleneck import agreement, interventions
from compare.data import ESTIMATED, CompareError, read_estimated

AUS = list(AU_R_COLUMNS)


@pytest.fixture(scope="module")
def estimated():
    return pd.read_csv(ESTIMATED)


@pytest.fixture(scope="module")
def paired(estimated):
    """400 real PrivateTest faces OpenFace found: their estimated and OpenFace AUs, same index."""
    openface = read_au_table(FER2013_AU_TABLE, label_column="emotion", label_coding="name")
    openface = openface[(openface["Usage"] == "PrivateTest") & (openface["label"] != "fear")]
    openface = openface.drop_duplicates(["image", "label"]).head(400).reset_index(drop=True)
    test = openface[["image", "label"]]
    _, est, _ = read_estimated(ESTIMATED, test)
    return est, openface[AUS]


@pytest.fixture(scope="module")
def small_logit(estimated):
    train = estimated[(estimated["Usage"] == "Training") & (estimated["label"] != "fear")]
    train = train.groupby("label").head(500)
    return AULogitModel(AUS).fit(train, train["label"])


def test_the_path_is_the_estimators():
    pytest.importorskip("tensorflow")
    from cnn_baseline.au_estimator import ESTIMATED_TABLE

    assert ESTIMATED == ESTIMATED_TABLE


def test_estimates_join_on_image_and_label(estimated):
    twice = estimated[estimated["image"].duplicated(keep=False)]
    assert len(twice) == 4 and twice.groupby("image")["label"].nunique().eq(2).all()
    test = twice[["image", "label"]].reset_index(drop=True)
    _, aus, source = read_estimated(ESTIMATED, test)
    expected = twice[AUS].to_numpy(float)
    assert np.array_equal(aus[AUS].to_numpy(), expected) and source.startswith("mini-XCEPTION AU estimator")


def test_a_test_face_without_estimates_is_an_error(estimated, tmp_path):
    test = estimated[estimated["Usage"] == "PrivateTest"].head(50)[["image", "label"]]
    path = tmp_path / "estimated.csv"
    estimated[estimated["image"] != test["image"].iloc[7]].to_csv(path, index=False)
    with pytest.raises(CompareError, match=f"1 test face.*no estimated AUs, e.g. {test['image'].iloc[7]}"):
        read_estimated(path, test)
    estimated.drop(columns="source").to_csv(path, index=False)
    with pytest.raises(CompareError, match="source"):
        read_estimated(path, test)


def test_interventions_move_the_log_odds_by_exactly_coefficient_times_change(small_logit, paired):
    est, openface = paired
    effects = interventions(small_logit, est, openface)
    assert len(effects) == 34 and effects["max_abs_deviation"].max() < 1e-9
    # decision changes counted as the model itself predicts
    row = effects[(effects["au"] == "AU12_r") & (effects["intervention"] == "zero")].iloc[0]
    moved = est.assign(AU12_r=0.0)
    assert row["changed"] == (small_logit.predict(moved) != small_logit.predict(est)).sum()
    zero_change = est["AU12_r"].abs().mean()
    assert row["mean_abs_change"] == pytest.approx(zero_change)


def test_a_wrong_coefficient_would_be_caught(small_logit, paired):
    """The check reads the probabilities: a model whose log-odds are not its coefficients fails it."""
    est, openface = paired

    class Bent(AULogitModel):
        def log_odds(self, rows):
            out = super().log_odds(rows)
            return out + 0.1 * rows[["AU12_r"]].to_numpy() ** 2

    bent = AULogitModel.from_params(AUS, small_logit.classes, small_logit.params)
    bent.__class__ = Bent
    assert interventions(bent, est, openface)["max_abs_deviation"].max() > 1e-3


def test_agreement_shares_match_the_predictions(small_logit, paired):
    est, openface = paired
    reference = AULogitModel.from_params(AUS, small_logit.classes, small_logit.params * 0.5).predict(openface)
    result = agreement(small_logit, est, openface, reference)
    on_est, on_of = small_logit.predict(est), small_logit.predict(openface)
    assert result["n"] == 400 and 0 <= result["same_on_openface_aus"] <= 1
    assert result["same_on_openface_aus"] == pytest.approx((on_est == on_of).mean())
    assert result["same_as_openface_logit_count"] == (on_est == reference).sum()


def test_leak_control_files_are_tied_to_the_committed_cnn():
    from cnn_baseline.model import DEFAULT_MODEL
    from compare.leak_control import LEAK_RIDGE, LeakRidge, load_leak_control

    control, reason = load_leak_control(DEFAULT_MODEL)
    assert control is not None and reason == ""
    assert control.ridge.coef.shape == (17, 128) and control.logit.features == AUS
    assert control.logit.metadata["input"].startswith("AUs regressed on the emotion CNN")
    other = LEAK_RIDGE  # any other file stands for another CNN: its SHA-256 differs
    control, reason = load_leak_control(other)
    assert control is None and "another CNN" in reason
    assert LeakRidge.from_json(LEAK_RIDGE).predict(np.full((2, 128), 1e6)).max() <= 5.0
