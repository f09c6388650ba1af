"""``make explain`` for the faces OpenFace misses: AU estimates (``AU_CNN=1``), and tables made so.

The replay images (30 real FER2013 48x48 PrivateTest JPGs) are run through the runner with the
stand-in of tests/fixtures/openface/ replaying what the real OpenFace 2.2.0 wrote for them: it
found a face in 24 and none in 6 (tests/fixtures/README.md), exactly the missed case. A real
photo without a face (a crop of a grey wall: uniform pixels) is added, which neither OpenFace
nor the Haar cascade finds a face in. ``test_real_openface_estimates_what_it_misses`` does the
same with a real OpenFace where ``$OPENFACE_BIN`` names one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS
from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel
from explain.estimate import ESTIMATED, ESTIMATED_MISSED, OPENFACE
from tests import test_explain as base
from tests.test_explain import HAVE_TF, ROOT, _check_contributions, _explain, _read

logit_model, replay_images, stand_ins = base.logit_model, base.replay_images, base.stand_ins  # fixtures

ESTIMATED_TABLE = ROOT / "data" / "fer2013_au_cnn" / "fer2013_au_cnn.csv.gz"
needs_tf = pytest.mark.skipif(not HAVE_TF, reason="the AU estimator needs TensorFlow (the cnn extra)")


def _no_face_image(folder: Path) -> str:
    """A 120x90 grey image with no face in it (uniform 128), as a PNG; its name below ``folder``."""
    import cv2

    (folder / "wall").mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "wall" / "grey_wall.png"), np.full((90, 120), 128, np.uint8))
    return "wall/grey_wall.png"


@needs_tf
def test_faces_openface_missed_get_estimated_aus(stand_ins, replay_images, logit_model, tmp_path):
    """24 faces from OpenFace, 6 from the AU estimator (their AUs are ``estimate_aus`` of the same
    crops), the grey image unexplained with its reason; every contribution sums to its log-odds."""
    import cnn_baseline  # noqa: F401
    from analysis.results import file_sha256
    from cnn_baseline.au_estimator import DEFAULT_AU_MODEL, estimate_aus, load_au_estimator
    from cnn_baseline.predict import face_of

    wall = _no_face_image(replay_images)
    estimator = tmp_path / "model" / "au_estimator.keras"  # a copy: a training may rewrite the committed one
    estimator.parent.mkdir()
    shutil.copy(DEFAULT_AU_MODEL, estimator)
    out = tmp_path / "reports"
    args = ["--in", str(replay_images), "--backend", "native", "--openface-bin", str(stand_ins)]
    args += ["--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "cache")]
    assert _explain(*args, "--workers", "1", "--estimate-missed", "--au-estimator", str(estimator)) == 0

    faces = _read(out, "faces.csv")
    assert len(faces) == 30
    assert faces["au_source"].value_counts().to_dict() == {OPENFACE: 24, ESTIMATED_MISSED: 6}
    estimated = faces[faces["au_source"] == ESTIMATED_MISSED]
    found = faces[faces["au_source"] == OPENFACE]
    sha = file_sha256(estimator)[:12]
    assert (
        estimated["au_estimator"] == f"mini-XCEPTION AU estimator au_estimator.keras (sha256 {sha})"
    ).all()
    assert estimated["confidence"].isna().all() and estimated["success"].isna().all()  # no OpenFace fit
    assert found["confidence"].notna().all() and found["success"].notna().all()
    failures = pd.read_csv(next((tmp_path / "cache").glob("*/au_table.failures.csv")))
    missed = failures.loc[failures["reason"] == "no face found", "image"]
    assert set(estimated["image"]) == set(missed) - {wall} and len(missed) == 7

    # The estimated AUs are the estimator's for the same crops (a 48x48 grey image taken whole).
    table = pd.read_csv(next((tmp_path / "cache").glob("*/au_table.with_estimates.csv")))
    rows = table[table["source"] != OPENFACE].set_index("image").loc[estimated["image"]]
    crops = np.stack([face_of(replay_images / name)[0] for name in estimated["image"]])
    expected = estimate_aus(load_au_estimator(estimator), crops[..., None])
    np.testing.assert_allclose(rows[list(AU_R_COLUMNS)].to_numpy(float), expected, atol=1e-6)
    # ... and the AU model explained exactly those values.
    model = AULogitModel.from_json(logit_model)
    probabilities = model.predict_proba(pd.DataFrame(expected, columns=list(AU_R_COLUMNS))[model.features])
    au = estimated[[f"au_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(au, probabilities[list(EMOTIONS)].to_numpy(), atol=1e-6)
    _check_contributions(out, faces)  # the estimated faces' contributions sum to their log-odds too
    assert faces["crop"].all()
    with np.load(out / "explain" / "crops.npz") as saved:
        keys = list(saved["keys"])
        for key, image, crop in zip(estimated["key"], estimated["image"], crops, strict=True):
            assert np.array_equal(saved["faces"][keys.index(key)], crop), image
    cnn = estimated[[f"cnn_{e}" for e in EMOTIONS]].to_numpy()
    assert np.abs(cnn.sum(axis=1) - 1).max() < 1e-6  # the CNN classified the estimator's crops

    unexplained = _read(out, "unexplained.csv")
    assert unexplained["input"].tolist() == [wall]
    reason = unexplained["reason"].iloc[0]
    assert reason.startswith("OpenFace found no face, and the AU estimator") and "Haar cascade" in reason
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert metrics["n_estimated"] == 6 and metrics["openface_missed"] == 7 and metrics["estimated_missed"]
    page = (out / "explain.html").read_text()
    assert f"au_estimator.keras (sha256 {sha})" in page and "OpenFace (24 faces)" in page
    assert page.count(f'<td class="text">{ESTIMATED_MISSED}</td>') == 6
    assert page.count('<td class="text">OpenFace</td>') == 24
    assert "Inputs not explained" in page and "grey_wall.png" in page


def test_without_the_flag_the_page_says_how_many_openface_missed(
    stand_ins, replay_images, logit_model, tmp_path, capsys
):
    out = tmp_path / "reports"
    args = ["--in", str(replay_images), "--backend", "native", "--openface-bin", str(stand_ins)]
    args += ["--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "cache"), "--no-cnn"]
    assert _explain(*args, "--workers", "1") == 0
    faces = _read(out, "faces.csv")
    assert len(faces) == 24 and (faces["au_source"] == OPENFACE).all()
    assert (faces["success"] == (faces["confidence"] > 0.725)).all()  # OpenFace's rows as before
    assert "OpenFace found no face in 6 image(s)" in capsys.readouterr().out
    page = (out / "explain.html").read_text()
    assert "OpenFace found no face in 6 image(s); they are not explained" in page
    assert "AU_CNN=1 (--estimate-missed) would estimate their AUs" in page
    assert len(_read(out, "unexplained.csv")) == 6


def test_estimating_needs_tensorflow_and_an_intensity_model(logit_model, tmp_path, capsys):
    """One-line errors before any work: --no-cnn with the flag; a model reading AU presences."""
    clip = str(tmp_path / "faces")
    cases = [
        (["--in", clip, "--no-cnn", "--model", str(logit_model)], "NO_CNN=1 (--no-cnn) leaves out"),
        (["--aus", str(ESTIMATED_TABLE), "--model", str(logit_model)], "needs --in"),
    ]
    glassbox = ROOT / "reports" / "glassbox" / "fer2013_model.json"
    if HAVE_TF and glassbox.is_file():  # fitted on OpenFace's AUs with their presences (AU*_c)
        cases.append((["--in", clip, "--model", str(glassbox)], "reads AU presences"))
    for args, expected in cases:
        if not HAVE_TF and "--no-cnn" not in args:
            expected = "not installed"
        assert _explain(*args, "--estimate-missed", "--out", str(tmp_path / "r")) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err and len(err.splitlines()) == 1, err


def test_a_table_of_estimated_aus_says_so_per_face(logit_model, tmp_path):
    """AUS= a slice of the vendored estimated FER2013 table, mixed with real OpenFace rows."""
    from tests.conftest import OPENFACE_SAMPLE

    estimated = pd.read_csv(ESTIMATED_TABLE, nrows=12)
    openface = pd.read_csv(OPENFACE_SAMPLE, nrows=8)
    table = tmp_path / "mixed.csv"
    pd.concat([estimated, openface], ignore_index=True).to_csv(table, index=False)
    out = tmp_path / "reports"
    assert _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out), "--no-cnn") == 0
    faces = _read(out, "faces.csv")
    assert faces["au_source"].tolist() == [ESTIMATED] * 12 + [OPENFACE] * 8
    source = estimated["source"].iloc[0]
    assert source.startswith("mini-XCEPTION AU estimator") and "(sha256 " in source
    assert (faces["au_estimator"].iloc[:12] == source).all() and faces["au_estimator"].iloc[12:].isna().all()
    assert faces["confidence"].iloc[:12].isna().all() and faces["confidence"].iloc[12:].notna().all()
    _check_contributions(out, faces)
    page = (out / "explain.html").read_text()
    assert f"<b>{source}</b> (12 faces)" in page and "OpenFace (8 faces)" in page
    assert page.count(f"AUs from the <b>{ESTIMATED}</b>: {source}") == 12
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert metrics["au_sources"] == {source: 12} and not metrics["estimated_missed"]


OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")


@pytest.mark.openface
@needs_tf
@pytest.mark.skipif(
    not (OPENFACE_BIN and os.access(OPENFACE_BIN, os.X_OK)), reason="needs $OPENFACE_BIN (FaceLandmarkImg)"
)
def test_real_openface_estimates_what_it_misses(logit_model, tmp_path):
    """A real OpenFace on 10 replay images (2 it misses): those 2 estimated, all 10 explained."""

    images = tmp_path / "faces"
    chosen = [*sorted((base.OPENFACE / "replay" / "input").glob("*/*.jpg"))][:10]
    for path in chosen:
        (images / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, images / path.parent.name / path.name)
    out = tmp_path / "reports"
    args = ["--in", str(images), "--backend", "native", "--openface-bin", OPENFACE_BIN, "--estimate-missed"]
    args += ["--openface-args", "-mloc model/main_clnf_general.txt", "--model", str(logit_model)]
    assert _explain(*args, "--out", str(out), "--cache", str(tmp_path / "cache"), "--workers", "1") == 0
    faces = _read(out, "faces.csv")
    assert len(faces) == 10 and (faces["au_source"] == ESTIMATED_MISSED).sum() >= 1
    _check_contributions(out, faces)


@needs_tf
def test_images_openface_finds_no_face_in_at_all(stand_ins, replay_images, logit_model, tmp_path, capsys):
    """Only the 6 missed replay images: without the flag a one-line error that points at AU_CNN=1;
    with it every face is estimated (OpenFace wrote no table at all)."""
    recorded = base.OPENFACE / "replay" / "output"
    for path in sorted(replay_images.glob("*/*.jpg")):
        if (recorded / path.parent.name / f"{path.stem}.csv").exists():
            path.unlink()
    assert len(list(replay_images.glob("*/*.jpg"))) == 6
    out = tmp_path / "reports"
    args = ["--in", str(replay_images), "--backend", "native", "--openface-bin", str(stand_ins)]
    args += ["--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "cache")]
    assert _explain(*args, "--workers", "1") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the runner's forwarded progress
    assert error.startswith("error: OpenFace wrote no AU table") and "AU_CNN=1" in error
    assert _explain(*args, "--workers", "1", "--estimate-missed") == 0
    faces = _read(out, "faces.csv")
    assert len(faces) == 6 and (faces["au_source"] == ESTIMATED_MISSED).all()
    _check_contributions(out, faces)
    assert "OpenFace (" not in (out / "explain.html").read_text()  # no face from OpenFace
