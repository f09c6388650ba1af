"""``python -m compare estimator-check``: AU estimators against OpenFace on a folder of faces. The
scoring on the replay set's 24 real faces (recorded OpenFace 2.2.0 outputs, the FER2013 crops as
the CNNs see them); the whole command, OpenFace included, where ``$OPENFACE_BIN`` exists."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow", reason="the estimators are Keras models (the cnn extra)")

from analysis.au_table import AU_R_COLUMNS  # noqa: E402
from analysis.concepts import CONCEPT_COLUMNS  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

REPLAY = FIXTURES / "openface" / "replay"
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")


def test_scores_per_estimator_au_and_concept(tmp_path):
    from cnn_baseline.au_estimator import DEFAULT_AU_MODEL
    from compare.estimator_check import check_estimators, openface_faces, summary
    from openface_runner.parse import parse_face_csv

    outputs = sorted((REPLAY / "output").glob("*/*.csv"))
    rows = [{"image": f"{p.parent.name}/{p.stem}.jpg", **parse_face_csv(p)} for p in outputs]
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    faces, crops = openface_faces(tmp_path / "table.csv", REPLAY / "input")
    assert len(faces) == 24 and crops.shape == (24, 48, 48)
    shutil.copy(DEFAULT_AU_MODEL, tmp_path / "copy.keras")
    scores = check_estimators(faces, crops, [DEFAULT_AU_MODEL, tmp_path / "copy.keras"])
    one = scores[scores["estimator"] == DEFAULT_AU_MODEL.name]
    assert list(one["au"]) == [*AU_R_COLUMNS, *CONCEPT_COLUMNS]
    # the same file twice: the same numbers; AU12 lip corner puller follows OpenFace closely
    np.testing.assert_array_equal(
        one["r2"].to_numpy(), scores[scores["estimator"] == "copy.keras"]["r2"].to_numpy()
    )
    assert one.set_index("au").loc["AU12_r", "pearson_r"] > 0.7
    table = summary(scores)
    assert list(table["estimator"]) == [DEFAULT_AU_MODEL.name, "copy.keras"]
    assert table["au_mean_r2"].iloc[0] == pytest.approx(one["r2"].iloc[:17].mean())


@pytest.mark.openface
@pytest.mark.skipif(not OPENFACE_BIN, reason="needs $OPENFACE_BIN (a real FaceLandmarkImg)")
def test_the_command_runs_openface_and_prints_the_summary(tmp_path, capsys, monkeypatch):
    from compare.cli import main

    monkeypatch.chdir(tmp_path)  # the runner's cache goes below the working folder
    folder = tmp_path / "faces"
    shutil.copytree(REPLAY / "input" / "happy", folder)
    code = main(["estimator-check", "--in", str(folder), "--backend", "native",
                 "--openface-bin", OPENFACE_BIN, "--openface-args", "-mloc model/main_clnf_general.txt",
                 "--csv", str(tmp_path / "s.csv")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "4 faces OpenFace found" in out and "au_mean_r2" in out
    assert len(pd.read_csv(tmp_path / "s.csv")) == 17 + 6
