"""``make explain`` on real recordings: images and videos through the runner, tables alone, the page.

OpenFace is replayed by the stand-ins of tests/fixtures/openface/ (they write what the real
OpenFace 2.2.0 wrote for the same inputs, 2D landmarks included), so the runner, its face
boxes, the crops from the real images and video frames, both models and the page all run for
real; ``test_real_openface_end_to_end`` runs a real OpenFace where ``$OPENFACE_BIN`` names one.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.labels import EMOTIONS
from analysis.logit import AULogitModel
from explain.cli import main
from explain.video import bounded_gallery, smooth, window_frames
from tests.browser import needs_chromium, open_in_chromium
from tests.conftest import FIXTURES

OPENFACE = FIXTURES / "openface"
VIDEO = OPENFACE / "video"
RECORDED = VIDEO / "recorded"
ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>&<b>bold"
try:
    import tensorflow  # noqa: F401

    HAVE_TF = True
except ImportError:
    HAVE_TF = False


@pytest.fixture(scope="module")
def logit_model(tmp_path_factory) -> Path:
    """`fit-logit` on the bundled seed AUs (what `make fit-logit` saves)."""
    from analysis.au_table import SEED_AU_TABLE
    from analysis.run_logit import run_fit_logit

    out = tmp_path_factory.mktemp("fit")
    run = run_fit_logit(SEED_AU_TABLE, out, label_coding="seed", progress=False)
    return run.results_dir / "model.json"


@pytest.fixture
def stand_ins(tmp_path, monkeypatch) -> Path:
    """A bin/ folder whose FaceLandmarkImg, FeatureExtraction and FaceLandmarkVidMulti replay real outputs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "FaceLandmarkImg": f'"{OPENFACE / "replay_openface.py"}"',
        "FeatureExtraction": f'"{VIDEO / "replay_sequence.py"}" FeatureExtraction',
        "FaceLandmarkVidMulti": f'"{VIDEO / "replay_sequence.py"}" FaceLandmarkVidMulti',
    }
    for name, target in scripts.items():
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" {target} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("REPLAY_RECORDED", str(OPENFACE / "replay" / "output"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return bin_dir / "FaceLandmarkImg"


@pytest.fixture
def replay_images(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "faces"
    shutil.copytree(OPENFACE / "replay" / "input", root)
    monkeypatch.setenv("REPLAY_INPUT_ROOT", str(root))
    return root


def _explain(*args: str) -> int:
    return main(["run", *args])


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "explain" / name, keep_default_na=False, na_values=[""])


def _check_contributions(out: Path, rows: pd.DataFrame) -> None:
    """Every explained face's contributions sum to its log-odds (1e-9)."""
    contributions = _read(out, "contributions.csv")
    sums = contributions.groupby("key")["contribution"].sum()
    assert set(sums.index) == set(rows["key"])
    gaps = (sums - rows.set_index("key")["log_odds"]).abs()
    assert gaps.max() < 1e-9


def test_images_through_the_runner(stand_ins, replay_images, logit_model, tmp_path):
    """30 replay images -> 24 faces: both models, exact contributions, crops, counterfactuals."""
    out = tmp_path / "reports"
    args = ["--in", str(replay_images), "--backend", "native", "--openface-bin", str(stand_ins)]
    args += [
        "--model",
        str(logit_model),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--workers",
        "1",
    ]
    assert _explain(*args) == 0
    faces = _read(out, "faces.csv")
    assert len(faces) == 24
    au = faces[[f"au_{e}" for e in EMOTIONS]].to_numpy()
    assert np.abs(au.sum(axis=1) - 1).max() < 1e-9
    assert (faces["au_predicted"] == [EMOTIONS[i] for i in au.argmax(axis=1)]).all()
    _check_contributions(out, faces)
    assert faces["crop"].all()  # the runner's box (-2Dfp) of every face
    if HAVE_TF:
        cnn = faces[[f"cnn_{e}" for e in EMOTIONS]].to_numpy()
        assert np.abs(cnn.sum(axis=1) - 1).max() < 1e-6
    with np.load(out / "explain" / "crops.npz") as crops:
        assert crops["faces"].shape == (24, 48, 48) and crops["faces"].std() > 10  # real pixels, not blank
    # The logit's counterfactual is exact, and applying its change really flips the model.
    model = AULogitModel.from_json(logit_model)
    table = pd.read_csv(next((tmp_path / "cache").glob("*/au_table.csv")))
    assert faces["cf_exact"].all() and (faces["cf_target"] != faces["au_predicted"]).all()
    for _, face in faces.iterrows():
        row = table.loc[table["image"] == face["image"], model.features].iloc[0].astype(float)
        for part in face["cf_changes"].split(";"):
            column, change = part.split(":")
            row[column] += float(change)
        assert model.predict(row.to_frame().T)[0] == face["cf_target"]
        assert row.between(0, 5).all()
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert metrics["model"]["counterfactual_exact"] and "emotion_all.csv" in metrics["model"]["training"]
    assert (faces["success"] == (faces["confidence"] > 0.725)).all() and (faces["success"] == 0).sum() == 3
    assert "OpenFace success 0" in (out / "explain.html").read_text()
    # rerun: the runner's cache answers, the results are the same
    assert _explain(*args) == 0
    assert _read(out, "faces.csv")[["key", "au_predicted"]].equals(faces[["key", "au_predicted"]])


@needs_chromium
def test_image_page_shows_a_hostile_name_as_text(stand_ins, replay_images, logit_model, tmp_path):
    """An image named like HTML, explained from a table given alone (AUS=) with its folder (IN=)."""
    out = tmp_path / "reports"
    args = ["--in", str(replay_images), "--backend", "native", "--openface-bin", str(stand_ins)]
    args += ["--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "cache"), "--no-cnn"]
    assert _explain(*args) == 0
    table_path = next((tmp_path / "cache").glob("*/au_table.csv"))
    table = pd.read_csv(table_path)
    first = table["image"].iloc[0]
    shutil.copy(replay_images / first, replay_images / f"{HOSTILE}.jpg")
    table.loc[0, "image"] = f"{HOSTILE}.jpg"
    hostile_table = tmp_path / "hostile.csv"
    table.to_csv(hostile_table, index=False)
    assert _explain("--aus", str(hostile_table), "--in", str(replay_images), "--model", str(logit_model),
                    "--out", str(out), "--no-cnn") == 0  # fmt: skip
    seen = open_in_chromium(out / "explain.html", tmp_path / "page.png")
    assert seen["errors"] == [] and seen["broken_images"] == [] and seen["dialogs"] == []
    assert seen["scripts"] == 0
    assert HOSTILE in seen["text"]
    assert seen["images"] == 24  # one crop per face


def test_video_through_the_runner(stand_ins, logit_model, tmp_path):
    """default_30.avi (real recording, 30 frames): time series, crops of every frame, peak gallery."""
    clip = tmp_path / "clip.avi"
    shutil.copy(VIDEO / "default_30.avi", clip)
    out = tmp_path / "reports"
    args = [
        "--in",
        str(clip),
        "--backend",
        "native",
        "--openface-bin",
        str(stand_ins),
        "--model",
        str(logit_model),
    ]
    assert _explain(*args, "--out", str(out), "--cache", str(tmp_path / "cache")) == 0
    frames = _read(out, "frames.csv")
    assert len(frames) == 30 and (frames["success"] == 1).all()
    raw = frames[[f"au_{e}" for e in EMOTIONS]].to_numpy()
    assert np.abs(raw.sum(axis=1) - 1).max() < 1e-6  # written as float32
    smoothed = frames[[f"au_smooth_{e}" for e in EMOTIONS]].to_numpy()
    assert np.abs(smoothed.sum(axis=1) - 1).max() < 1e-5  # a mean of distributions is one
    if HAVE_TF:
        cnn = frames[[f"cnn_{e}" for e in EMOTIONS]].to_numpy()
        assert np.isfinite(cnn).all() and np.abs(cnn.sum(axis=1) - 1).max() < 1e-5
    gallery = _read(out, "gallery.csv")
    assert 1 <= len(gallery) <= len(EMOTIONS) and gallery["crop"].all()
    _check_contributions(out, gallery)
    summary = _read(out, "summary.csv")
    assert summary[["frames_used", "frames_total"]].iloc[0].tolist() == [30, 30]
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    # 0.5 s at OpenFace's 15 frames/s timestamps of this clip (0.067 s apart): 7 frames
    assert metrics["windows"] == [{"video": "clip.avi", "face_id": 0, "frames": 7}]
    page = (out / "explain.html").read_text()
    assert "centred moving average over 0.50 s" in page and "clip.avi face 0: 7 frames" in page


def test_several_faces_through_the_runner(stand_ins, logit_model, tmp_path):
    """multi_face_20.avi with MULTI (FaceLandmarkVidMulti): 3 tracks; the failed fit has no box, no crop."""
    clip = tmp_path / "multi.avi"
    shutil.copy(VIDEO / "multi_face_20.avi", clip)
    out = tmp_path / "reports"
    args = ["--in", str(clip), "--multi", "--backend", "native", "--openface-bin", str(stand_ins)]
    assert (
        _explain(*args, "--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "c")) == 0
    )
    table = pd.read_csv(next((tmp_path / "c").glob("*/au_table.csv")))
    assert table.loc[table["success"] == 0, "face_x"].isna().all()  # the runner's empty box
    frames = _read(out, "frames.csv")
    assert len(frames) == 60 and frames.groupby("face_id").size().tolist() == [20, 20, 20]
    masked = frames["success"] == 0
    assert masked.sum() == 1
    assert frames.loc[masked, [f"{p}_{e}" for p in ("au", "cnn") for e in EMOTIONS]].isna().all().all()
    if HAVE_TF:  # every used frame's crop went through the CNN
        assert frames.loc[~masked, [f"cnn_{e}" for e in EMOTIONS]].notna().all().all()
    gallery = _read(out, "gallery.csv")
    assert gallery["crop"].all() and set(gallery["face_id"]) == {0, 1, 2}


def test_masked_frames_are_nan_and_the_smoothing_skips_them(logit_model, tmp_path):
    """multi_face_20 (real FaceLandmarkVidMulti output, 3 faces, one frame with success 0), given alone."""
    out = tmp_path / "reports"
    table = RECORDED / "FaceLandmarkVidMulti" / "multi_face_20.csv"
    assert _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out)) == 0
    frames = _read(out, "frames.csv")
    recorded = pd.read_csv(table, skipinitialspace=True)
    assert len(frames) == len(recorded) == 60
    masked = frames["success"] == 0
    assert masked.sum() == (recorded["success"] == 0).sum() == 1
    for prefix in ("au_", "au_smooth_"):
        assert frames.loc[masked, [prefix + e for e in EMOTIONS]].isna().all().all()
        assert frames.loc[~masked, [prefix + e for e in EMOTIONS]].notna().all().all()
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    window = metrics["windows"][0]["frames"]
    assert window == window_frames(0.5, 30.0) == 15
    # the smoothed value next to the masked frame: the mean over the window's unmasked frames only
    track = frames[frames["face_id"] == int(frames.loc[masked, "face_id"].iloc[0])].reset_index(drop=True)
    gap = int(np.flatnonzero(track["success"] == 0)[0])
    i = gap + 1 if gap + 1 < len(track) else gap - 1
    lo, hi = max(0, i - window // 2), min(len(track), i + window // 2 + 1)
    part = track.iloc[lo:hi]
    expected = part.loc[part["success"] == 1, "au_happy"].mean()
    assert track.loc[i, "au_smooth_happy"] == pytest.approx(expected, abs=1e-6)
    for driver in metrics["drivers"]:
        assert np.isnan(frames.loc[masked, driver]).all()  # AU tracks are masked too
    summary = _read(out, "summary.csv")
    assert sorted(summary["frames_used"]) == [19, 20, 20] and (summary["frames_total"] == 20).all()
    page = (out / "explain.html").read_text()
    assert "no face crops" in page and "AUS=" in page  # the table came alone


def test_gallery_is_bounded(logit_model, tmp_path):
    out = tmp_path / "reports"
    table = RECORDED / "FaceLandmarkVidMulti" / "multi_face_20.csv"
    assert (
        _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out), "--max-gallery", "2")
        == 0
    )
    gallery = _read(out, "gallery.csv")
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert metrics["n_gallery_candidates"] > 2 and len(gallery) == 2
    assert gallery["peak_emotion"].nunique() == 2  # every emotion once before any twice


def test_bounded_gallery_takes_each_emotion_before_any_twice():
    rng = np.random.default_rng(0)
    candidates = pd.DataFrame(
        {
            "position": range(300),
            "video": "v",
            "face_id": 0,
            "frame": range(1, 301),
            "peak_emotion": rng.choice(["happy", "sad", "angry"], 300, p=[0.9, 0.05, 0.05]),
            "peak_probability": rng.uniform(0, 1, 300),
        }
    )
    chosen = bounded_gallery(candidates, 24)
    assert len(chosen) == 24 and set(chosen["peak_emotion"]) == {"happy", "sad", "angry"}


def test_smoothing_leaves_masked_frames_empty():
    values = np.arange(10, dtype=float)[:, None]
    masked = np.zeros(10, bool)
    masked[4] = True
    out = smooth(values, 3, masked)[:, 0]
    assert np.isnan(out[4])
    assert out[3] == pytest.approx((2 + 3) / 2) and out[5] == pytest.approx((5 + 6) / 2)  # 4 not used
    assert out[0] == pytest.approx(0.5) and out[7] == pytest.approx(7)


def test_page_rebuilds_from_the_files_and_refuses_tampered_ones(logit_model, tmp_path, capsys):
    out = tmp_path / "reports"
    table = RECORDED / "FeatureExtraction" / "default_30.csv"
    assert _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out)) == 0
    (out / "explain.html").unlink()
    assert main(["report", "--out", str(out)]) == 0
    assert (out / "explain.html").is_file()
    assert "explain.html" in (out / "index.html").read_text()
    with open(out / "explain" / "frames.csv", "a") as handle:
        handle.write("tampered\n")
    assert main(["report", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "frames.csv" in err and len(err.splitlines()) == 1


def test_clear_one_line_errors(logit_model, tmp_path, capsys, monkeypatch):
    no_aus = tmp_path / "no_aus.csv"
    no_aus.write_text("image,confidence\na.jpg,0.9\n")
    bad_model = tmp_path / "model.json"
    bad_model.write_text("{not json")
    monkeypatch.delenv("OPENFACE_BIN", raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    recorded = str(RECORDED / "FeatureExtraction" / "default_30.csv")
    clip = str(VIDEO / "default_30.avi")
    missing = str(tmp_path / "none")
    cases = [
        (["--aus", str(no_aus), "--model", str(logit_model)], "not an AU table"),
        (["--aus", recorded, "--model", str(bad_model)], "not valid JSON"),
        (["--in", clip, "--backend", "native", "--model", str(logit_model)], "docker pull"),
        (["--in", clip, "--backend", "native", "--openface-bin", missing, "--model", str(logit_model)],
         "Unix-Installation"),
        (["--aus", recorded, "--out", str(tmp_path / "empty")], "make fit-logit"),
        (["--in", clip, "--model", str(logit_model)], "Docker engine is unreachable"),  # DOCKER_HOST below
    ]  # fmt: skip
    for args, expected in cases:
        assert _explain(*args, *([] if "--out" in args else ["--out", str(tmp_path / "r")])) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err and len(err.splitlines()) == 1, err


def test_benchmark_table_is_made_of_real_recordings(tmp_path):
    from explain.benchmark import long_table

    path = long_table(5000, tmp_path / "long.csv")
    table = pd.read_csv(path)
    assert len(table) == 5000 and table["frame"].tolist() == list(range(1, 5001))
    recorded = pd.read_csv(RECORDED / "FeatureExtraction" / "default_30.csv", skipinitialspace=True)
    assert np.allclose(table["AU04_r"].iloc[:30], recorded["AU04_r"])
    assert (table["success"] == 0).sum() == 100  # one real failed fit per 50-frame block


@needs_chromium
def test_video_page_in_chromium(logit_model, tmp_path):
    out = tmp_path / "reports"
    table = RECORDED / "FaceLandmarkVidMulti" / "multi_face_20.csv"
    assert _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out)) == 0
    seen = open_in_chromium(out / "explain.html", tmp_path / "page.png")
    assert (
        seen["errors"] == []
        and seen["broken_images"] == []
        and seen["dialogs"] == []
        and seen["scripts"] == 0
    )
    assert seen["images"] == 3  # one time-series figure per tracked face, no crops
    assert "frames used / total" in seen["text"]


OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")


@pytest.mark.openface
@pytest.mark.skipif(
    not (OPENFACE_BIN and os.access(Path(OPENFACE_BIN).with_name("FeatureExtraction"), os.X_OK)),
    reason="needs $OPENFACE_BIN (FaceLandmarkImg) with FeatureExtraction beside it",
)
def test_real_openface_end_to_end(logit_model, tmp_path):
    """A real OpenFace on default_30.avi: frames, crops of the real frames, explained peaks."""
    out = tmp_path / "reports"
    args = ["--in", str(VIDEO / "default_30.avi"), "--backend", "native", "--openface-bin", OPENFACE_BIN]
    args += ["--openface-args", "-mloc model/main_clnf_general.txt", "--model", str(logit_model)]
    assert _explain(*args, "--out", str(out), "--cache", str(tmp_path / "cache"), "--workers", "1") == 0
    frames = _read(out, "frames.csv")
    assert len(frames) == 30 and (frames["success"] == 1).mean() > 0.9
    gallery = _read(out, "gallery.csv")
    assert len(gallery) >= 1 and gallery["crop"].all()
    _check_contributions(out, gallery)


def test_explain_figures_text_is_at_least_10_px(stand_ins, logit_model, tmp_path, monkeypatch):
    """The time series and the crop pictures, as the page displays them (analysis.figures' rule)."""
    from matplotlib.figure import Figure

    from analysis.figures import smallest_text_px
    from explain.report import render_explain_report

    clip = tmp_path / "clip.avi"
    shutil.copy(VIDEO / "default_30.avi", clip)
    out = tmp_path / "reports"
    args = ["--in", str(clip), "--backend", "native", "--openface-bin", str(stand_ins), "--no-cnn"]
    assert (
        _explain(*args, "--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "c")) == 0
    )
    seen: list[float] = []
    savefig = Figure.savefig

    def measuring(fig, *a, **k):
        seen.append(smallest_text_px(fig))
        return savefig(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", measuring)
    render_explain_report(out / "explain", out / "again.html")
    assert len(seen) >= 2 and min(seen) >= 10


def test_image_page_is_bounded(logit_model, tmp_path):
    """80 real faces of the seed table (labels unused), given alone: every face in faces.csv, 60 cards."""
    from analysis.au_table import SEED_AU_TABLE
    from explain.report import MAX_CARDS

    table = tmp_path / "eighty.csv"
    pd.read_csv(SEED_AU_TABLE).head(80).to_csv(table, index=False)
    out = tmp_path / "reports"
    assert _explain("--aus", str(table), "--model", str(logit_model), "--out", str(out)) == 0
    faces = _read(out, "faces.csv")
    assert len(faces) == 80 and not faces["crop"].any()
    _check_contributions(out, faces)
    page = (out / "explain.html").read_text()
    assert page.count('<div class="card"') == MAX_CARDS == 60
    assert "The first 60 of 80 faces" in page and "no face crops" in page


def test_a_video_that_cannot_be_opened_gives_no_crops_and_says_so(stand_ins, logit_model, tmp_path):
    """The table of default_30.avi with IN= pointing at a file OpenCV cannot decode."""
    clip = tmp_path / "clip.avi"
    shutil.copy(VIDEO / "default_30.avi", clip)
    out = tmp_path / "reports"
    args = ["--in", str(clip), "--backend", "native", "--openface-bin", str(stand_ins), "--no-cnn"]
    assert (
        _explain(*args, "--model", str(logit_model), "--out", str(out), "--cache", str(tmp_path / "c")) == 0
    )
    table = next((tmp_path / "c").glob("*/au_table.csv"))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video")
    assert (
        _explain("--aus", str(table), "--in", str(broken), "--model", str(logit_model), "--out", str(out))
        == 0
    )
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert not metrics["crops"]["available"] and "could not be opened" in metrics["crops"]["reason"]
    assert not _read(out, "gallery.csv")["crop"].any()
