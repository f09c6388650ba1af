"""``make explain`` with a real OpenFace on inputs that fail: every failure on the page and in the
results, partial videos said to be partial, and Ctrl-C / SIGTERM stopping the run cleanly.

Real inputs only: the vendored clips and replay images of tests/fixtures/openface/ (a truncated
video is the first 30% of the bytes of ``default_30.avi``: OpenFace reads 9 of its 30 frames),
a zero-byte ``.mp4``, a ``.jpg`` that holds text, and a FER2013 image OpenFace finds no face in.
Each test runs the native OpenFace 2.2.0 named by ``$OPENFACE_BIN`` and is skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from explain.cli import main
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
OPENFACE = FIXTURES / "openface"
VIDEO = OPENFACE / "video"
REPLAY = OPENFACE / "replay" / "input"
FACE = REPLAY / "angry" / "PrivateTest_14565821.jpg"  # OpenFace finds a face in it
NO_FACE = REPLAY / "angry" / "PrivateTest_61911448.jpg"  # and none in this one
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")
OPENFACE_ARGS = "-mloc model/main_clnf_general.txt"
TOOLS = ("FaceLandmarkImg", "FeatureExtraction")

pytestmark = [
    pytest.mark.openface,
    pytest.mark.skipif(
        not (OPENFACE_BIN and os.access(Path(OPENFACE_BIN).with_name("FeatureExtraction"), os.X_OK)),
        reason="needs $OPENFACE_BIN (a native OpenFace 2.2.0 FaceLandmarkImg), FeatureExtraction beside it",
    ),
]


@pytest.fixture(scope="module")
def logit_model(tmp_path_factory) -> Path:
    """`fit-logit` on the bundled seed AUs (what `make fit-logit` saves)."""
    from analysis.au_table import SEED_AU_TABLE
    from analysis.run_logit import run_fit_logit

    out = tmp_path_factory.mktemp("fit")
    return run_fit_logit(SEED_AU_TABLE, out, label_coding="seed", progress=False).results_dir / "model.json"


def _args(source: Path, model: Path, tmp_path: Path) -> list[str]:
    return [
        "run", "--in", str(source), "--backend", "native", "--openface-bin", OPENFACE_BIN,
        "--openface-args", OPENFACE_ARGS, "--model", str(model), "--no-cnn", "--workers", "1",
        "--out", str(tmp_path / "reports"), "--cache", str(tmp_path / "cache"),
    ]  # fmt: skip


def _truncated(to: Path) -> Path:
    """The first 30% of the bytes of the real clip default_30.avi (30 frames declared)."""
    data = (VIDEO / "default_30.avi").read_bytes()
    to.write_bytes(data[: int(len(data) * 0.3)])
    return to


def _results(tmp_path: Path) -> tuple[dict, pd.DataFrame, str]:
    explain = tmp_path / "reports" / "explain"
    metrics = json.loads((explain / "metrics.json").read_text())
    unexplained = pd.read_csv(explain / "unexplained.csv", dtype=str, keep_default_na=False)
    return metrics, unexplained, (tmp_path / "reports" / "explain.html").read_text()


def test_failed_videos_are_on_the_page_and_in_the_results(logit_model, tmp_path, capsys):
    """A folder with a whole clip, a truncated one and an empty .mp4: the empty file is listed as
    not explained, with its reason; the truncated clip is explained and said to be partial."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(VIDEO / "default_30.avi", folder / "whole.avi")
    _truncated(folder / "cut.avi")
    (folder / "empty.mp4").write_bytes(b"")
    assert main(_args(folder, logit_model, tmp_path)) == 0
    metrics, unexplained, page = _results(tmp_path)
    assert metrics["n_unexplained"] == 1
    assert unexplained[["input", "reason"]].values.tolist() == [["empty.mp4", "empty file (0 bytes)"]]
    assert "empty.mp4" in page and "empty file (0 bytes)" in page
    assert "1 input(s) not explained" in page
    # partial: the page, the metrics and the summary table say how many frames were read
    assert metrics["partial_videos"] == [{"video": "cut.avi", "frames_read": 9, "frames_declared": 30}]
    summary = pd.read_csv(tmp_path / "reports" / "explain" / "summary.csv").set_index("video")
    assert summary.loc["cut.avi", ["frames_read", "frames_declared"]].tolist() == [9, 30]
    assert summary.loc["whole.avi", ["frames_read", "frames_declared"]].tolist() == [30, 30]
    assert "cut.avi: read 9 of 30 frames" in page
    assert "whole.avi: read" not in page
    printed = capsys.readouterr().out
    assert "1 input(s) not explained" in printed and "cut.avi: read 9 of 30 frames" in printed


def test_a_single_truncated_video_says_how_many_frames_were_read(logit_model, tmp_path):
    """IN= one truncated video (the issue's case: explained from some of its frames, silently)."""
    clip = _truncated(tmp_path / "cut.avi")
    assert main(_args(clip, logit_model, tmp_path)) == 0
    metrics, unexplained, page = _results(tmp_path)
    assert metrics["n_unexplained"] == 0 and unexplained.empty
    assert metrics["partial_videos"] == [{"video": "cut.avi", "frames_read": 9, "frames_declared": 30}]
    assert "cut.avi: read 9 of 30 frames" in page


def test_failed_images_are_on_the_page_and_in_the_results(logit_model, tmp_path):
    """A face, a face-less FER2013 image, a .jpg that holds text and an empty .png."""
    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(FACE, folder / "face.jpg")
    shutil.copy(NO_FACE, folder / "noface.jpg")
    (folder / "text.jpg").write_text("not an image\n")
    (folder / "empty.png").write_bytes(b"")
    assert main(_args(folder, logit_model, tmp_path)) == 0
    metrics, unexplained, page = _results(tmp_path)
    assert metrics["n_faces"] == 1 and metrics["n_unexplained"] == 3
    reasons = dict(zip(unexplained["input"], unexplained["reason"], strict=True))
    assert sorted(reasons) == ["empty.png", "noface.jpg", "text.jpg"]
    assert reasons["noface.jpg"] == "OpenFace found no face"
    assert all(reasons.values())
    for name, reason in reasons.items():
        assert name in page and reason in page
    assert "3 input(s) not explained" in page


# --- interrupts ------------------------------------------------------------------------------------


def _openface_below(pid: int) -> list[psutil.Process]:
    """OpenFace processes among the descendants of ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.name() in TOOLS or any(Path(a).name in TOOLS for a in child.cmdline()[:3]):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _long_clip(to: Path, repeats: int = 10) -> Path:
    """default_30.avi's real frames, ten times over (300 frames: OpenFace runs for seconds)."""
    import cv2

    source = cv2.VideoCapture(str(VIDEO / "default_30.avi"))
    frames = []
    while True:
        ok, frame = source.read()
        if not ok:
            break
        frames.append(frame)
    source.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(to), cv2.VideoWriter_fourcc(*"mp4v"), 15, (width, height))
    for _ in range(repeats):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return to


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("target", ["group", "process"])
def test_an_interrupt_stops_openface_and_writes_nothing(logit_model, tmp_path, sig, code, target):
    """SIGINT (Ctrl-C: the terminal signals the whole foreground process group) or SIGTERM while
    OpenFace runs: exit 128 + n, one line saying so, no traceback, no OpenFace left, no results."""
    clip = _long_clip(tmp_path / "long.avi")
    command = [sys.executable, "-m", "explain", *_args(clip, logit_model, tmp_path)]
    child = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0
    )
    try:
        deadline = time.monotonic() + 120
        openface: list[psutil.Process] = []
        while not openface and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            openface = _openface_below(child.pid)
        assert openface, "OpenFace never started"
        if target == "group":
            os.killpg(child.pid, sig)
        else:
            child.send_signal(sig)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == code, stderr
    said = [line for line in (stdout + stderr).splitlines() if "interrupted" in line]
    assert len(said) == 1 and sig.name in said[0], stdout + stderr
    assert "Traceback" not in stderr and "install" not in stderr.lower() and "docker pull" not in stderr
    _, alive = psutil.wait_procs(openface, timeout=10)
    for process in alive:  # do not leave them running if the test fails
        process.kill()
    assert not alive
    reports = tmp_path / "reports"
    assert not reports.exists() or not any(reports.iterdir()), sorted(reports.rglob("*"))
