"""AU models on AUs, geometric concepts or both (issue: explanations closer to CNN accuracy), on real
data: FER2013 Training faces with OpenFace 2.2.0's AUs and the concepts measured on its landmarks
(``compare.data.load_training``), and the replay set's recorded OpenFace outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS, AUTableError, read_au_table
from analysis.concepts import CONCEPT_COLUMNS
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "openface" / "replay" / "output"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """900 six-class FER2013 Training faces (150 per emotion, fixed seed) with AUs and concepts,
    written as an AU table (``image, label``, AUs, concepts)."""
    from compare.data import load_training

    train = load_training().dropna(subset=list(CONCEPT_COLUMNS))
    rows = train.groupby("label", group_keys=False).sample(150, random_state=0)
    path = tmp_path_factory.mktemp("concepts") / "fer_sample.csv"
    rows[["image", "label", *AU_R_COLUMNS, *CONCEPT_COLUMNS]].to_csv(path, index=False)
    return path


def test_the_au_table_reads_concepts_as_numbers_and_names_a_bad_cell(sample, tmp_path):
    table = read_au_table(sample, label_coding="name")
    assert all(pd.api.types.is_float_dtype(table[c]) for c in CONCEPT_COLUMNS)
    raw = pd.read_csv(sample, dtype=str)
    raw.loc[3, "mouth_open"] = ""  # no landmark fit: empty, NaN
    raw.to_csv(tmp_path / "empty.csv", index=False)
    assert np.isnan(read_au_table(tmp_path / "empty.csv", label_coding="name").loc[3, "mouth_open"])
    raw.loc[5, "eye_open"] = "wide"
    raw.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(AUTableError, match=r"column eye_open, .*'wide' is not a number"):
        read_au_table(tmp_path / "bad.csv", label_coding="name")


@pytest.mark.parametrize(("features", "n"), [("aus", 17), ("concepts", 6), ("both", 23)])
def test_fit_logit_reads_aus_concepts_or_both(sample, tmp_path, features, n):
    """``make fit-logit FEATURES=…``: the logit's inputs, its coefficient table, and the page names
    concept terms as a reader says them (mouth opening, lip-corner height)."""
    from analysis.run_logit import run_fit_logit

    run = run_fit_logit(sample, tmp_path, label_coding="name", features=features, progress=False)
    assert len(run.metrics["features"]) == n and run.metrics["feature_set"] == features
    coefficients = pd.read_csv(tmp_path / "logit" / "coefficients.csv")
    assert set(coefficients["au"]) - {"const"} == set(run.metrics["features"])
    page = (tmp_path / "logit.html").read_text()
    assert ("lip-corner height" in page) == (features != "aus")
    if features == "concepts":
        # a smile raises the lip corners: on the concepts alone, the happy-vs-neutral coefficient is
        # positive (beside AU12 lip corner puller it adds little: not checked there)
        row = coefficients[(coefficients["au"] == "lip_corner_raise") & (coefficients["emotion"] == "happy")]
        assert row["coef"].iloc[0] > 0, row


def test_concepts_asked_of_a_table_without_them_is_one_clear_error(tmp_path):
    from analysis.au_table import SEED_AU_TABLE
    from analysis.run_logit import run_fit_logit

    with pytest.raises(AUTableError, match=r"no geometric concept columns .* `make openface`"):
        run_fit_logit(SEED_AU_TABLE, tmp_path, label_coding="seed", features="both", progress=False)
    assert not (tmp_path / "logit").exists()


def test_a_glass_box_spline_on_a_concept_is_not_clipped_to_the_au_range(sample):
    """AU intensities are clipped to 0-5 before a spline; concepts are signed and below 1, so the
    lip-corner height below 0 (corners pulled down) must still move the spline's value."""
    from analysis.terms import Term, TermDesign

    rows = read_au_table(sample, label_coding="name")
    design = TermDesign([Term(("lip_corner_raise",), "spline"), Term(("AU12_r",), "spline")]).fit(rows)
    probe = pd.DataFrame({"lip_corner_raise": [-0.10, -0.02], "AU12_r": [-1.0, 0.0]})
    values = design.transform(probe)
    concept, au = design.blocks
    assert not np.allclose(values[0, concept], values[1, concept])  # below 0 still distinguished
    assert np.allclose(values[0, au], values[1, au])  # an AU below 0 is 0


def test_explain_shows_concept_terms_like_au_terms(sample, tmp_path):
    """A logit on AUs + concepts explains the replay faces' runner rows: each face's contributions
    sum to its log-odds, and the page and contributions name the concept terms."""
    from analysis.run_logit import run_fit_logit
    from explain.report import render_explain_report
    from explain.run import ExplainSettings, run_explain
    from openface_runner.parse import parse_face_csv

    run_fit_logit(sample, tmp_path / "model", label_coding="name", features="both", progress=False)
    model = tmp_path / "model" / "logit" / "model.json"
    files = sorted(REPLAY.glob("*/*.csv"))
    rows = [{"image": f"{p.stem}.png", "label": p.parent.name, **parse_face_csv(p)} for p in files]
    table = tmp_path / "replay_au.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    out = tmp_path / "out" / "explain"
    metrics = run_explain(ExplainSettings(table=table, model=model, out_dir=out, cnn=False))
    assert set(CONCEPT_COLUMNS) <= set(metrics["model"]["columns"])
    contributions = pd.read_csv(out / "contributions.csv")
    assert {"mouth_open", "lip_corner_raise"} <= set(contributions["term"])
    page = render_explain_report(out, tmp_path / "out" / "explain.html").read_text()
    assert "mouth opening" in page and "lip-corner height" in page
    assert json.loads((out / "metrics.json").read_text())["n_unexplained"] == 0
