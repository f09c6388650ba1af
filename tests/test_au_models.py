"""Every AU model family against one contract on real AU data; JSON files; bad model files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.au_models import BlackBox, ModelFileError, NoExplanationError
from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    FER2013_AU_TABLE,
    LABEL,
    SEED_AU_TABLE,
    read_au_table,
    six_class_rows,
)
from analysis.glassbox import AdditiveLogit, EBMModel, ModelSpec, build, l1_ratio_kwargs, load_glassbox
from analysis.glassbox_selection import candidates
from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel
from analysis.quality import apply_quality_policy

R, C = list(AU_R_COLUMNS), list(AU_C_COLUMNS)


@pytest.fixture(scope="module")
def fer_rows() -> pd.DataFrame:
    """2,400 real FER2013 Training faces (400 per emotion) with OpenFace's AU_r and AU_c."""
    table = six_class_rows(read_au_table(FER2013_AU_TABLE, "emotion", "name"))
    return table[table["Usage"] == "Training"].groupby(LABEL).head(400).reset_index(drop=True)


@pytest.fixture(scope="module")
def seed_rows() -> pd.DataFrame:
    rows = six_class_rows(read_au_table(SEED_AU_TABLE, label_coding="seed"))
    return apply_quality_policy(rows, R, "drop")[0].reset_index(drop=True)


FAMILIES = {
    "logit": lambda: AULogitModel(R),
    "additive": lambda: build(
        ModelSpec("gam_pairs", "logit", "", presences=True, splines=True, pairs=True, C=0.1, balance=0.5),
        R,
        C,
    ),  # fmt: skip
    "ebm": lambda: build(
        ModelSpec(
            "ebm",
            "ebm",
            "",
            presences=True,
            ebm_interactions=3,
            extra={"n_jobs": 1, "ebm": {"outer_bags": 2}},
        ),
        R,
        C,
    ),  # fmt: skip
    "black_box": lambda: BlackBox(R + C),
}


@pytest.fixture(scope="module")
def fitted(fer_rows) -> dict:
    return {name: make().fit(fer_rows, fer_rows[LABEL].to_numpy()) for name, make in FAMILIES.items()}


def _library_probabilities(name: str, model, faces: pd.DataFrame) -> np.ndarray:
    """The probabilities of the library each family wraps, in EMOTIONS order."""
    if name == "logit":
        import statsmodels.api as sm

        x = sm.add_constant(faces[model.features].to_numpy(dtype=float), has_constant="add")
        prob = model.result_.predict(x)  # columns in model.classes order (neutral first)
        return prob[:, [model.classes.index(e) for e in EMOTIONS]]
    if name == "black_box":
        prob, classes = model.model_.predict_proba(faces[R + C].to_numpy(dtype=float)), model.model_.classes_
    elif name == "ebm":
        x = faces[model.features].to_numpy(dtype=float)
        prob, classes = model.model.predict_proba(x), model.model.classes_
    else:
        prob, classes = model.model.predict_proba(model.design.transform(faces)), model.model.classes_
    return prob[:, [list(classes).index(e) for e in EMOTIONS]]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_has_the_same_interface(name, fitted, fer_rows):
    model = fitted[name]
    faces = fer_rows.sample(40, random_state=3).set_index(pd.Index(range(1000, 1040)))
    assert list(model.classes_) == list(EMOTIONS)
    prob = model.predict_proba(faces)
    assert isinstance(prob, pd.DataFrame) and list(prob.columns) == list(EMOTIONS)
    assert prob.index.equals(faces.index) and np.allclose(prob.sum(axis=1), 1, atol=1e-12)
    # the family's own library computes the same probabilities
    np.testing.assert_allclose(prob.to_numpy(), _library_probabilities(name, model, faces), atol=1e-6)
    predicted = model.predict(faces)
    assert isinstance(predicted, np.ndarray) and predicted.shape == (40,)
    assert list(predicted) == list(prob.idxmax(axis=1))
    assert model.decision_function(faces).shape == (40, 6)
    importance = model.importance(faces)
    assert isinstance(importance, pd.Series) and importance.is_monotonic_decreasing and len(importance) >= 17
    if name == "black_box":
        with pytest.raises(NoExplanationError, match="no exact per-term explanation"):
            model.explain(faces.iloc[0])
        return
    for i in range(5):
        parts = model.explain(faces.iloc[i])
        assert list(parts.columns) == [e for e in EMOTIONS if e != "neutral"] and parts.index[0] == "const"
        log_odds = np.log(prob.iloc[i].drop("neutral")) - np.log(prob.iloc[i]["neutral"])
        np.testing.assert_allclose(parts.sum().to_numpy(), log_odds.to_numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["logit", "additive"])
def test_json_round_trip_gives_identical_probabilities(name, fitted, fer_rows, tmp_path):
    model, path = fitted[name], tmp_path / "model.json"
    model.to_json(path)
    assert b"pickle" not in path.read_bytes()
    loaded = AULogitModel.from_json(path) if name == "logit" else load_glassbox(path)
    expected = model.predict_proba(fer_rows).to_numpy()
    np.testing.assert_allclose(loaded.predict_proba(fer_rows).to_numpy(), expected, rtol=0, atol=1e-12)
    face = fer_rows.iloc[7]
    np.testing.assert_allclose(loaded.explain(face).to_numpy(), model.explain(face).to_numpy(), atol=1e-12)


def test_every_additive_candidate_survives_json(fer_rows, tmp_path):
    """L1, splines, pairs and presences: every kind of term and the saga/lbfgs solutions."""
    for spec in candidates(with_presences=True):
        if spec.family == "ebm":
            continue
        model = build(spec, R, C).fit(fer_rows, fer_rows[LABEL])
        model.to_json(tmp_path / f"{spec.key}.json", metadata={"key": spec.key})
        loaded = load_glassbox(tmp_path / f"{spec.key}.json")
        assert isinstance(loaded, AdditiveLogit) and loaded.metadata == {"key": spec.key}
        assert loaded.n_terms == model.n_terms and loaded.n_parameters == model.n_parameters
        diff = np.abs(loaded.predict_proba(fer_rows).to_numpy() - model.predict_proba(fer_rows).to_numpy())
        assert diff.max() <= 1e-12, spec.key


def test_ebm_is_saved_as_its_settings_and_refitted_identically(fitted, fer_rows, tmp_path):
    model = fitted["ebm"]
    model.to_json(tmp_path / "ebm.json")
    loaded = load_glassbox(tmp_path / "ebm.json")
    assert isinstance(loaded, EBMModel) and not loaded.is_fitted
    loaded.fit(fer_rows, fer_rows[LABEL])
    np.testing.assert_allclose(loaded.predict_proba(fer_rows), model.predict_proba(fer_rows), atol=1e-12)


def test_l1_candidate_is_sparse_on_the_seed_data(seed_rows):
    assert l1_ratio_kwargs("l1") == {"l1_ratio": 1.0}  # scikit-learn >= 1.8: l1_ratio alone decides
    spec = next(s for s in candidates(with_presences=False) if s.key == "logit_l1")
    l1 = build(spec, R, []).fit(seed_rows, seed_rows[LABEL])
    assert l1.model.l1_ratio == 1.0
    zero = int((l1.model.coef_ == 0).sum())  # scikit-learn's coefficients, one row per emotion
    assert zero >= 0.25 * l1.model.coef_.size, f"only {zero} of {l1.model.coef_.size} L1 coefficients are 0"
    assert int((l1.weights == 0).sum()) >= 15  # log-odds vs neutral: both coefficients 0
    l2 = build(ModelSpec("l2", "logit", "", penalty="l2", C=spec.C, balance=spec.balance), R, []).fit(
        seed_rows, seed_rows[LABEL]
    )
    assert int((l2.model.coef_ == 0).sum()) == 0  # the same settings with L2 zero nothing


# ---------------------------------------------------------------- bad model files


def _good_logit(fitted, tmp_path) -> dict:
    fitted["logit"].to_json(tmp_path / "good_logit.json")
    return json.loads((tmp_path / "good_logit.json").read_text())


def _good_additive(fitted, tmp_path) -> dict:
    fitted["additive"].to_json(tmp_path / "good_additive.json")
    return json.loads((tmp_path / "good_additive.json").read_text())


def _set(data: dict, path: tuple, value) -> dict:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


# (case, kind of model, how the file is made, what the one-line message must say)
BAD_FILES = [
    ("missing", "both", None, "no such model file"),
    ("directory", "both", "dir", "is a directory"),
    ("text file", "both", b"coefficients: happy AU12 1.7\n", "not valid JSON"),
    ("binary file", "both", bytes(range(256)) * 4, "not UTF-8"),
    ("malformed JSON", "both", b'{"format": "au-workbench/mnlogit/1", "features": [', "not valid JSON"),
    ("200,000-deep JSON", "both", b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    ("a JSON list", "both", b"[1, 2, 3]", "JSON object, not a list"),
    ("NaN constant", "both", b'{"format": NaN}', "non-finite number NaN"),
    ("another format", "both", b'{"format": "keras"}', "not an AU model file"),
    ("null coefficient", "logit", (("params", "happy", "AU12_r"), None), "finite number, not null"),
    ("text coefficient", "logit", (("params", "happy", "const"), "1.5"), "finite number, not the text"),
    ("missing coefficient", "logit", (("params", "sad"), {"const": 1.0}), "exactly 'const' and the features"),
    ("unknown emotion", "logit", (("classes",), ["neutral", "bored"]), "unknown emotion(s) bored"),
    ("reference not first", "logit", (("classes",), sorted(EMOTIONS)), "must be the first"),
    ("null weight", "additive", (("weights", "happy", 3), None), "finite number, not null"),
    ("boolean intercept", "additive", (("intercepts", "sad"), True), "finite number, not a boolean"),
    ("weights of the wrong length", "additive", (("weights", "angry"), [0.5, 1.0]), "expected"),
    ("scale of the wrong length", "additive", (("scale",), [1.0]), "scale has 1 values"),
    ("null center", "additive", (("center",), None), "center must be a list of numbers, not null"),
    ("zero scale", "additive", "zero scale", "every scale must be positive"),
    ("unknown term kind", "additive", (("terms", 0, "kind"), "cubic"), "term 0: kind one of"),
    ("knots not increasing", "additive", "knots not increasing", "increasing"),
    ("unknown spec field", "additive", (("spec", "pickle"), "x"), "unknown spec field(s) pickle"),
]  # fmt: skip


@pytest.mark.parametrize("case,kind,content,message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_model_file_gives_one_clear_line(case, kind, content, message, fitted, tmp_path):
    path = tmp_path / "model.json"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "knots not increasing":
        data = _good_additive(fitted, tmp_path)
        column = next(iter(data["knots"]))
        data["knots"][column] = sorted(data["knots"][column], reverse=True)
        path.write_text(json.dumps(data))
    elif content == "zero scale":
        data = _good_additive(fitted, tmp_path)
        data["scale"] = [0.0] * len(data["scale"])
        path.write_text(json.dumps(data))
    elif content is not None:
        data = (_good_logit if kind == "logit" else _good_additive)(fitted, tmp_path)
        path.write_text(json.dumps(_set(data, *content)))
    loaders = {"logit": [AULogitModel.from_json], "additive": [load_glassbox]}
    for load in loaders.get(kind, [AULogitModel.from_json, load_glassbox]):
        with pytest.raises(ModelFileError) as caught:
            load(path)
        text = str(caught.value)
        assert text.startswith(f"{path}: ") and "\n" not in text, text
        assert message in text, text
