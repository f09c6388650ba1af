"""Videos and image sequences through the runner and a real OpenFace 2.2.0, where one is installed.

Native: ``$OPENFACE_BIN`` names ``FaceLandmarkImg``; ``FeatureExtraction`` and
``FaceLandmarkVidMulti`` sit beside it. Docker: the ``algebr/openface`` image. The recordings in
tests/fixtures/openface/video/recorded/ were written by the native build (provenance in
tests/fixtures/README.md). AU intensities are compared with a tolerance of 0.1 (as
tests/test_openface_real.py: BLAS kernels and OpenCV builds move AU_r by a few hundredths).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS, read_sequence_table
from openface_runner.backends import DockerBackend, NativeBackend
from openface_runner.runner import failures_path
from openface_runner.video import EMPTY_FILE, NO_FACE, run_sequences
from tests.conftest import FIXTURES
from tests.test_openface_runner import _docker_reachable

VIDEO = FIXTURES / "openface" / "video"
RECORDED = VIDEO / "recorded"
BIN = os.environ.get("OPENFACE_BIN", "")
TOOLS_HERE = bool(BIN) and all(
    os.access(Path(BIN).with_name(tool), os.X_OK)
    for tool in ("FaceLandmarkImg", "FeatureExtraction", "FaceLandmarkVidMulti")
)
NO_TOOLS = (
    "needs $OPENFACE_BIN (FaceLandmarkImg) with FeatureExtraction and FaceLandmarkVidMulti beside it "
    "(none here; .ci/run installs them)"
)
ARGS = ["-mloc", "model/main_clnf_general.txt"]  # the landmark model of the recordings


def assert_matches(table: pd.DataFrame, video: str, tool: str, stem: str) -> None:
    """The runner's rows of ``video`` are OpenFace's recorded ones: same frames, faces, AUs within 0.1."""
    got = table[table["video"] == video].sort_values(["frame", "face_id"]).reset_index(drop=True)
    expected = pd.read_csv(RECORDED / tool / f"{stem}.csv", skipinitialspace=True)
    expected = expected.sort_values(["frame", "face_id"]).reset_index(drop=True)
    assert got[["frame", "face_id"]].equals(expected[["frame", "face_id"]].astype(got["frame"].dtype)), video
    assert (got["timestamp"] - expected["timestamp"]).abs().max() < 1e-3
    assert (got["success"] == expected["success"]).mean() > 0.95, video
    worst = (got[list(AU_R_COLUMNS)] - expected[list(AU_R_COLUMNS)]).abs().to_numpy().max()
    assert worst < 0.1, f"{video}: AU_r differs by {worst:.3f} from the recording"
    fitted = (got["success"] == 1) & (expected["success"] == 1)
    xs = expected.loc[fitted, [f"x_{i}" for i in range(68)]]
    assert ((got.loc[fitted, "face_x"] - xs.min(axis=1)).abs() < 2).all(), video  # frame pixels
    assert ((got.loc[fitted, "face_w"] - (xs.max(axis=1) - xs.min(axis=1))).abs() < 2).all(), video


@pytest.fixture
def videos(tmp_path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(VIDEO / "default_30.avi", folder)
    shutil.copytree(VIDEO / "frames", folder / "frames")
    (folder / "truncated.avi").write_bytes((VIDEO / "default_30.avi").read_bytes()[:120_000])
    shutil.copy(VIDEO / "no_face_10.avi", folder)
    (folder / "empty.avi").write_bytes(b"")
    (folder / "garbage.avi").write_bytes(b"not a video" * 500)
    return folder


@pytest.mark.openface
@pytest.mark.skipif(not TOOLS_HERE, reason=NO_TOOLS)
def test_feature_extraction_reproduces_the_recorded_frames(videos, tmp_path):
    out = tmp_path / "seq.csv"
    summary = run_sequences(videos, out, NativeBackend(BIN, ARGS), workers=2, progress=False)
    table = read_sequence_table(out)
    assert_matches(table, "default_30.avi", "FeatureExtraction", "default_30")
    assert_matches(table, "frames", "FeatureExtraction", "frames")
    assert_matches(table, "truncated.avi", "FeatureExtraction", "default_30_truncated")
    failures = pd.read_csv(failures_path(out)).set_index("video")["reason"]
    assert failures["empty.avi"] == EMPTY_FILE
    assert failures["no_face_10.avi"] == NO_FACE
    assert failures["garbage.avi"].startswith("OpenFace could not open it")
    assert failures["truncated.avi"].startswith("truncated or damaged video: OpenFace read 14 of the 30")
    assert (summary.inputs, summary.with_rows, summary.frames) == (6, 3, 49)


@pytest.mark.openface
@pytest.mark.skipif(not TOOLS_HERE, reason=NO_TOOLS)
def test_vid_multi_reproduces_the_recorded_faces(tmp_path):
    out = tmp_path / "multi.csv"
    run_sequences(VIDEO / "multi_face_20.avi", out, NativeBackend(BIN, ARGS), multi=True, progress=False)
    table = read_sequence_table(out)
    assert sorted(table["face_id"].unique()) == [0, 1, 2]
    assert_matches(table, "multi_face_20.avi", "FaceLandmarkVidMulti", "multi_face_20")


@pytest.mark.docker
@pytest.mark.skipif(not _docker_reachable(), reason="needs a reachable Docker engine (none on this machine)")
def test_docker_backend_on_videos_and_failures(videos, tmp_path):
    """The image's FeatureExtraction and FaceLandmarkVidMulti: same frames and failures; AUs close
    (``algebr/openface`` is another build than the recordings', with another BLAS: tolerance 0.5)."""
    out = tmp_path / "seq.csv"
    backend = DockerBackend(extra=ARGS, progress=False)
    summary = run_sequences(videos, out, backend, workers=2, progress=False)
    failures = pd.read_csv(failures_path(out)).set_index("video")["reason"]
    assert (summary.with_rows, summary.frames) == (3, 49), failures.to_string()
    assert failures["no_face_10.avi"] == NO_FACE and failures["garbage.avi"].startswith("OpenFace could not")
    table = read_sequence_table(out)
    expected = pd.read_csv(RECORDED / "FeatureExtraction" / "default_30.csv", skipinitialspace=True)
    got = table[table["video"] == "default_30.avi"].reset_index(drop=True)
    assert got["frame"].tolist() == expected["frame"].tolist()
    assert (got[list(AU_R_COLUMNS)] - expected[list(AU_R_COLUMNS)]).abs().to_numpy().max() < 0.5

    multi = tmp_path / "multi.csv"
    run_sequences(VIDEO / "multi_face_20.avi", multi, backend, multi=True, progress=False)
    assert sorted(read_sequence_table(multi)["face_id"].unique()) == [0, 1, 2]
