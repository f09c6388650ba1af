"""The landmark baseline (``compare.landmarks``): normalisation and parsing on the replay set's real
OpenFace 2.2.0 outputs, and the vendored model on the vendored PrivateTest landmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compare.landmarks import COLUMNS, NOSE_TIP, landmark_table, normalised
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "openface" / "replay" / "output"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return landmark_table((p.stem, p) for p in REPLAY.glob("*/*.csv"))


def test_the_replay_outputs_give_one_row_per_face(table):
    stems = sorted({p.stem for p in REPLAY.glob("*/*.csv")})
    assert list(table["image"]) == stems and len(table) == 24
    assert list(table.columns) == ["image", *COLUMNS] and np.isfinite(table[list(COLUMNS)].to_numpy()).all()


def test_landmarks_are_nose_centred_and_scale_free(table):
    points = table[list(COLUMNS)].to_numpy().reshape(len(table), 68, 2)
    assert np.abs(points[:, NOSE_TIP]).max() == 0  # the nose tip is the origin
    rms = np.sqrt((points**2).sum(axis=2).mean(axis=1))
    np.testing.assert_allclose(rms, 1, atol=1e-3)  # 4 decimals written
    raw = pd.read_csv(sorted(REPLAY.glob("*/*.csv"))[0], skipinitialspace=True)
    xs = raw[[f"x_{i}" for i in range(68)]].to_numpy()[:1]
    ys = raw[[f"y_{i}" for i in range(68)]].to_numpy()[:1]
    np.testing.assert_allclose(normalised(xs, ys), normalised(3 * xs + 40, 3 * ys - 7), atol=1e-12)
    with pytest.raises(ValueError, match="all coincide"):
        normalised(np.zeros((1, 68)), np.zeros((1, 68)))
    with pytest.raises(ValueError, match="expected"):
        normalised(np.zeros((1, 67)), np.zeros((1, 67)))


def test_no_raw_outputs_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no raw OpenFace outputs"):
        landmark_table([("a", tmp_path / "a.csv")])
