"""``make compare IN=<labelled folder>``: FER2013's models on another labelled dataset.

OpenFace is replayed by the stand-in of tests/fixtures/openface/ (it writes what the real
OpenFace 2.2.0 wrote for the same 30 FER2013 PrivateTest images), so the runner, the cache, the
crops, every model and the page run for real; the models are fitted on a real 900-face subset
of FER2013 Training to stay quick. ``test_real_openface_on_a_labelled_folder`` runs a real
OpenFace where ``$OPENFACE_BIN`` names one.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import FER2013_AU_TABLE
from analysis.labels import EMOTIONS
from compare.cli import main
from compare.statistics import calibration, scores_with_ci
from tests.conftest import FIXTURES, fer2013_training_sample

OPENFACE = FIXTURES / "openface"
ROOT = Path(__file__).resolve().parent.parent
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")


@pytest.fixture(scope="module")
def train_table(tmp_path_factory) -> Path:
    """150 real FER2013 Training AU rows per emotion (what the models are fitted on here)."""
    return fer2013_training_sample(tmp_path_factory.mktemp("train"), 150)


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Path:
    """A FaceLandmarkImg that replays the recorded real outputs."""
    script = tmp_path / "bin" / "FaceLandmarkImg"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{OPENFACE / "replay_openface.py"}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("REPLAY_RECORDED", str(OPENFACE / "replay" / "output"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return script


@pytest.fixture
def labelled(tmp_path, monkeypatch) -> Path:
    """The 30 replay faces with folder names met in the wild, a contempt folder and a fear folder."""
    root = tmp_path / "posed"
    shutil.copytree(OPENFACE / "replay" / "input", root)
    (root / "angry").rename(root / "anger")
    (root / "sad").rename(root / "sadness")
    for extra in ("contempt", "fear"):
        (root / extra).mkdir()
        shutil.copy(next((root / "happy").iterdir()), root / extra / "extra.jpg")
    monkeypatch.setenv("REPLAY_INPUT_ROOT", str(root))
    return root


def _args(out: Path, train: Path, *more: str) -> list[str]:
    return [
        "run",
        "--out",
        str(out),
        "--au-table",
        str(train),
        "--resamples",
        "100",
        "--no-fer-package",
        *more,
    ]


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("tensorflow"), reason="the CNN stage needs TensorFlow"
)
def test_labelled_folder_through_the_runner_and_as_a_table(stand_in, labelled, train_table, tmp_path, capsys):
    out, cache = tmp_path / "reports", tmp_path / "cache"
    openface = ["--backend", "native", "--openface-bin", str(stand_in), "--cache", str(cache)]
    # A FER2013 page's confusion.csv in the same reports folder, made up: every model right on every
    # face there, so every confusion made here "grew" and its faces go to the gallery.
    fer_rows = [
        (key, true, predicted, 10 if true == predicted else 0)
        for key in ("logit_au_r", "glassbox", "hgb_au_rc", "cnn", "majority")
        for true in EMOTIONS
        for predicted in EMOTIONS
    ]
    (out / "compare").mkdir(parents=True)
    pd.DataFrame(fer_rows, columns=["model", "true", "predicted", "count"]).to_csv(
        out / "compare" / "confusion.csv", index=False
    )
    assert main(_args(out, train_table, "--in", str(labelled), *openface, "--subject", r"_(\d)")) == 0
    metrics = json.loads((out / "compare-posed" / "metrics.json").read_text())
    dataset = metrics["dataset"]
    assert dataset["unknown_labels"] == {"contempt": 1} and dataset["n_fear"] == 1
    assert metrics["n_end_to_end"] == 30  # the six-class images; contempt and fear left out
    table = next(cache.glob("posed-*/au_table.csv"))
    rows = pd.read_csv(table)
    known = rows[~rows["image"].str.startswith(("contempt/", "fear/"))]
    assert metrics["n_paired"] == len(known) > 0  # every OpenFace face is paired
    assert dataset["crops"]["whole 48x48 crop"] == 30  # FER2013-style crops are used whole
    # subjects: the first digit after "_"; the paired faces (with an OpenFace face) hold some of them
    assert 2 <= metrics["models"]["cnn"]["n_subjects"] <= dataset["n_subjects"] <= 10
    for key in ("logit_au_r", "glassbox", "hgb_au_rc", "cnn"):
        model = metrics["models"][key]
        assert 0 <= model["accuracy_ci"][0] <= model["accuracy"] <= model["accuracy_ci"][1] <= 1
        assert 0 <= model["calibration"]["ece"] <= 1 and 0 <= model["calibration"]["brier"] <= 2

    # The CNN sees each whole 48x48 image, as `cnn_baseline predict` does: same labels.
    from cnn_baseline.model import DEFAULT_MODEL
    from cnn_baseline.predict import predict_files

    predictions = pd.read_csv(out / "compare-posed" / "predictions.csv", keep_default_na=False)
    assert set(predictions["label"]) == set(EMOTIONS)
    own = predict_files([labelled / image for image in predictions["image"]], DEFAULT_MODEL)
    assert (own["face"] == "crop").all()
    six = own[list(EMOTIONS)].to_numpy()
    assert (np.array(EMOTIONS)[six.argmax(axis=1)] == predictions["cnn"].to_numpy()).all()

    transfer = metrics["transfer"]  # 18 paired faces: too few to refit 108 coefficients; said so
    assert transfer["available"] or transfer["reason"]
    page = (out / "compare-posed.html").read_text()
    assert "contempt" in page and "Subjects" in page and "Calibration" in page and "Transfer against" in page
    assert 'href="compare-posed.html"' in (out / "index.html").read_text()

    # Where the errors go: the faces behind the confusions that grew most, at most 3 x 4, each one
    # a face of the true emotion that the named model called the confused one, with its explanation.
    assert metrics["confusion_growth"] and any(metrics["confusion_growth"].values())
    results = out / "compare-posed"
    gallery = pd.read_csv(results / "gallery.csv")
    grown = gallery[gallery["case"] == "grown"]
    assert 0 < grown["confusion"].nunique() <= 3 and grown["confusion"].value_counts().max() <= 4
    assert grown["image"].is_unique and gallery["image"].is_unique  # no face twice in the gallery
    by_image = predictions.set_index("image")
    for card in grown.itertuples():
        true, predicted = card.confusion.split(" → ")
        assert card.true == true and by_image.loc[card.image, card.model] == predicted
        assert {"true": true, "predicted": predicted} in [
            {k: r[k] for k in ("true", "predicted")} for r in metrics["confusion_growth"][card.model]
        ]
    contributions = pd.read_csv(results / "gallery_contributions.csv")
    sums = contributions.groupby("image")["contribution"].sum()
    assert np.allclose(sums[gallery["image"]].to_numpy(), gallery["log_odds"].to_numpy())
    assert len(np.load(results / "gallery.npz")["faces"]) == len(gallery)  # one crop per card
    assert 'id="grown-gallery"' in page and page.count('class="card grown"') == len(grown)
    assert 'alt="Reliability diagram' in page

    # The same faces from the table alone (AUS= IMAGES=): the same AU scores.
    again = tmp_path / "again"
    assert (
        main(_args(again, train_table, "--aus", str(table), "--images", str(labelled), "--name", "posed"))
        == 0
    )
    second = json.loads((again / "compare-posed" / "metrics.json").read_text())
    for key in ("logit_au_r", "cnn"):
        assert second["models"][key]["accuracy"] == metrics["models"][key]["accuracy"]
    assert "took" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("layout", "subject", "message"),
    [
        ({}, None, "no image files"),
        ({"contempt": 2, "other": 1}, None, "no image in a folder named after one of the six emotions"),
        ({"happiness": 3}, None, "only one emotion (happy)"),
        ({"happy": 2, "sad": 2}, r"^(zz)", "matches no of the 4 file names"),
        ({"happy": 2, "sad": 2}, r"^(S)", "finds one subject"),
        ({"happy": 2, "sad": 2}, r"(", "is not a regular expression"),
    ],
)
def test_bad_folders_are_one_line_errors_before_any_work(layout, subject, message, tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    face = next((OPENFACE / "replay" / "input" / "happy").iterdir())
    for name, count in layout.items():
        (folder / name).mkdir()
        for i in range(count):
            shutil.copy(face, folder / name / f"S00{i}_{i}.jpg")
    out = tmp_path / "reports"
    args = [
        "run",
        "--out",
        str(out),
        "--in",
        str(folder),
        "--backend",
        "native",
        "--openface-bin",
        "/nonexistent",
    ]
    assert main([*args, *(["--subject", subject] if subject else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_no_face_anywhere_is_an_error(train_table, tmp_path, capsys):
    folder = tmp_path / "faces"
    shutil.copytree(OPENFACE / "replay" / "input", folder)
    table = tmp_path / "aus.csv"
    rows = pd.read_csv(FER2013_AU_TABLE, nrows=3).drop(columns=["Usage"]).rename(columns={"emotion": "label"})
    rows.to_csv(table, index=False)  # real AU rows, but of no image of the folder
    out = tmp_path / "reports"
    assert main(["run", "--out", str(out), "--au-table", str(train_table), "--aus", str(table),
                 "--images", str(folder)]) == 2  # fmt: skip
    assert "OpenFace found no face in any of the 30 labelled images" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_aus_without_images_and_both_inputs_are_usage_errors(tmp_path, capsys):
    table = tmp_path / "aus.csv"
    table.write_text("image\n")
    assert main(["run", "--out", str(tmp_path), "--aus", str(table)]) == 2
    assert "needs IMAGES=" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path), "--aus", str(table), "--in", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err


def test_cluster_bootstrap_resamples_subjects():
    """Two subjects, one always right and one always wrong: resampling subjects gives intervals
    that reach 0 and 1; resampling the 200 faces one by one gives a narrow interval."""
    truth = np.array(["happy"] * 200)
    pred = np.array(["happy"] * 100 + ["sad"] * 100)
    groups = np.array(["A"] * 100 + ["B"] * 100)
    faces = scores_with_ci(truth, pred, 400, 0)
    subjects = scores_with_ci(truth, pred, 400, 0, groups=groups)
    assert subjects["accuracy"] == faces["accuracy"] == 0.5
    assert subjects["accuracy_ci"] == [0.0, 1.0] and subjects["n_subjects"] == 2
    assert faces["accuracy_ci"][0] > 0.4 and faces["accuracy_ci"][1] < 0.6


def test_calibration_scores():
    truth = np.array(["happy", "sad", "angry", "neutral"])
    onehot = np.eye(6)[[EMOTIONS.index(t) for t in truth]]
    perfect = calibration(truth, onehot)
    assert perfect["brier"] == 0 and perfect["ece"] == 0
    uniform = calibration(truth, np.full((4, 6), 1 / 6))
    assert uniform["brier"] == pytest.approx(30 / 36)
    # top probability 1/6, accuracy 1/4 (argmax: the first emotion, angry, once right)
    assert uniform["ece"] == pytest.approx(abs(1 / 4 - 1 / 6))
    with_nan = calibration(truth, np.vstack([onehot[:3], np.full((1, 6), np.nan)]))
    assert with_nan["n"] == 3


def test_crop_rule(tmp_path):
    """48x48 grey: whole; larger with an OpenFace box: the landmark crop; neither: Haar, else whole."""
    import cv2

    from compare.dataset import face_crop

    face_path = next((OPENFACE / "replay" / "input" / "happy").iterdir())
    grey = cv2.imread(str(face_path), cv2.IMREAD_GRAYSCALE)
    crop, kind = face_crop(face_path, {}, False)
    assert kind == "whole 48x48 crop" and np.array_equal(crop, grey)
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.cvtColor(cv2.resize(grey, (96, 96)), cv2.COLOR_GRAY2BGR))
    box = {"face_x": 20.0, "face_y": 30.0, "face_w": 56.0, "face_h": 56.0}
    crop, kind = face_crop(big, box, True)
    assert kind == "OpenFace landmarks" and crop.shape == (48, 48)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 80), 128, np.uint8))
    crop, kind = face_crop(blank, {}, False)
    assert kind == "whole image" and crop.shape == (48, 48)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert face_crop(broken, {}, False)[0] is None


@pytest.mark.openface
@pytest.mark.skipif(not OPENFACE_BIN, reason="needs $OPENFACE_BIN (a real FaceLandmarkImg)")
def test_real_openface_on_a_labelled_folder(train_table, tmp_path):
    pytest.importorskip("tensorflow")
    folder = tmp_path / "faces"
    shutil.copytree(OPENFACE / "replay" / "input", folder)
    out = tmp_path / "reports"
    args = [
        "--in",
        str(folder),
        "--backend",
        "native",
        "--openface-bin",
        OPENFACE_BIN,
        "--cache",
        str(tmp_path),
    ]
    assert main(_args(out, train_table, *args, "--openface-args", "-mloc model/main_clnf_general.txt")) == 0
    metrics = json.loads((out / "compare-faces" / "metrics.json").read_text())
    assert metrics["n_end_to_end"] == 30 and metrics["n_paired"] >= 15


def test_in_domain_refit_with_subject_folds_and_cluster_robust_errors(tmp_path):
    """The refitted logit on 1,200 real FER2013 AU rows in 40 made-up subjects: GroupKFold scores,
    cluster-robust standard errors equal to statsmodels' own, FACS verdicts beside FER2013's.
    (600 rows hold 9 disgust faces, which separate: the unpenalised MLE does not exist there and
    the refit is the L2-penalised one, tests/test_compare_small_datasets.py.)"""
    import statsmodels.api as sm

    from analysis.au_table import read_au_table, six_class_rows
    from analysis.logit import fit_logit
    from compare.data import CompareData
    from compare.models import AU_R
    from compare.transfer import in_domain

    rows = pd.read_csv(FER2013_AU_TABLE).sample(4000, random_state=0)
    path = tmp_path / "aus.csv"
    rows.to_csv(path, index=False)
    aus = six_class_rows(read_au_table(path, label_column="emotion", label_coding="name")).reset_index(
        drop=True
    )
    train, test = aus.iloc[:1500].reset_index(drop=True), aus.iloc[1500:2700].reset_index(drop=True)
    test.insert(2, "has_face", True)
    groups = np.array([f"S{i % 40}" for i in range(len(test))])
    data = CompareData(train, test, np.zeros((len(test), 48, 48, 1), np.uint8), groups=groups)
    fer = fit_logit(train, AU_R, tests=False).coefficients
    metrics, tables = in_domain(data, fer, 50, 0)
    assert metrics["available"] and metrics["cv"].startswith("GroupKFold")
    assert metrics["model"] == "unpenalised MLE" and metrics["model_reason"] == ""
    assert 0 <= metrics["accuracy_ci"][0] <= metrics["accuracy"] <= metrics["accuracy_ci"][1] <= 1
    assert metrics["se"] == "cluster-robust by subject"
    assert metrics["normalised"]["available"] and 0 <= metrics["normalised"]["accuracy"] <= 1
    coefficients = tables["transfer_coefficients.csv"]
    assert {"coef", "se", "p", "coef_fer2013", "p_fer2013"} <= set(coefficients.columns)
    # the cluster-robust standard errors are statsmodels' own for the same fit
    from analysis.logit import AULogitModel

    model = AULogitModel(AU_R).fit(test, test["label"])
    _, codes = np.unique(groups, return_inverse=True)
    with warnings.catch_warnings():  # the same fit our code runs quietly
        warnings.simplefilter("ignore")
        direct = sm.MNLogit(model.codes_, model.exog_).fit(
            method="newton", maxiter=100, disp=0, cov_type="cluster", cov_kwds={"groups": codes}
        )
    happy = model.classes[1:].index("happy")
    ours = coefficients[coefficients["emotion"] == "happy"].set_index("au")["se"]
    assert np.allclose(ours.to_numpy(), np.asarray(direct.bse)[:, happy], rtol=1e-4)
    assert set(tables["transfer_facs.csv"].columns) >= {"verdict_in_domain", "verdict_fer2013"}


def test_confusions_that_grew_most():
    from compare.transfer import confusion_growth

    def table(neutral_as_sad: int) -> pd.DataFrame:
        rows = [("m", "neutral", "neutral", 10 - neutral_as_sad), ("m", "neutral", "sad", neutral_as_sad)]
        rows += [("m", "sad", "sad", 8), ("m", "sad", "neutral", 2)]
        return pd.DataFrame(rows, columns=["model", "true", "predicted", "count"])

    growth = confusion_growth(table(6), table(1))["m"]
    assert growth[0] == {
        "true": "neutral", "predicted": "sad", "share": 0.6, "share_fer2013": 0.1, "growth": 0.5, "count": 6
    }  # fmt: skip
    assert len(growth) == 1  # sad -> neutral did not grow


def test_grown_confusions_pick_bounded_faces_of_each_confusion():
    from compare.gallery import pick_grown_confusions

    truth = np.array(["neutral"] * 10 + ["happy"] * 10 + ["sad"] * 10)
    a = np.array(["sad"] * 8 + ["neutral"] * 2 + ["happy"] * 10 + ["angry"] * 6 + ["sad"] * 4)
    b = np.array(["sad"] * 10 + ["surprise"] * 10 + ["sad"] * 10)

    def grew(true: str, predicted: str, growth: float) -> dict:
        return {"true": true, "predicted": predicted, "growth": growth}

    growth = {
        "a": [grew("neutral", "sad", 0.5), grew("sad", "angry", 0.2)],
        "b": [grew("neutral", "sad", 0.6), grew("happy", "surprise", 0.4)],
    }
    chosen = pick_grown_confusions(truth, {"a": a, "b": b}, growth, 2, 4, exclude={0, 1})
    # the two largest distinct confusions: b's neutral -> sad (0.6), then b's happy -> surprise (0.4)
    firsts = chosen.drop_duplicates("confusion")
    assert list(zip(firsts["model"], firsts["confusion"], strict=True)) == [
        ("b", "neutral → sad"),
        ("b", "happy → surprise"),
    ]
    assert chosen.groupby("confusion").size().max() == 4 and chosen["position"].is_unique
    assert not {0, 1} & set(chosen["position"])
    for row in chosen.itertuples():
        true, predicted = row.confusion.split(" → ")
        assert truth[row.position] == true and {"a": a, "b": b}[row.model][row.position] == predicted
        assert row.explain == predicted
    assert pick_grown_confusions(truth, {"a": a}, {}, 3, 4).empty


def test_backslash_in_a_file_name_keeps_its_au_row(tmp_path):
    """Issue 26: ``a\\b.jpg`` is a file name, not a folder: its AU row must reach the paired set
    byte for byte (it was rewritten to ``a/b.jpg`` and scored as "no face"); a table written on
    Windows (``happy\\c.jpg`` for ``happy/c.jpg``) still matches its image."""
    from compare.data import load_training
    from compare.dataset import load_dataset, table_image

    faces = (
        sorted((OPENFACE / "replay" / "input" / "happy").iterdir())[:2]
        + sorted((OPENFACE / "replay" / "input" / "sad").iterdir())[:2]
    )
    names = ["happy/a\\b.jpg", "happy/c.jpg", "sad/d\\e.jpg", "sad/f.jpg"]
    folder = tmp_path / "faces"
    for face, name in zip(faces, names, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(face, folder / name)
    # real OpenFace AU rows of FER2013 faces, one per image; "happy\c.jpg": a Windows table's name
    rows = pd.read_csv(FER2013_AU_TABLE).head(4).assign(image=[names[0], "happy\\c.jpg", names[2], names[3]])
    table = tmp_path / "aus.csv"
    rows.to_csv(table, index=False)
    train = load_training(FER2013_AU_TABLE).groupby("label").head(20)
    data, _ = load_dataset(table, folder, train, "bs", "test")
    assert list(data.test["image"]) == names  # byte for byte, in the folder's order
    assert data.paired.all()
    assert table_image("happy/a\\b.jpg", {"happy/a\\b.jpg"}) == "happy/a\\b.jpg"
    assert table_image("happy\\c.jpg", {"happy/c.jpg"}) == "happy/c.jpg"
    assert table_image("x\\y.jpg", {"happy/c.jpg"}) == "x\\y.jpg"


def _fer2013_rows(tmp_path: Path, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real FER2013 AU rows (six classes): 1,500 to fit the FER2013 logit on, ``n`` test faces."""
    from analysis.au_table import read_au_table, six_class_rows

    path = tmp_path / "aus.csv"
    pd.read_csv(FER2013_AU_TABLE).sample(4000, random_state=0).to_csv(path, index=False)
    aus = six_class_rows(read_au_table(path, label_column="emotion", label_coding="name"))
    aus = aus.reset_index(drop=True)
    test = aus.iloc[1500 : 1500 + n].reset_index(drop=True)
    test.insert(2, "has_face", True)
    return aus.iloc[:1500].reset_index(drop=True), test


def test_in_domain_falls_back_to_l2_where_the_mle_does_not_exist(tmp_path):
    """600 real rows in 40 subjects hold 9 disgust faces, which separate: the unpenalised MNLogit
    diverges (|b| > 400, no convergence), so the refit is the L2-penalised logit on the same
    folds, said so, with coefficients against neutral and no SEs or p-values."""
    from analysis.logit import fit_logit
    from compare.data import CompareData
    from compare.models import AU_R
    from compare.transfer import PENALISED, in_domain

    train, test = _fer2013_rows(tmp_path, 600)
    groups = np.array([f"S{i % 40}" for i in range(len(test))])
    data = CompareData(train, test, np.zeros((len(test), 48, 48, 1), np.uint8), groups=groups)
    metrics, tables = in_domain(data, fit_logit(train, AU_R, tests=False).coefficients, 50, 0)
    assert metrics["available"] and metrics["model"] == PENALISED
    assert "could not be fitted" in metrics["model_reason"] and "separation" in metrics["model_reason"]
    assert 0 <= metrics["accuracy"] <= 1 and metrics["normalised"]["model"] == PENALISED
    coefficients = tables["transfer_coefficients.csv"]
    assert len(coefficients) == 5 * 18 and coefficients["se"].isna().all() and coefficients["p"].isna().all()
    assert np.isfinite(coefficients["coef"]).all() and coefficients["coef"].abs().max() < 10
    assert tables["transfer_facs.csv"]["verdict_in_domain"].str.endswith("(untested)").all()


def test_in_domain_class_absent_from_a_training_fold_gets_probability_zero(tmp_path):
    """A class shown by one subject only: in that subject's test fold no training face has it;
    its probability there is 0 (not NaN), and every out-of-fold row sums to 1."""
    from sklearn.model_selection import GroupKFold

    from compare.transfer import _fit_penalised, _out_of_fold

    _, test = _fer2013_rows(tmp_path, 300)
    groups = np.array([f"S{i % 5}" for i in range(len(test))])
    groups[test["label"].to_numpy() == "disgust"] = "S9"  # only S9 shows disgust
    truth = test["label"].to_numpy()
    folds = list(GroupKFold(n_splits=6).split(test, truth, groups))  # one subject per fold
    oof = _out_of_fold(test, truth, folds, _fit_penalised)
    assert np.isfinite(oof.to_numpy()).all() and np.allclose(oof.sum(axis=1), 1)
    alone = groups == "S9"
    assert (oof.loc[alone, "disgust"] == 0).all() and (oof.loc[~alone, "disgust"] > 0).all()


def test_in_domain_without_two_emotions_is_not_available(tmp_path):
    """Paired faces of one emotion: nothing to cross-validate; a reason, no exception."""
    from analysis.logit import fit_logit
    from compare.data import CompareData
    from compare.models import AU_R
    from compare.transfer import in_domain

    train, test = _fer2013_rows(tmp_path, 300)
    test = test[test["label"] == "happy"].reset_index(drop=True)
    data = CompareData(train, test, np.zeros((len(test), 48, 48, 1), np.uint8))
    metrics, tables = in_domain(data, fit_logit(train, AU_R, tests=False).coefficients, 50, 0)
    assert not metrics["available"] and "one emotion only" in metrics["reason"] and tables == {}
