"""The geometric concepts in ``make compare``: the vendored FER2013 concept table, how it joins the
AU rows, how it is made from a runner table, and the AU logit on AUs + concepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.au_table import FER2013_AU_TABLE, FER2013_CONCEPTS
from analysis.concepts import CONCEPT_COLUMNS
from compare.data import CompareError, load_training, with_concepts
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "openface" / "replay" / "output"


def test_the_vendored_table_covers_the_faces_openface_found():
    """One row per image, six finite measures each, and nearly every face of the vendored AU table
    (the same OpenFace 2.2.0 and staging, another BLAS kernel: a few faces are found in one run
    and not the other)."""
    concepts = pd.read_csv(FER2013_CONCEPTS)
    assert list(concepts.columns) == ["image", *CONCEPT_COLUMNS]
    assert concepts["image"].is_unique and np.isfinite(concepts[list(CONCEPT_COLUMNS)].to_numpy()).all()
    aus = pd.read_csv(FER2013_AU_TABLE, usecols=["image"])
    covered = aus["image"].isin(concepts["image"]).mean()
    assert covered > 0.99, covered


def test_training_rows_carry_their_concepts():
    train = load_training()
    assert set(CONCEPT_COLUMNS) <= set(train)
    assert train[list(CONCEPT_COLUMNS)].notna().all(axis=1).mean() > 0.99
    # a smile raises the lip corners: happy faces above the rest, as FACS has it
    happy = train["label"] == "happy"
    assert train.loc[happy, "lip_corner_raise"].mean() > train.loc[~happy, "lip_corner_raise"].mean() + 0.02


def test_a_bad_concept_table_is_one_clear_error(tmp_path):
    train = load_training().head(5)
    concepts = pd.read_csv(FER2013_CONCEPTS).head(50)
    concepts.drop(columns="eye_open").to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(CompareError, match="no eye_open"):
        with_concepts(train, tmp_path / "missing.csv")
    pd.concat([concepts, concepts.head(1)]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(CompareError, match="an image twice"):
        with_concepts(train, tmp_path / "twice.csv")
    assert with_concepts(train, tmp_path / "absent.csv") is train  # no table: the rows as they were


def test_concept_table_from_a_runner_table(tmp_path):
    """The runner's table (image file names, concept columns, faces without concepts) becomes
    ``image`` stems and six measures at 4 decimals, faceless rows left out."""
    from compare.concepts import concept_table
    from openface_runner.parse import parse_face_csv

    rows = [{"image": f"{p.stem}.png", **parse_face_csv(p)} for p in sorted(REPLAY.glob("*/*.csv"))]
    table = pd.DataFrame(rows)
    table.loc[0, list(CONCEPT_COLUMNS)] = np.nan  # a face without landmarks
    table.to_csv(tmp_path / "au_table.csv", index=False)
    concepts = concept_table(tmp_path / "au_table.csv")
    assert len(concepts) == len(table) - 1 and list(concepts.columns) == ["image", *CONCEPT_COLUMNS]
    assert not concepts["image"].str.endswith(".png").any() and concepts["image"].is_monotonic_increasing
    kept = table.iloc[1:].assign(image=[p[:-4] for p in table["image"].iloc[1:]]).set_index("image")
    np.testing.assert_allclose(
        concepts.set_index("image")[list(CONCEPT_COLUMNS)].to_numpy(),
        kept.loc[concepts["image"], list(CONCEPT_COLUMNS)].to_numpy(),
        atol=5e-5,
    )
