"""The runner against a real OpenFace 2.2.0 (native build), where one is installed.

`OPENFACE_BIN` names `FaceLandmarkImg` (`.ci/run` installs the team's prebuilt OpenFace and sets
it). The recordings under tests/fixtures/openface/replay/output were written by the same build;
AU intensities are compared with a tolerance of 0.1 because OpenBLAS picks its kernel by CPU and
OpenCV builds stage a few pixels differently (both move AU_r by a few hundredths).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.au_table import AU_R_COLUMNS, read_au_table
from openface_runner.backends import NativeBackend
from openface_runner.runner import failures_path, run_openface
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "openface" / "replay"
BIN = os.environ.get("OPENFACE_BIN", "")

pytestmark = [
    pytest.mark.openface,
    pytest.mark.skipif(
        not (BIN and Path(BIN).is_file() and os.access(BIN, os.X_OK)),
        reason="needs a native OpenFace FaceLandmarkImg in $OPENFACE_BIN (none here; .ci/run installs one)",
    ),
]


def test_native_openface_reproduces_the_recorded_aus(tmp_path):
    faces = tmp_path / "faces"
    shutil.copytree(REPLAY / "input", faces)
    backend = NativeBackend(BIN, ["-mloc", "model/main_clnf_general.txt"])
    summary = run_openface(faces, tmp_path / "aus.csv", backend, workers=2, progress=False)

    recorded = {}  # the most confident face of each image, as the runner keeps it
    for path in (REPLAY / "output").glob("*/*.csv"):
        faces = pd.read_csv(path, skipinitialspace=True)
        recorded[f"{path.parent.name}/{path.stem}.jpg"] = faces.nlargest(1, "confidence").iloc[0]
    table = read_au_table(tmp_path / "aus.csv").set_index("image")
    failures = pd.read_csv(failures_path(tmp_path / "aus.csv"))
    assert summary.inputs == 30 == len(table) + len(failures)
    assert set(table.index) == set(recorded)  # the same 24 faces found, the same 6 missed
    for image, expected in recorded.items():
        got = table.loc[image]
        assert abs(got["confidence"] - expected["confidence"]) < 0.05, image
        worst = max(abs(got[c] - expected[c]) for c in AU_R_COLUMNS)
        assert worst < 0.1, f"{image}: AU_r differs by {worst:.3f} from the recording"
        # the face box: the landmarks' extent in the 48x48 original (4x + 48 px border staged)
        xs = expected[[f"x_{i}" for i in range(68)]].to_numpy(float)
        assert abs(got["face_x"] - min(max((xs.min() - 47.5) / 4 - 0.5, 0), 48)) < 0.5, image
        assert 0 <= got["face_x"] and got["face_x"] + got["face_w"] <= 48, image
        assert 0 <= got["face_y"] and got["face_y"] + got["face_h"] <= 48, image
