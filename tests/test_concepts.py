"""Geometric concepts (``analysis.concepts``) on real OpenFace 2.2.0 landmarks: the 24 faces of the
replay set's recorded outputs (``tests/fixtures/openface/replay/output``, FER2013 PrivateTest
faces, upscaled as the runner stages them) and the recorded webcam clip."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.concepts import CONCEPT_COLUMNS, concepts_from_landmarks
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "openface" / "replay" / "output"
CLIP = FIXTURES / "openface" / "video" / "recorded" / "FeatureExtraction" / "default_30.csv"
X = [f"x_{i}" for i in range(68)]
Y = [f"y_{i}" for i in range(68)]


@pytest.fixture(scope="module")
def faces() -> pd.DataFrame:
    """The most confident face of each recorded replay output: landmarks, AU intensities, and the
    concepts measured on the landmarks."""
    rows = []
    for path in sorted(REPLAY.glob("*/*.csv")):
        table = pd.read_csv(path, skipinitialspace=True)
        rows.append(table.iloc[int(table["confidence"].argmax())])
    frame = pd.DataFrame(rows).reset_index(drop=True)
    concepts = concepts_from_landmarks(frame[X].to_numpy(), frame[Y].to_numpy())
    return pd.concat([frame, pd.DataFrame(concepts, columns=list(CONCEPT_COLUMNS))], axis=1)


def test_the_replay_set_has_24_fitted_faces(faces):
    assert len(faces) == 24 and faces[list(CONCEPT_COLUMNS)].notna().all().all()


# (concept, the AU that moves it, the sign of their rank correlation): FACS's descriptions
MOVED_BY = [
    ("lip_corner_raise", "AU12_r", 1),  # lip corner puller
    ("mouth_width", "AU12_r", 1),
    ("mouth_open", "AU25_r", 1),  # lips part
    ("brow_raise", "AU02_r", 1),  # outer brow raiser
    ("brow_raise", "AU04_r", -1),  # brow lowerer
    ("eye_open", "AU05_r", 1),  # upper lid raiser
    ("eye_open", "AU45_r", -1),  # blink
    ("nose_lip_gap", "AU10_r", -1),  # upper lip raiser
]


@pytest.mark.parametrize(("concept", "au", "sign"), MOVED_BY, ids=lambda x: str(x))
def test_each_concept_follows_the_action_units_that_move_it(faces, concept, au, sign):
    """Over the 24 real faces, each measure ranks with OpenFace's intensity of the AU whose
    movement it measures, in the expected direction (Spearman |rho| >= 0.4; measured 0.51-0.82)."""
    rho = faces[concept].corr(faces[au], method="spearman")
    assert sign * rho >= 0.4, rho


def test_measures_do_not_depend_on_scale_offset_or_head_roll(faces):
    """The staged copy (4x, a border) and a tilted head (roll 20 degrees) give the same measures."""
    xs, ys = faces[X].to_numpy(), faces[Y].to_numpy()
    angle = math.radians(20)
    cx, cy = xs.mean(), ys.mean()
    turned_x = 4 * (cx + (xs - cx) * math.cos(angle) - (ys - cy) * math.sin(angle)) + 48
    turned_y = 4 * (cy + (xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle)) + 48
    np.testing.assert_allclose(
        concepts_from_landmarks(turned_x, turned_y), concepts_from_landmarks(xs, ys), atol=1e-9
    )


def test_no_fitted_face_has_no_measures_and_bad_shapes_are_refused():
    zeros = np.zeros((2, 68))
    assert np.isnan(concepts_from_landmarks(zeros, zeros)).all()
    with pytest.raises(ValueError, match="not \\(n, 68\\)"):
        concepts_from_landmarks(np.zeros((2, 67)), np.zeros((2, 67)))


def test_the_runner_writes_the_concepts_of_the_face_it_keeps(tmp_path):
    """``parse_face_csv`` (the runner's image path) and the sequence parser add the concepts of
    the kept face to the row, equal to the measures on the raw landmarks."""
    from openface_runner.parse import parse_face_csv
    from openface_runner.video import parse_sequence_csv

    path = sorted(REPLAY.glob("happy/*.csv"))[0]
    raw = pd.read_csv(path, skipinitialspace=True)
    best = raw.iloc[[int(raw["confidence"].argmax())]]
    expected = concepts_from_landmarks(best[X].to_numpy(), best[Y].to_numpy())[0]
    row = parse_face_csv(path)
    np.testing.assert_allclose([row[c] for c in CONCEPT_COLUMNS], expected, rtol=1e-12)

    frames = parse_sequence_csv(CLIP)
    clip = pd.read_csv(CLIP, skipinitialspace=True)
    measured = concepts_from_landmarks(clip[X].to_numpy(), clip[Y].to_numpy())
    measured[clip["success"].to_numpy() == 0] = np.nan
    np.testing.assert_allclose(frames[list(CONCEPT_COLUMNS)].to_numpy(), measured, rtol=1e-12)
